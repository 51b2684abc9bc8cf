"""Fuzz the AOT generator: random small Keras models -> the project's int8 quantization ->
`trainer.aot.generate` -> generated C checked against the TFLM reference interpreter.

Each model is a random stack over the ops the generator lowers (Conv2D, DepthwiseConv2D,
SeparableConv2D, Dense on 2-D and 4-D tensors with per-channel or per-tensor weights, pooling,
ZeroPadding2D, a BatchNormalization the converter does not fold, Add / Multiply / Concatenate
of two branches, ReLU / ReLU6 / sigmoid / tanh / LeakyReLU / ELU / hard-swish activations,
GlobalAveragePooling2D, Softmax), with odd channel counts, maps shrunk to 1x1, and weights
scaled by 1e-3 or 1e3 now and then. Calibration: 32 MNIST training images.

Variant c99: built for the host with gcc -fsanitize=address,undefined (trainer/aot/host.py),
run on MNIST test images, random int8 vectors and the two extreme vectors (all -128, all 127).
Variant dsp: the same inputs compiled into a bare-metal Cortex-M4 image with the DSP kernels
(tools/aot_bench.py) and run under QEMU.

    python tools/aot_fuzz.py --models 1000 --seed 1
    python tools/aot_fuzz.py --models 200 --seed 1 --variant dsp
    python tools/aot_fuzz.py --tflite build/aot_fuzz/s1-m17.tflite      # reproduce one

Prints: models, converted, accepted, refused by op, mismatches, sanitizer errors, the worst
ratio of the AOT arena to the TFLM reference arena. Each failing model is kept as
<--keep>/s<seed>-m<index>.tflite with a one-line reproduction command. Exit 1 on any mismatch
or sanitizer error.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nanocore.errors import UserError  # noqa: E402
from nanocore.exits import user_errors  # noqa: E402

log = logging.getLogger("aot_fuzz")

VARIANTS = ("c99", "dsp")
CALIBRATION = 32  # calibration images per model: conversion dominates the run time


# ---- random models -----------------------------------------------------------------------------

def _weight_scale(rng: np.random.Generator) -> float:
    """Mostly 1; sometimes 1e-3 or 1e3 (tiny or huge scales, extreme requantization shifts)."""
    return float(rng.choice([1.0, 1.0, 1.0, 1.0, 1.0, 1e-3, 1e3]))


def _activation(rng: np.random.Generator, keras):
    """A random activation layer (or None): fused ones (ReLU, ReLU6) and table ones."""
    kind = rng.choice(["none", "none", "relu", "relu6", "sigmoid", "tanh", "leaky", "elu",
                       "hard_swish"])
    if kind == "none":
        return None
    if kind == "relu":
        return keras.layers.ReLU()
    if kind == "relu6":
        return keras.layers.ReLU(6.0)
    if kind == "leaky":
        return keras.layers.LeakyReLU(float(rng.choice([0.1, 0.3])))
    if kind == "hard_swish":
        from trainer.tf import tf

        return keras.layers.Lambda(lambda t: t * tf.nn.relu6(t + 3.0) / 6.0)
    return keras.layers.Activation(str(kind))


def _channels(rng: np.random.Generator) -> int:
    return int(rng.choice([1, 2, 3, 5, 7, 8, 9, 13, 16, 17, 24]))


def _block(rng: np.random.Generator, keras, x, names: list[str]):
    """One random layer (or two-branch merge) applied to the 4-D map x."""
    h, w = (int(d) for d in x.shape[1:3])
    kinds = ["conv", "conv", "dw", "sep", "pool", "pad", "bn", "merge", "dense4d", "act"]
    kind = str(rng.choice(kinds))
    k = int(rng.integers(1, 4))
    pad = str(rng.choice(["same", "valid"]))
    if pad == "valid" and (k > h or k > w):
        pad = "same"
    stride = int(rng.choice([1, 1, 2])) if min(h, w) > 1 else 1
    names.append(kind)
    if kind == "conv":
        return keras.layers.Conv2D(_channels(rng), k, strides=stride, padding=pad,
                                   activation=rng.choice([None, "relu", "relu6"]))(x)
    if kind == "dw":
        return keras.layers.DepthwiseConv2D(k, strides=stride, padding=pad,
                                            depth_multiplier=int(rng.integers(1, 3)),
                                            activation=rng.choice([None, "relu"]))(x)
    if kind == "sep":
        return keras.layers.SeparableConv2D(_channels(rng), k, strides=stride, padding=pad)(x)
    if kind == "pool":
        if min(h, w) < 2:
            return x
        pool = keras.layers.MaxPooling2D if rng.random() < 0.5 else keras.layers.AveragePooling2D
        return pool(int(rng.choice([2, 3])) if min(h, w) >= 3 else 2,
                    padding=str(rng.choice(["same", "valid"])))(x)
    if kind == "pad":
        p = tuple(tuple(int(v) for v in rng.integers(0, 3, size=2)) for _ in range(2))
        return keras.layers.ZeroPadding2D(p)(x)
    if kind == "bn":
        # After a non-linearity the converter cannot fold it into a convolution: MUL + ADD
        # with per-channel constant vectors.
        y = keras.layers.ReLU()(x)
        bn = keras.layers.BatchNormalization()
        y = bn(y)
        g, b, m, v = bn.get_weights()
        bn.set_weights([rng.uniform(0.3, 2.0, g.shape).astype(np.float32),
                        rng.normal(0, 0.5, b.shape).astype(np.float32),
                        rng.normal(0, 0.5, m.shape).astype(np.float32),
                        rng.uniform(0.2, 2.0, v.shape).astype(np.float32)])
        return y
    if kind == "merge":
        n = _channels(rng)
        a = keras.layers.Conv2D(n, 1, padding="same")(x)
        b = keras.layers.Conv2D(n if rng.random() < 0.8 else 1, int(rng.integers(1, 3)),
                                padding="same")(x)
        merge = str(rng.choice(["add", "mul", "cat"]))
        names[-1] = f"merge-{merge}"
        if merge == "cat":
            return keras.layers.Concatenate()([a, b])
        # b may have 1 channel: Add/Multiply of (.., n) and (.., 1) is a broadcast.
        return (keras.layers.Add() if merge == "add" else keras.layers.Multiply())([a, b])
    if kind == "dense4d":
        return keras.layers.Dense(_channels(rng), activation=rng.choice([None, "relu"]))(x)
    act = _activation(rng, keras)
    return act(x) if act is not None else x


def random_model(seed: int, index: int):
    """(keras.Model, per_channel_dense, description) of fuzz model `index` of run `seed`."""
    from trainer.tf import keras

    rng = np.random.default_rng([seed, index])
    keras.backend.clear_session()
    keras.utils.set_random_seed(int(rng.integers(1 << 30)))
    inp = keras.Input((28, 28, 1))
    x = inp
    names: list[str] = []
    if rng.random() < 0.3:  # shrink early: 1x1 and 2x2 maps
        x = keras.layers.Conv2D(_channels(rng), 3, strides=int(rng.choice([4, 7, 14])),
                                padding="same")(x)
        names.append("shrink")
    for _ in range(int(rng.integers(1, 5))):
        x = _block(rng, keras, x, names)
    if rng.random() < 0.3:
        x = keras.layers.GlobalAveragePooling2D()(x)
        names.append("gap")
    else:
        x = keras.layers.Flatten()(x)
    if rng.random() < 0.4:
        x = keras.layers.Dense(int(rng.choice([1, 5, 7, 16])),
                               activation=rng.choice([None, "relu", "tanh"]))(x)
        names.append("dense")
    x = keras.layers.Dense(10)(x)
    if rng.random() < 0.5:
        x = keras.layers.Softmax()(x)
        names.append("softmax")
    model = keras.Model(inp, x)
    scale = _weight_scale(rng)
    if scale != 1.0:
        for layer in model.layers:
            ws = layer.get_weights()
            if ws and not isinstance(layer, keras.layers.BatchNormalization):
                layer.set_weights([ws[0] * scale, *ws[1:]])
        names.append(f"x{scale:g}")
    per_channel = bool(rng.random() < 0.5)
    names.append("per-channel-dense" if per_channel else "per-tensor-dense")
    return model, per_channel, " ".join(names)


def convert(model, per_channel: bool, mnist) -> bytes:
    """The project's int8 conversion (trainer.quantize.to_int8), 32 calibration images."""
    from trainer.config import QuantConfig
    from trainer.quantize import to_int8
    from trainer.reference import _capture_fd2

    with _capture_fd2():  # the converter's C++ chatter, one block per model
        return to_int8(model, mnist, QuantConfig(per_channel_dense=per_channel,
                                                 calibration_count=CALIBRATION))


