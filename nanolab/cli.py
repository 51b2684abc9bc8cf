"""`python -m trainer ...`: a click group that only wires the pipeline stages together.

It lives in the orchestration layer (nanolab) because it wires trainer's stages to the sweep;
``trainer/__main__.py`` is its entry point, and no other module imports it. Every subcommand's
UserError is printed by the group as one line, ``error: <message>``, with exit status 2 and no
traceback; Ctrl-C prints ``error: interrupted`` and exits 130 (nanocore.exits).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import click

from nanocore import checks
from nanocore.errors import UserError
from nanocore.exits import user_errors
from trainer.modelio import load_keras, save_keras, train_record, write_train_json

log = logging.getLogger(__name__)

# Kernel sparsity from which a model counts as pruned (quantize --qat then preserves it): plain
# training leaves well under 1 % of the weights exactly zero.
PRUNED_SPARSITY = 0.05


class _Group(click.Group):
    """click.Group whose subcommands' UserErrors become one-line messages (exit 2)."""

    def invoke(self, ctx: click.Context) -> Any:
        with user_errors(interrupted="error: interrupted"):
            return super().invoke(ctx)


@click.group(cls=_Group)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """nano-tflm trainer: MNIST -> Keras -> full-int8 TFLite -> C arrays for TFLite Micro."""
    # Default: warnings from everything, info from our own stages; -v info, -vv debug.
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("trainer").setLevel(min(level, logging.INFO))
    logging.getLogger("nanobench").setLevel(min(level, logging.INFO))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON (NaN/Infinity as null); a failure is a one-line UserError."""
    checks.write_text(path, checks.dumps(data, indent=2, sort_keys=True) + "\n")


def _parse_block(text: str) -> tuple[int, int]:
    """'8x2' -> (8, 2); UserError for anything else."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise UserError(f"--prune-block must look like 8x2 (inputs x outputs), got {text!r}")
    return int(parts[0]), int(parts[1])


@main.command()
@click.option("--model", "model_name", default=None,
              help="Zoo model name (default: config's, or cnn).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML file with [model] [train] [quant] tables.")
@click.option("--epochs", type=click.IntRange(min=1), default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--learning-rate", type=checks.PositiveFloat(), default=None)
@click.option("--seed", type=int, default=None)
@click.option("--train-limit", type=click.IntRange(min=1), default=None,
              help="Use only the first N train images.")
@click.option("--activation", default=None, help="Hidden activation (seed models).")
@click.option("--augment/--no-augment", default=None, help="Training-time augmentation.")
@click.option("--prune", "prune_sparsity", type=checks.Fraction(), default=None,
              help="Target weight sparsity, e.g. 0.5 (magnitude pruning).")
@click.option("--prune-block", "prune_block", default=None, metavar="INxOUT",
              help="Prune Dense kernels in blocks of IN inputs x OUT outputs, e.g. 8x2 (what the "
                   "AOT sparse kernel skips); 1x1 = unstructured (default).")
@click.option("--qat/--no-qat", default=None, hidden=True,
              help="Gone: QAT is one step of `quantize --qat`.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Directory with the four MNIST IDX files.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@click.option("--progress/--no-progress", default=True)
def train(model_name, config_path, epochs, batch_size, learning_rate, seed, train_limit,
          activation, augment, prune_sparsity, prune_block, qat, data_dir, out_dir,
          progress) -> None:
    """Train a zoo model; writes OUT/model.keras and OUT/train.json."""
    import dataclasses

    from trainer import config as cfgmod
    from trainer.data import load_mnist
    from trainer.train import keras_accuracy, resolve
    from trainer.train import train as run_train

    checks.writable_dir(out_dir, "--out")
    cfg = cfgmod.load_toml(config_path) if config_path else cfgmod.Config()
    if qat or (qat is None and cfg.train.qat):
        # One QAT path: a QAT-wrapped model.keras does not load again (tfmot's quantize layers
        # do not round-trip through Keras' file format), so QAT happens where it is converted.
        raise UserError("QAT is a step of quantize, not train: train (with --prune if you "
                        "like), then `python -m trainer quantize OUT/model.keras --qat` (a "
                        "pruned model keeps its sparsity)")
    mcfg = cfg.model
    if model_name:
        mcfg = dataclasses.replace(mcfg, name=model_name)
    if activation:
        mcfg = dataclasses.replace(mcfg, activation=activation)
    given = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
             "seed": seed, "train_limit": train_limit, "augment": augment,
             "prune_sparsity": prune_sparsity, "qat": qat,
             "prune_block": _parse_block(prune_block) if prune_block else None}
    overrides = {k: v for k, v in given.items() if v is not None}
    tcfg = resolve(mcfg, dataclasses.replace(cfg.train, **overrides))
    data = load_mnist(data_dir)
    cpu0 = time.process_time()
    result = run_train(mcfg, tcfg, data, progress=progress)
    cpu = time.process_time() - cpu0  # all threads of this process: robust to a busy machine
    out = Path(out_dir)
    save_keras(result.model, out / "model.keras")
    acc = keras_accuracy(result.model, data.x_test, data.y_test)
    write_train_json(out, train_record(mcfg, tcfg, cfg.quant, result, acc, data.source, cpu))
    click.echo(f"{mcfg.name}: float test accuracy {acc:.4f}, {result.seconds:.1f} s, "
               f"sparsity {result.sparsity:.3f} -> {out / 'model.keras'}")


@main.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True,
              help="Output .tflite (a .json with the quantization record is written beside it).")
