"""`python -m trainer.aot check MODEL.tflite [...]`: generate AOT C for each model, build it for
the host (gcc, ASan/UBSan), run it on MNIST test images, random int8 input vectors and the two
extreme inputs (every value -128, every value 127), and compare every output vector with the
TFLM reference; print agreement per kind of input, arena bytes (ours and TFLM's), constant bytes
and MACs."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click
import numpy as np

from nanocore.errors import UserError
from nanocore.exits import user_errors
from trainer.aot.host import RUNNER_C


def check_inputs(tflite: bytes, images: np.ndarray, n_random: int,
                 seed: int = 0) -> dict[str, np.ndarray]:
    """The int8 model inputs `check` compares on, by kind: "images" (MNIST pixels through the
    model's input table), "random" (uniform int8 vectors, every value equally likely) and
    "extremes" (all -128, all 127). Each (N, input_bytes) int8."""
    from trainer.aot.graph import load
    from trainer.reference import input_lut

    g = load(tflite)
    t_in = g.tensors[g.inputs[0]]
    size = t_in.elements
    out: dict[str, np.ndarray] = {}
    if len(images):
        if size != 28 * 28:
            raise UserError(f"model input has {size} values, not 28x28: pass --images 0")
        lut = input_lut(float(t_in.scale[0]), int(t_in.zero_point[0]))
        out["images"] = lut[images.reshape(len(images), -1)]
    rng = np.random.default_rng(seed)
    out["random"] = rng.integers(-128, 128, size=(n_random, size), dtype=np.int8)
    out["extremes"] = np.stack([np.full(size, -128, np.int8), np.full(size, 127, np.int8)])
    return out


def reference_outputs(tflite: bytes, x: np.ndarray) -> np.ndarray:
    """TFLM reference outputs (N, output_bytes) int8 for int8 inputs x (N, input_bytes)."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tflite, arena_size=max(10 * len(tflite), 16 << 20))
    shape = tuple(int(d) for d in interp.get_input_details(0)["shape"])
    outs = []
    for v in x:
        interp.set_input(np.ascontiguousarray(v, dtype=np.int8).reshape(shape), 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0), dtype=np.int8).reshape(-1))
    return np.stack(outs) if outs else np.zeros((0, 0), np.int8)


def check(tflite_path: Path, images: np.ndarray, sanitize: bool = True, n_random: int = 300,
          seed: int = 0) -> dict:
    """Agreement of the generated C with the TFLM reference on `images` (N,28,28) uint8,
    `n_random` random int8 vectors and the two extreme vectors. "agreement" is over all of
    them; "agreement_by_kind" per kind; "mismatches" the number of differing vectors."""
    from trainer.aot import generate
    from trainer.aot.host import build_runner, run_runner
    from trainer.reference import Reference

    tfl = Path(tflite_path).read_bytes()
    kinds = check_inputs(tfl, images, n_random, seed)
    x = np.concatenate(list(kinds.values()))
    with tempfile.TemporaryDirectory() as td:
        res = generate(tfl, td)
        exe = build_runner(Path(td), RUNNER_C, sanitize=sanitize)
        want = reference_outputs(tfl, x)
        got = run_runner(exe, x, want.shape[1])
    same = np.all(got == want, axis=1)
    by_kind, at = {}, 0
    for k, v in kinds.items():
        by_kind[k] = {"count": len(v), "agreement": float(np.mean(same[at:at + len(v)]))}
        at += len(v)
    return {"model": str(tflite_path), "images": len(images), "random": n_random,
            "agreement": float(np.mean(same)), "mismatches": int(np.sum(~same)),
            "agreement_by_kind": by_kind,
            "arena_bytes": res.arena_bytes, "tflm_arena_bytes": Reference(tfl).arena_bytes,
            "const_bytes": res.const_bytes, "macs": res.macs, "ops": list(res.ops)}


@click.group()
def cli() -> None:
    """AOT generator tools."""


@cli.command("check")
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--images", "count", default=10000, show_default=True,
              help="MNIST test images to compare on.")
@click.option("--random", "n_random", default=1000, show_default=True,
              help="Random int8 input vectors to compare on (besides all -128 and all 127).")
@click.option("--seed", default=0, show_default=True, help="Seed of the random vectors.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write results here.")
def check_cmd(models: tuple[str, ...], count: int, n_random: int, seed: int,
              json_path: str | None) -> None:
    """Agreement of generated AOT C with the TFLM reference on MNIST test images, random int8
    vectors and the extreme inputs. Exit 1 if any output vector differs."""
    from trainer.data import load_mnist

    if count < 0 or n_random < 0:
        raise UserError("--images and --random must be >= 0")
    images = load_mnist().x_test[:count] if count else np.zeros((0, 28, 28), np.uint8)
    rows = []
    for m in models:
        r = check(Path(m), images, n_random=n_random, seed=seed)
        rows.append(r)
        kinds = ", ".join(f"{v['agreement']:.4f} on {v['count']} {k}"
                          for k, v in r["agreement_by_kind"].items())
        click.echo(f"{m}: agreement {kinds}; arena {r['arena_bytes']} B (TFLM "
                   f"{r['tflm_arena_bytes']} B), constants {r['const_bytes']} B, "
                   f"{r['macs']} MACs")
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=2) + "\n")
    if any(r["mismatches"] for r in rows):
        sys.exit(1)


def main() -> None:
    with user_errors():
        try:
            cli.main(standalone_mode=False)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