_MNIST = None


def build_and_convert(seed: int, index: int) -> tuple[bytes | None, str, str]:
    """(tflite or None, layers, error) of fuzz model `index`; runs in the converter process."""
    global _MNIST
    from trainer.data import load_mnist

    if _MNIST is None:
        _MNIST = load_mnist()
    try:
        model, per_channel, layers = random_model(seed, index)
    except Exception as e:  # noqa: BLE001  (Keras raises many types for impossible stacks)
        return None, "", f"build: {' '.join(str(e).split())[:200]}"
    try:
        return convert(model, per_channel, _MNIST), layers, ""
    except Exception as e:  # noqa: BLE001  (the converter raises many types)
        return None, layers, f"convert: {' '.join(str(e).split())[:200]}"


class Converter:
    """Builds and converts models in a separate process, one model ahead of the checks: the
    TFLite converter can crash (e.g. a segfault on scales beyond float range with weights x1000),
    which then costs one model, not the run."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.pool = None
        self.pending: dict[int, object] = {}

    def _pool(self):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        if self.pool is None:
            self.pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))
        return self.pool

    def submit(self, index: int) -> None:
        self.pending[index] = self._pool().submit(build_and_convert, self.seed, index)

    def result(self, index: int) -> tuple[bytes | None, str, str]:
        from concurrent.futures.process import BrokenProcessPool

        if index not in self.pending:
            self.submit(index)
        fut = self.pending.pop(index)
        try:
            return fut.result()
        except BrokenProcessPool:
            # The converter process died on this model; later submissions died with it.
            self.pool = None
            lost = sorted(self.pending)
            self.pending.clear()
            for i in lost:
                self.submit(i)
            return None, "", "convert: the converter process crashed"

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


# ---- checking ----------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What happened to one model."""

    index: int
    layers: str
    status: str  # accepted | refused | unconvertible | mismatch | sanitizer | error
    detail: str = ""
    refused_op: str = ""
    arena_bytes: int = 0
    tflm_arena_bytes: int = 0
    vectors: int = 0
    differing: int = 0


