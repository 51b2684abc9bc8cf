#!/usr/bin/env python3
"""`make demo`: the default model from MNIST to generated firmware files, with a results table.

Steps (each a function, so later stages, e.g. the QEMU build and bench, append to `main`):
1. train the default model (`cnn`, DEFAULT_CONFIG) or reuse build/default/ when its train.json
   records the same configuration hash;
2. quantize to full int8 with per-tensor FULLY_CONNECTED weights (what the pinned TFLM Arduino
   library runs exactly);
3. evaluate float (Keras) and int8 (TFLM reference) on all 10,000 MNIST test images, and both
   on the photo-like synthetic digit set (trainer.synth, through trainer.images);
4. export to build/default/export (and, with --update-firmware, to firmware/lib/model/);
5. print the table;
6. build the QEMU (Cortex-M4, mps2-an386) image for the exported model and bench it over the
   MNIST test set exactly as `tools/bench.py --emulate qemu` does; print its summary
   (report in runs/<timestamp>/).

Usage: python tools/demo.py [--update-firmware] [--retrain] [--data-dir DIR] [--epochs N]
                            [--no-bench] [--bench-limit N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find the packages

from nanocore.atomic import write_bytes_atomic, write_json_atomic
from nanocore.errors import UserError
from nanocore.exits import user_errors
from nanocore.paths import DEFAULT_MODEL_DIR, REPO_ROOT, build_dir
from trainer.config import Config, ModelConfig, QuantConfig, TrainConfig, config_hash, to_dict

log = logging.getLogger("demo")

ROOT = REPO_ROOT
BUILD = build_dir("default")
FIRMWARE_MODEL = DEFAULT_MODEL_DIR
SYNTH_CACHE = build_dir("synth")
SYNTH_PER_CLASS = 100  # 1,000 photo-like images
SYNTH_SEED = 0

# The deployable default: the cnn trained with augmentation (it keeps MNIST int8 accuracy >= 0.990
# and is more robust on photo-like digits; numbers in the README), quantized with per-tensor
# dense weights.
DEFAULT_CONFIG = Config(
    model=ModelConfig(name="cnn"),
    train=TrainConfig(augment=True),
    quant=QuantConfig(per_channel_dense=False),
)


@dataclasses.dataclass
class Trained:
    """A trained model in `directory` (model.keras, train.json) with its config hash."""

    directory: Path
    model: Any
    info: dict


def training_key(cfg: Config) -> str:
    """Cache key of a trained model: the model table, the resolved train table (per-model
    defaults filled in), the built architecture (Keras JSON: layers, widths, BatchNorm momentum,
    ...) and, when augmenting, trainer/augment.py's source. Edits to other zoo models do not
    invalidate it; edits to the training loop itself (trainer/train.py) are not tracked."""
    from trainer import models
    from trainer.train import resolve

    parts = [
        json.dumps(to_dict(cfg.model), sort_keys=True),
        json.dumps(to_dict(resolve(cfg.model, cfg.train)), sort_keys=True),
        models.build(cfg.model).to_json(),
    ]
    if cfg.train.augment:
        parts.append(_sha256((ROOT / "trainer" / "augment.py").read_bytes()))
    return _sha256("\n".join(parts).encode())[:16]


def train_or_reuse(cfg: Config, data, directory: Path, retrain: bool = False,
                   progress: bool = True) -> Trained:
    """Train cfg.model with cfg.train, or load directory/model.keras if its train.json has the
    same training key (configuration + model/augment code, see `training_key`)."""
    from trainer.modelio import (
        load_keras,
        read_train_json,
        save_keras,
        train_record,
        write_train_json,
    )
    from trainer.train import keras_accuracy, resolve, train

    key = training_key(cfg)
    info = read_train_json(directory)
    if not retrain and info is not None and (directory / "model.keras").exists():
        if info.get("config_hash") == key:
            log.info("reusing %s (config %s)", directory / "model.keras", key)
            return Trained(directory, load_keras(directory / "model.keras"), info)
        log.info("config changed (%s -> %s): retraining", info.get("config_hash"), key)
    cpu0 = time.process_time()
    result = train(cfg.model, cfg.train, data, progress=progress)
    cpu = time.process_time() - cpu0  # all threads of this process: robust to a busy machine
    save_keras(result.model, directory / "model.keras")
    acc = keras_accuracy(result.model, data.x_test, data.y_test)
    info = train_record(cfg.model, resolve(cfg.model, cfg.train), cfg.quant, result, acc,
                        data.source, cpu, config_hash=key)
    write_train_json(directory, info)
    return Trained(directory, result.model, info)


def quantize_or_reuse(trained: Trained, cfg: Config, data) -> Path:
    """Full-int8 flatbuffer next to the Keras model, keyed by (train config, quant config)."""
    from trainer.quantize import to_int8

    key = training_key(cfg) + config_hash(cfg.quant)
    path = trained.directory / "model_int8.tflite"
    meta = trained.directory / "quant.json"
    if path.exists() and meta.exists() and json.loads(meta.read_text()).get("config_hash") == key:
        return path
    tflite = to_int8(trained.model, data, cfg.quant)
    write_bytes_atomic(path, tflite)
    idx = cfg.quant.calibration_indices(len(data.x_train))
    write_json_atomic(meta, {
        "config_hash": key,
        "quant": to_dict(cfg.quant),
        "calibration": {"source": "MNIST train", "count": len(idx),
                        "seed": cfg.quant.calibration_seed,
                        "indices_sha256": _sha256(json.dumps(idx.tolist()).encode())},
    }, sort_keys=False)
    return path


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def evaluate_mnist(trained: Trained, tflite_path: Path, data, progress: bool = True) -> dict:
    """trainer.evaluate on all 10,000 test images, cached by the flatbuffer's sha256."""
    from trainer.evaluate import evaluate

    tflite = tflite_path.read_bytes()
    cache = trained.directory / "eval.json"
    sha = _sha256(tflite)
    if cache.exists():
        res = json.loads(cache.read_text())
        if res.get("sha256") == sha and res.get("test_images") == len(data.x_test):
            return res
    res = evaluate(tflite, data, trained.model, progress=progress)
    write_json_atomic(cache, res, sort_keys=False)
    return res


