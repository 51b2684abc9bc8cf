"""`python -m trainer.aot check MODEL.tflite [...]`: generate AOT C for each model, build it for
the host (gcc, ASan/UBSan), run it on MNIST test images and compare every output vector with the
TFLM reference; print agreement, arena bytes (ours and TFLM's), constant bytes and MACs."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click
import numpy as np

import trainer  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from trainer.errors import UserError

RUNNER_C = Path(__file__).resolve().parents[2] / "tests" / "aot_harness" / "aot_runner.c"


def check(tflite_path: Path, images: np.ndarray, sanitize: bool = True) -> dict:
    """Agreement of the generated C with the TFLM reference on `images` (N,28,28) uint8."""
    from trainer.aot import generate
    from trainer.aot.graph import load
    from trainer.aot.host import build_runner, run_runner
    from trainer.reference import Reference, input_lut

    tfl = Path(tflite_path).read_bytes()
    with tempfile.TemporaryDirectory() as td:
        res = generate(tfl, td)
        exe = build_runner(Path(td), RUNNER_C, sanitize=sanitize)
        g = load(tfl)
        t_in = g.tensors[g.inputs[0]]
        x = input_lut(float(t_in.scale[0]), int(t_in.zero_point[0]))[
            images.reshape(len(images), -1)]
        ref = Reference(tfl)
        want = ref.run(images).reshape(len(images), -1)
        got = run_runner(exe, x, want.shape[1])
    return {"model": str(tflite_path), "images": len(images),
            "agreement": float(np.mean(np.all(got == want, axis=1))),
            "arena_bytes": res.arena_bytes, "tflm_arena_bytes": ref.arena_bytes,
            "const_bytes": res.const_bytes, "macs": res.macs, "ops": list(res.ops)}


@click.group()
def cli() -> None:
    """AOT generator tools."""


@cli.command("check")
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--images", "count", default=10000, show_default=True,
              help="MNIST test images to compare on.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write results here.")
def check_cmd(models: tuple[str, ...], count: int, json_path: str | None) -> None:
    """Agreement of generated AOT C with the TFLM reference on MNIST test images."""
    from trainer.data import load_mnist

    images = load_mnist().x_test[:count]
    rows = []
    for m in models:
        r = check(Path(m), images)
        rows.append(r)
        click.echo(f"{m}: agreement {r['agreement']:.4f} on {r['images']} images, arena "
                   f"{r['arena_bytes']} B (TFLM {r['tflm_arena_bytes']} B), constants "
                   f"{r['const_bytes']} B, {r['macs']} MACs")
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=2) + "\n")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