def refused_op(message: str) -> str:
    """The op a generator refusal names, marked "(TFLM cannot prepare)" when TFLM itself
    has no kernel for it or fails to prepare it."""
    m = re.search(r"op (\S+)", message)
    op = m.group(1) if m else "model"
    if "in TFLM" in message.split(":")[0] or message.startswith("TFLM cannot prepare"):
        return f"{op} (TFLM cannot prepare)"
    return op


def run_c99(gen: Path, x: np.ndarray, out_bytes: int) -> np.ndarray:
    """Outputs of the generated code in `gen`, host build with ASan/UBSan, on inputs x."""
    from trainer.aot.host import RUNNER_C, build_runner, run_runner

    exe = build_runner(gen, RUNNER_C, sanitize=True)
    return run_runner(exe, x, out_bytes)


def run_dsp(gen: Path, x: np.ndarray, want: np.ndarray, macs: int, arena: int) -> np.ndarray:
    """Outputs of the QEMU Cortex-M4 image (DSP kernels) of the generated code in `gen`."""
    from nanolab import aot_bench

    work = gen.parent.resolve()
    inputs_c = work / "bench_inputs.c"
    aot_bench.write_inputs_c(inputs_c, x)
    prep = aot_bench.Prepared("m", work / "m.tflite", gen.resolve(), inputs_c, macs, arena, 0,
                              want)
    elf = aot_bench.build_image(prep, "dsp", work)
    out = aot_bench.run_image(elf, len(x), want.shape[1], timeout=600.0)
    if out["variant"] != "dsp":
        raise RuntimeError(f"image ran the {out['variant']} kernels, not dsp")
    if np.any(out["rcs"] != 0):
        raise RuntimeError(f"model_aot_invoke returned {sorted(set(out['rcs'].tolist()))}")
    return out["outputs"]


