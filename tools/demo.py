#!/usr/bin/env python3
"""`make demo`: the default model from MNIST to generated firmware files, with a results table.

Steps (each a function, so later stages, e.g. the QEMU build and bench, append to `main`):
1. train the default model (nanolab/default_model.toml; with --from-study DIR first replaced by
   the point that study's rule selected) or reuse build/default/ when its train.json
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

Usage: python tools/demo.py [--update-firmware [--from-study DIR [--accept-closest]]] [--retrain]
                            [--data-dir DIR] [--epochs N] [--no-bench] [--bench-limit N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find the packages

from nanocore.errors import UserError
from nanocore.exits import user_errors
from nanolab.demo import (  # the cache; re-exported for tools/augment_study.py
    BUILD,
    DEFAULT_CONFIG,
    DEFAULT_MODEL_TOML,
    FIRMWARE_MODEL,
    ROOT,
    SYNTH_CACHE,
    SYNTH_PER_CLASS,
    SYNTH_SEED,
    Trained,
    evaluate_mnist,
    evaluate_synth,
    export_model,
    quantize_or_reuse,
    train_or_reuse,
    training_key,
)
from nanolab.promote import promote

__all__ = [
    "BUILD",
    "DEFAULT_CONFIG",
    "FIRMWARE_MODEL",
    "ROOT",
    "SYNTH_CACHE",
    "SYNTH_PER_CLASS",
    "SYNTH_SEED",
    "Trained",
    "evaluate_mnist",
    "evaluate_synth",
    "export_model",
    "main",
    "quantize_or_reuse",
    "results_table",
    "train_or_reuse",
    "training_key",
]

log = logging.getLogger("demo")

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
    if args.from_study:
        cfg = promote(args.from_study, accept_closest=args.accept_closest)
        log.info("default model is now the study's pick: %s", DEFAULT_MODEL_TOML)
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
    p.add_argument("--from-study", metavar="DIR", default=None,
                   help="with --update-firmware: make the point DIR's study selected (its "
                        "summary.json) the default model (nanolab/default_model.toml) first")
    p.add_argument("--accept-closest", action="store_true",
                   help="with --from-study: when no point meets the study's rule, take the "
                        "closest one (the file says which constraints it fails)")
    p.add_argument("--retrain", action="store_true", help="train even if build/default matches")
    p.add_argument("--epochs", type=int, default=None, help="override the model's epochs")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    p.add_argument("--no-bench", action="store_true", help="skip the QEMU build and bench")
    p.add_argument("--bench-limit", type=int, default=None,
                   help="bench only the first N test images (default: all 10,000)")
    args = p.parse_args(argv)
    if args.from_study and not args.update_firmware:
        p.error("--from-study needs --update-firmware (it changes the committed default model)")
    if args.accept_closest and not args.from_study:
        p.error("--accept-closest needs --from-study")
    return args


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