def evaluate_synth(trained: Trained, tflite_path: Path) -> dict:
    """Float and int8 accuracy on the photo-like synthetic set (preprocessed by trainer.images)."""
    import numpy as np

    from trainer.images import predict_tflite
    from trainer.synth import load_set
    from trainer.train import prepare

    folder = load_set(SYNTH_CACHE, per_class=SYNTH_PER_CLASS, seed=SYNTH_SEED)
    predf = trained.model.predict(prepare(folder.images), batch_size=500, verbose=0).argmax(1)
    pred8 = predict_tflite(tflite_path, folder.images)
    return {
        "synth_images": len(folder.names),
        "synth_skipped": len(folder.skipped),
        "synth_accuracy_float": float(np.mean(predf == folder.labels)),
        "synth_accuracy_int8": float(np.mean(pred8 == folder.labels)),
    }


def export_model(tflite_path: Path, out_dir: Path, metrics: dict, calibration: dict,
                 backend: str = "all") -> dict:
    """trainer.export into out_dir; returns the manifest."""
    from trainer.export import export

    return export(tflite_path, out_dir, backend=backend, metrics=metrics,
                  calibration=calibration).manifest


def results_table(rows: list[tuple[str, dict]]) -> str:
    """The demo's table: one row per (model name, metrics dict)."""
    cols = [("model", 10, "s"), ("float acc", 9, ".4f"), ("int8 acc", 9, ".4f"),
            ("synth f32", 9, ".4f"), ("synth int8", 10, ".4f"), ("flatbuffer B", 12, "d"),
            ("arena B", 8, "d"), ("params", 8, "d"), ("MACs", 9, "d")]
    keys = ["name", "accuracy_float", "accuracy_int8", "synth_accuracy_float",
            "synth_accuracy_int8", "flatbuffer_bytes", "arena_bytes", "params", "macs"]
    head = "  ".join(f"{c:>{w}}" for c, w, _ in cols)
    lines = [head, "-" * len(head)]
    for name, r in rows:
        r = {**r, "name": name}
        cells = []
        for (_, w, fmt), k in zip(cols, keys, strict=True):
            v = r.get(k)
            cells.append(f"{'-' if v is None else format(v, fmt):>{w}}")
        lines.append("  ".join(cells))
    return "\n".join(lines)