def check_model(tfl: bytes, index: int, layers: str, variant: str, images: np.ndarray,
                n_random: int, seed: int) -> Outcome:
    """Generate, build, run and compare one converted model."""
    from trainer.aot import generate
    from trainer.aot.__main__ import check_inputs, reference_outputs
    from trainer.reference import Reference

    o = Outcome(index, layers, "accepted")
    x = np.concatenate(list(check_inputs(tfl, images, n_random, seed).values()))
    with tempfile.TemporaryDirectory() as td:
        gen = Path(td) / "gen"
        try:
            res = generate(tfl, gen)
        except UserError as e:
            o.status, o.detail, o.refused_op = "refused", str(e), refused_op(str(e))
            return o
        o.arena_bytes = res.arena_bytes
        try:
            want = reference_outputs(tfl, x)
            if variant == "c99":
                got = run_c99(gen, x, want.shape[1])
            else:
                got = run_dsp(gen, x, want, res.macs, res.arena_bytes)
        except RuntimeError as e:
            text = str(e)
            sanitizer = "runtime error" in text or "Sanitizer" in text
            o.status = "sanitizer" if sanitizer else "error"
            o.detail = " ".join(text.split())[-600:]
            return o
    o.vectors = len(x)
    o.differing = int(np.sum(np.any(got != want, axis=1)))
    o.tflm_arena_bytes = Reference(tfl).arena_bytes
    if o.differing:
        o.status = "mismatch"
        o.detail = f"{o.differing} of {len(x)} output vectors differ from TFLM"
    return o


# ---- run and report ----------------------------------------------------------------------------

@dataclass
class Summary:
    """Totals of a fuzz run (the printed report and the JSON)."""

    seed: int
    variant: str
    models: int = 0
    converted: int = 0
    accepted: int = 0
    refused_by_op: dict[str, int] = field(default_factory=dict)
    mismatches: int = 0
    sanitizer_errors: int = 0
    errors: int = 0
    arena_over_tflm: int = 0
    worst_arena_ratio: float = 0.0
    worst_arena: str = ""
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def repro_command(path: Path, variant: str) -> str:
    """The one-line command that re-checks a kept model."""
    tail = " --variant dsp" if variant == "dsp" else ""
    return f"python tools/aot_fuzz.py --tflite {path}{tail}"


def add(summary: Summary, o: Outcome, tfl: bytes | None, keep: Path) -> None:
    """Fold one outcome into the summary; keep the .tflite of a failure."""
    summary.models += 1
    if o.status == "unconvertible":
        return
    summary.converted += 1
    if o.status == "refused":
        summary.refused_by_op[o.refused_op] = summary.refused_by_op.get(o.refused_op, 0) + 1
        return
    summary.accepted += 1
    if o.status == "accepted" and o.tflm_arena_bytes:
        ratio = o.arena_bytes / o.tflm_arena_bytes
        summary.arena_over_tflm += int(o.arena_bytes > o.tflm_arena_bytes)
        if ratio > summary.worst_arena_ratio:
            summary.worst_arena_ratio = ratio
            summary.worst_arena = (f"model {o.index}: {o.arena_bytes:,} B vs TFLM "
                                   f"{o.tflm_arena_bytes:,} B")
    if o.status in ("mismatch", "sanitizer", "error"):
        summary.mismatches += o.status == "mismatch"
        summary.sanitizer_errors += o.status == "sanitizer"
        summary.errors += o.status == "error"
        line = f"model {o.index} ({o.layers}): {o.status}: {o.detail[:300]}"
        if tfl is not None:
            keep.mkdir(parents=True, exist_ok=True)
            path = keep / f"s{summary.seed}-m{o.index}.tflite"
            path.write_bytes(tfl)
            line += f"\n    reproduce: {repro_command(path, summary.variant)}"
        summary.failures.append(line)
        click.echo(line, err=True)


def report(s: Summary) -> str:
    """The printed summary."""
    refused = sum(s.refused_by_op.values())
    by_op = ", ".join(f"{k} {v}" for k, v in sorted(s.refused_by_op.items(),
                                                    key=lambda kv: (-kv[1], kv[0])))
    lines = [
        f"aot_fuzz seed {s.seed}, variant {s.variant}: {s.seconds:.0f} s",
        f"models {s.models}, converted {s.converted}, accepted {s.accepted}, refused {refused}"
        + (f" ({by_op})" if by_op else ""),
        (f"mismatches {s.mismatches}, sanitizer errors {s.sanitizer_errors}, other errors "
         f"{s.errors}"),
        (f"arena: AOT > TFLM in {s.arena_over_tflm} of {s.accepted} accepted models; worst "
         f"AOT/TFLM ratio {s.worst_arena_ratio:.3f}")
        + (f" ({s.worst_arena})" if s.worst_arena else ""),
    ]
    return "\n".join(lines)