@click.option("--per-tensor-dense", is_flag=True, help="Per-tensor FULLY_CONNECTED weights.")
@click.option("--calibration-count", type=click.IntRange(min=1), default=None)
@click.option("--calibration-seed", type=int, default=None)
@click.option("--qat", is_flag=True, help="Quantization-aware fine-tuning before converting.")
@click.option("--qat-epochs", type=click.IntRange(min=1), default=None)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
@click.option("--float-out", type=click.Path(dir_okay=False), default=None,
              help="Also write the float32 .tflite here.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--progress/--no-progress", default=True)
def quantize(model_path, out_path, per_tensor_dense, calibration_count, calibration_seed, qat,
             qat_epochs, config_path, float_out, data_dir, progress) -> None:
    """Full-integer int8 conversion of MODEL_PATH (.keras), int8 in/out, batch 1."""
    if not Path(model_path).exists():  # before importing TensorFlow: a typo should fail fast
        raise UserError(f"{model_path}: no such model file")
    checks.writable_file(out_path, "--out")
    checks.writable_file(Path(out_path).with_suffix(".json"), "--out record")
    if float_out:
        checks.writable_file(float_out, "--float-out")
    import dataclasses
    import gzip
    import hashlib

    from trainer import config as cfgmod
    from trainer import quantize as q
    from trainer.data import load_mnist
    from trainer.train import TrainResult, qat_finetune

    cfg = cfgmod.load_toml(config_path) if config_path else cfgmod.Config()
    given = {"calibration_count": calibration_count, "calibration_seed": calibration_seed}
    qover = {k: v for k, v in given.items() if v is not None}
    if per_tensor_dense:
        qover["per_channel_dense"] = False
    qcfg = dataclasses.replace(cfg.quant, **qover)
    tcfg = (cfg.train if qat_epochs is None
            else dataclasses.replace(cfg.train, qat_epochs=qat_epochs))
    model = load_keras(model_path)
    data = load_mnist(data_dir)
    qat_record = None
    if qat:
        from trainer.train import weight_sparsity

        before = weight_sparsity(model)
        # A pruned model (sparsity well above what training leaves by chance) gets tfmot's
        # pruning-preserving QAT scheme, so fine-tuning does not refill its zeros.
        preserve = before >= PRUNED_SPARSITY
        model = qat_finetune(TrainResult(model), data, tcfg, progress,
                             preserve_sparsity=preserve).model
        qat_record = {"epochs": tcfg.qat_epochs, "learning_rate": tcfg.qat_learning_rate,
                      "train_limit": tcfg.train_limit, "preserve_sparsity": preserve,
                      "sparsity_before": round(before, 4),
                      "sparsity_after": round(weight_sparsity(model), 4)}
    tflite = q.to_int8(model, data, qcfg)
    out = Path(out_path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(tflite)
        if float_out:
            Path(float_out).write_bytes(q.to_float(model))
    except OSError as e:
        raise UserError(f"cannot write {e.filename or out}: {e.strerror or e}") from None
    s = q.summarize(tflite)
    record = {
        "source": str(model_path),
        "quant": cfgmod.to_dict(qcfg),
        "qat": qat_record,
        "calibration_indices": qcfg.calibration_indices(len(data.x_train)).tolist(),
        "flatbuffer_bytes": len(tflite),
        "gzip_bytes": len(gzip.compress(tflite, 9)),
        "sha256": hashlib.sha256(tflite).hexdigest(),
        "ops": list(s.ops),
        "input": {"shape": list(s.input_shape), "scale": s.input_scale,
                  "zero_point": s.input_zero_point},
        "output": {"shape": list(s.output_shape), "scale": s.output_scale,
                   "zero_point": s.output_zero_point},
        "dense_weight_scales": q.dense_weight_scales(tflite),
    }
    from trainer.tflite_info import int8_weight_sparsity

    record["int8_weight_sparsity"] = round(int8_weight_sparsity(tflite), 4)
    _write_json(out.with_suffix(".json"), record)
    click.echo(f"{out}: {len(tflite)} bytes (gzip {record['gzip_bytes']}), ops {', '.join(s.ops)}")
    if qat_record:
        click.echo(f"QAT ({'pruning-preserving, ' if qat_record['preserve_sparsity'] else ''}"
                   f"{tcfg.qat_epochs} epochs): weight sparsity {qat_record['sparsity_before']:.3f}"
                   f" before, {qat_record['sparsity_after']:.3f} after, "
                   f"{record['int8_weight_sparsity']:.3f} in the int8 model")


@main.command()
@click.argument("tflite_path", type=click.Path(dir_okay=False))
@click.option("--keras", "keras_path", type=click.Path(dir_okay=False), default=None,
              help="The float model, for float accuracy and the int8 drop.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the first N test images.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the results dict here.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--progress/--no-progress", default=True)
def evaluate(tflite_path, keras_path, limit, json_path, data_dir, progress) -> None:
    """Float (Keras) and int8 (TFLM reference) accuracy on the MNIST test set."""
    path = Path(tflite_path)
    if not path.is_file():  # before importing TensorFlow: a typo should fail fast
        raise UserError(f"{path}: no such .tflite file")
    if json_path:
        checks.writable_file(json_path, "--json")
    from trainer.data import load_mnist
    from trainer.evaluate import evaluate as run_eval
    from trainer.evaluate import format_table
    from trainer.tflite_info import check_digit_classifier

    # Before MNIST loads (seconds): a corrupt file or another kind of model fails at once.
    check_digit_classifier(path.read_bytes(), str(path))
    model = load_keras(keras_path) if keras_path else None
    data = load_mnist(data_dir)
    res = run_eval(path.read_bytes(), data, model, limit=limit, progress=progress)
    if json_path:
        _write_json(Path(json_path), res)
    click.echo(format_table([(path.stem, res)]))


@main.command("inspect")
@click.argument("tflite_path", type=click.Path(dir_okay=False))
def inspect_cmd(tflite_path) -> None:
    """Ops, quantization, params and MACs of a .tflite file."""
    from trainer.tflite_info import inspect_file, summary

    click.echo(summary(inspect_file(tflite_path)))


@main.command("export")
@click.argument("tflite_path", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Folder for model_data.{h,cc}, model_meta.h, model_selftest.h, manifest.json.")
@click.option("--backend", type=click.Choice(["all", "tflm", "aot"]), default="all",
              show_default=True, help="Which firmware backend(s) to generate for.")
@click.option("--metrics", "metrics_path", type=click.Path(dir_okay=False), default=None,
              help="JSON file of metrics to record in the manifest (e.g. evaluate --json).")
def export_cmd(tflite_path, out_dir, backend, metrics_path) -> None:
    """Generate the firmware's model files from an int8 .tflite."""
    from trainer.export import export

    checks.writable_dir(out_dir, "--out")
    metrics = None
    if metrics_path:
        try:
            metrics = json.loads(Path(metrics_path).read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read metrics {metrics_path}: {e}") from None
    # `trainer quantize` writes its record next to the model: keep its calibration facts.
    calibration = None
    record_path = Path(tflite_path).with_suffix(".json")
    if record_path.is_file():
        import hashlib

        rec = json.loads(record_path.read_text())
        if rec.get("sha256") == hashlib.sha256(Path(tflite_path).read_bytes()).hexdigest():
            idx = rec.get("calibration_indices") or []
            calibration = {
                "quant": rec.get("quant"), "qat": rec.get("qat"), "count": len(idx),
                "indices_sha256": hashlib.sha256(json.dumps(idx).encode()).hexdigest(),
            }
    res = export(tflite_path, out_dir, backend=backend, metrics=metrics, calibration=calibration)
    m = res.manifest
    click.echo(f"{res.out_dir}: {', '.join(p.name for p in res.files)} (model "
               f"{m['source']['sha256'][:16]}, {m['source']['bytes']} bytes, arena "
               f"{m['arena']['recommended_bytes']} bytes, tflm_exact {m['tflm_exact']})")


@main.command("images")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--keras", "keras_path", type=click.Path(dir_okay=False), default=None,
              help="Float model (model.keras).")
@click.option("--tflite", "tflite_path", type=click.Path(dir_okay=False), default=None,
              help="int8 model, run through the TFLM reference.")
@click.option("--sheet", type=click.Path(dir_okay=False), default=None,
              help="Write a contact sheet PNG of the 28x28 images with label>prediction.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def images_cmd(directory, keras_path, tflite_path, sheet, json_path) -> None:
    """Evaluate models on a folder of digit photos (3_name.png or 3/name.png)."""
    from trainer.images import evaluate_folder

    if not Path(directory).is_dir():
        raise UserError(f"{directory} is not a folder of images")
    if keras_path is None and tflite_path is None:
        raise UserError("give a model: --keras model.keras and/or --tflite model.tflite")
    for opt, p in (("--sheet", sheet), ("--json", json_path)):
        if p:
            checks.writable_file(p, opt)
    if tflite_path:
        from trainer.tflite_info import check_digit_classifier

        try:
            data = Path(tflite_path).read_bytes()
        except OSError as e:
            raise UserError(f"cannot read {tflite_path}: {e.strerror or e}") from None
        check_digit_classifier(data, str(tflite_path))
    model = load_keras(keras_path) if keras_path else None
    res = evaluate_folder(directory, model, tflite_path, sheet)
    for name, reason in res["skipped_files"]:
        click.echo(f"skipped {name}: {reason}")
    for name, label, pf, p8 in res["rows"]:
        wrong = [k for k, p in (("float", pf), ("int8", p8)) if p is not None and p != label]
        if wrong:
            click.echo(f"wrong   {name}: label {label}, float {pf}, int8 {p8}")

    def pct(v):
        return "-" if v is None else f"{v:.4f}"

    click.echo(f"{res['images']} images, {res['skipped']} skipped; accuracy float "
               f"{pct(res['float_accuracy'])}, int8 {pct(res['int8_accuracy'])}"
               + (f"; sheet {res['sheet']}" if res["sheet"] else ""))
    if json_path:
        _write_json(Path(json_path), res)


@main.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--per-class", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def synth_cmd(out_dir, per_class, seed) -> None:
    """Write a photo-like synthetic digit set (fonts and pen strokes on varied paper, photographed)
    as labeled files."""
    from trainer.synth import find_fonts, make_set

    fonts = find_fonts()
    paths = make_set(out_dir, per_class=per_class, seed=seed, fonts=fonts)
    click.echo(f"{out_dir}: {len(paths)} images from {len(fonts)} fonts")


@main.command()
@click.argument("study_file", required=False, type=click.Path(dir_okay=False))
@click.option("--study", "study_name", default=None,
              help="A built-in study (nanolab/studies/), e.g. seed.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output directory [runs/sweep-<study>].")
@click.option("--dry-run", is_flag=True, help="List the runs, one line each, without training.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Local worker processes [the study's jobs, else usable cores].")
@click.option("--ray", "ray_address", default=None,
              help="Run as Ray tasks: a cluster address, 'auto', or 'local' (new local instance).")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Seeds per point (overrides the study).")
@click.option("--report-only", is_flag=True, help="Only rewrite the report from stored runs.")
@click.option("--port", default=None, help="Bench the Pareto points on this device (pyserial URL).")
@click.option("--emulate", type=click.Choice(["qemu", "host"]), default=None,
              help="Bench the Pareto points on an emulated device (latency).")
@click.option("--aot", is_flag=True,
              help="Measure the compression groups' AOT model flash and instructions per "
                   "inference on QEMU (needs qemu-system-arm, arm-none-eabi-gcc).")
@click.option("--progress/--no-progress", default=True)
def sweep(study_file, study_name, out_dir, dry_run, jobs, ray_address, seeds, report_only, port,
          emulate, aot, progress) -> None:
    """Train a declarative grid of models (STUDY_FILE or --study), several seeds per point,
    resumable, in parallel; writes OUT/report.md, summary.json and pareto.png."""
    from nanolab import sweep as sw

    if bool(study_file) == bool(study_name):
        raise UserError("give a study TOML file or --study NAME (one of "
                        f"{', '.join(sw.builtin_studies())})")
    st = sw.load_study(study_file or sw.builtin_study_path(study_name))
    if seeds is not None:
        st = sw.with_seeds(st, seeds)
    out = Path(out_dir or f"runs/sweep-{st.name}")
    if not dry_run:
        checks.writable_dir(out, "--out")
    if dry_run:
        for point, seed in st.runs():
            click.echo(sw.describe_run(point, seed, sw.load_record(out, point, seed) is not None))
        click.echo(f"{len(st.points)} points x {len(st.seeds)} seeds = {len(st.runs())} runs")
        return
    res = None
    if not report_only:
        res = sw.run_sweep(st, out, jobs=jobs or st.jobs, ray_address=ray_address,
                           progress=progress)
        click.echo(f"sweep {st.name}: trained {len(res.trained)}, {len(res.skipped)} already "
                   f"finished, {len(res.failed)} failed in {res.seconds:.0f} s")
    if sw.needs_photos(st):
        sw.photo_accuracy(st, out)
    if port or emulate:
        sw.bench_pareto(st, out, port=port, emulate=emulate, progress=progress)
    if aot:
        sw.aot_compression(st, out)
    report = sw.write_report(st, out, res)
    click.echo(f"report: {report}")
    if res is not None and res.failed:
        raise UserError(f"{len(res.failed)} run(s) failed (see the log above); rerun the same "
                        "command to retry them")