def run_trainer_stage(args) -> tuple[str, dict, Path]:
    """Steps 1-4. Returns (model name, metrics, export dir)."""
    from trainer.data import load_mnist

    cfg = DEFAULT_CONFIG
    if args.epochs is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=args.epochs))
    data = load_mnist(args.data_dir)
    t0 = time.perf_counter()
    trained = train_or_reuse(cfg, data, BUILD, retrain=args.retrain)
    tflite_path = quantize_or_reuse(trained, cfg, data)
    metrics = evaluate_mnist(trained, tflite_path, data)
    metrics.update(evaluate_synth(trained, tflite_path))
    quant = json.loads((trained.directory / "quant.json").read_text())
    keep = ("accuracy_float", "accuracy_int8", "drop_points", "agreement_top1", "test_images",
            "synth_images", "synth_accuracy_float", "synth_accuracy_int8", "arena_bytes")
    summary = {k: metrics[k] for k in keep if k in metrics}
    summary["train_config_hash"] = trained.info.get("config_hash")
    summary["train_seconds"] = trained.info.get("seconds")
    export_dir = BUILD / "export"
    manifest = export_model(tflite_path, export_dir, summary, quant["calibration"])
    if args.update_firmware:
        FIRMWARE_MODEL.mkdir(parents=True, exist_ok=True)
        export_model(tflite_path, FIRMWARE_MODEL, summary, quant["calibration"])
        log.info("updated %s", FIRMWARE_MODEL)
    metrics["arena_bytes"] = manifest["arena"]["measured_bytes"]
    log.info("trainer stage took %.1f s", time.perf_counter() - t0)
    return cfg.model.name, metrics, export_dir


def run_bench_stage(export_dir: Path, limit: int | None = None) -> dict:
    """Step 6: QEMU image for export_dir's model, bench over the first `limit` (default all)
    MNIST test images; prints the summary and returns it (nanolab.bench.bench)."""
    from nanobench.firmware import build_qemu
    from nanobench.report import format_summary
    from nanolab.bench import bench

    elf = build_qemu(export_dir)
    summary, paths = bench(emulate="qemu", model=export_dir / "model_int8.tflite", elf=elf,
                           limit=limit)
    print("\nOn the emulated Cortex-M4 (QEMU mps2-an386, AOT backend; latency is an "
          "instruction count under -icount):")
    if not summary["complete"]:  # the folder holds what was received; say so, do not print it
        raise UserError(f"the bench stopped early ({summary['stop_reason']}); partial results "
                        f"in {paths['summary'].parent}")
    print(format_summary(summary))
    print(f"report: {paths['report']}")
    if summary["lost"]:
        raise UserError(f"{summary['lost']} images lost (no valid reply): the figures cover the "
                        f"{summary['n']} answered")
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--update-firmware", action="store_true",
                   help=f"also write the generated files to {FIRMWARE_MODEL.relative_to(ROOT)}")
    p.add_argument("--retrain", action="store_true", help="train even if build/default matches")
    p.add_argument("--epochs", type=int, default=None, help="override the model's epochs")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    p.add_argument("--no-bench", action="store_true", help="skip the QEMU build and bench")
    p.add_argument("--bench-limit", type=int, default=None,
                   help="bench only the first N test images (default: all 10,000)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with user_errors():
        name, metrics, export_dir = run_trainer_stage(args)
    print()
    print(results_table([(name, metrics)]))
    print(f"\nfloat/int8: MNIST test set ({metrics.get('test_images')} images); synth: "
          f"{metrics.get('synth_images')} photo-like digits (trainer.synth); arena: TFLM "
          f"reference, host. Generated files: {export_dir.relative_to(ROOT)}")
    if not args.no_bench:
        with user_errors():
            run_bench_stage(export_dir, args.bench_limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