def run(n_models: int, seed: int, variant: str, n_images: int, n_random: int, keep: Path,
        first: int = 0, progress=None, isolate: bool = True) -> Summary:
    """Fuzz models first .. first+n_models-1 of run `seed`; returns the summary. isolate=False
    converts in this process (faster to start; a converter crash then ends the run)."""
    from trainer.data import load_mnist

    mnist = load_mnist()
    images = mnist.x_test[:n_images]
    summary = Summary(seed, variant)
    t0 = time.monotonic()
    conv = Converter(seed)
    try:
        for i in range(first, first + n_models):
            if not isolate:
                tfl, layers, err = build_and_convert(seed, i)
            else:
                if i + 1 < first + n_models:
                    conv.submit(i + 1)  # convert the next model while this one is checked
                tfl, layers, err = conv.result(i)
            if tfl is None:
                o = Outcome(i, layers, "unconvertible", err)
            else:
                o = check_model(tfl, i, layers, variant, images, n_random, seed)
            add(summary, o, tfl, keep)
            summary.seconds = time.monotonic() - t0
            if progress is not None:
                progress(summary, o)
    finally:
        conv.close()
    return summary


def write_json(s: Summary, path: Path) -> None:
    """The summary as JSON (with the printed report under "report")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**asdict(s), "report": report(s)}, indent=2) + "\n")
    tmp.replace(path)


def check_file(path: Path, variant: str, n_images: int, n_random: int, seed: int) -> Outcome:
    """Re-check one kept .tflite (the reproduction command)."""
    from trainer.data import load_mnist

    images = load_mnist().x_test[:n_images]
    return check_model(path.read_bytes(), 0, path.name, variant, images, n_random, seed)


@click.command()
@click.option("--models", "n_models", default=20, show_default=True, help="random models")
@click.option("--seed", default=0, show_default=True, help="run seed (model i uses [seed, i])")
@click.option("--first", default=0, show_default=True, help="index of the first model")
@click.option("--variant", default="c99", show_default=True,
              help="c99: host build with ASan/UBSan; dsp: Cortex-M4 DSP kernels under QEMU")
@click.option("--images", "n_images", default=20, show_default=True,
              help="MNIST test images per model")
@click.option("--random", "n_random", default=50, show_default=True,
              help="random int8 input vectors per model (plus all -128 and all 127)")
@click.option("--keep", default=str(ROOT / "build" / "aot_fuzz"), show_default=True,
              help="where failing models are kept")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="write the summary as JSON here")
@click.option("--tflite", "tflite_path", type=click.Path(dir_okay=False),
              help="re-check this one .tflite instead of generating models")
def main(n_models: int, seed: int, first: int, variant: str, n_images: int, n_random: int,
         keep: str, json_path: str | None, tflite_path: str | None) -> None:
    """Random models through the AOT generator, checked against the TFLM reference."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("trainer").setLevel(logging.ERROR)
    with user_errors():
        if variant not in VARIANTS:
            raise UserError(f"unknown --variant '{variant}' (c99, dsp)")
        if n_models < 0 or n_images < 0 or n_random < 0:
            raise UserError("--models, --images and --random must be >= 0")
        if tflite_path is not None:
            path = Path(tflite_path)
            if not path.is_file():
                raise UserError(f"no such .tflite file: {path}")
            o = check_file(path, variant, n_images, 1000, seed)
            click.echo(f"{path}: {o.status}" + (f": {o.detail}" if o.detail else "")
                       + (f"; {o.vectors} vectors, arena {o.arena_bytes} B (TFLM "
                          f"{o.tflm_arena_bytes} B)" if o.vectors else ""))
            sys.exit(1 if o.status in ("mismatch", "sanitizer", "error") else 0)

        def progress(s: Summary, o: Outcome) -> None:
            if json_path:  # after every model: an interrupted run still leaves its totals
                write_json(s, Path(json_path))
            if s.models % 10 == 0:
                click.echo(f"... {s.models} models, {s.accepted} accepted, {s.mismatches} "
                           f"mismatches, {s.sanitizer_errors} sanitizer errors, "
                           f"{s.seconds:.0f} s", err=True)

        s = run(n_models, seed, variant, n_images, n_random, Path(keep), first, progress)
    click.echo(report(s))
    if json_path:
        write_json(s, Path(json_path))
    sys.exit(1 if s.mismatches or s.sanitizer_errors or s.errors else 0)


if __name__ == "__main__":
    main()
