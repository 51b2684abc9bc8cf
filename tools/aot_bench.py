"""Command line of the AOT benchmark (the work is in nanolab/aot_bench.py).

    python tools/aot_bench.py                          # every zoo model found under build/
    python tools/aot_bench.py --models seed_final cnn --images 300 --json runs/aot_bench.json
    python tools/aot_bench.py --tflite my.tflite --crosscheck
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nanocore.errors import UserError  # noqa: E402
from nanocore.exits import user_errors  # noqa: E402
from nanolab.aot_bench import VARIANTS, find_models, format_table, run  # noqa: E402


@click.command()
@click.option("--models", "names", multiple=True,
              help="zoo model names (build/<name>/model_int8.tflite); repeat or space-separate")
@click.option("--tflite", "tflite_paths", multiple=True, type=click.Path(),
              help="a .tflite file to benchmark (repeatable)")
@click.option("--images", "n_images", default=200, show_default=True,
              help="MNIST test images per model (compiled into the image)")
@click.option("--variants", default="c99,dsp", show_default=True, help="kernel variants")
@click.option("--json", "json_path", type=click.Path(), help="write the rows as JSON here")
@click.option("--build-dir", default=str(ROOT / "build"), show_default=True,
              help="where build/<name>/model_int8.tflite live")
@click.option("--work", default=str(ROOT / "build" / "aot_bench"), show_default=True,
              help="generated code and images")
@click.option("--crosscheck", is_flag=True,
              help="also count one invoke by single-stepping QEMU's gdb stub (slow)")
def main(names: tuple[str, ...], tflite_paths: tuple[str, ...], n_images: int, variants: str,
         json_path: str | None, build_dir: str, work: str, crosscheck: bool) -> None:
    """Instructions per MAC, flash, arena and agreement of the AOT backend on QEMU's Cortex-M4."""
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "WARNING"), format="%(message)s")
    with user_errors():
        split = tuple(n for arg in names for n in arg.replace(",", " ").split())
        vs = tuple(v.strip() for v in variants.split(",") if v.strip())
        bad = [v for v in vs if v not in VARIANTS]
        if bad:
            raise UserError(f"unknown kernel variant {bad[0]!r} (c99, dsp)")
        models = find_models(split, tflite_paths, Path(build_dir))
        rows = run(models, n_images, vs, Path(work).resolve(), crosscheck=crosscheck)
    click.echo(format_table(rows))
    if json_path:
        keys = ("model", "variant", "macs", "instructions", "instructions_per_mac",
                "flash_bytes", "arena_bytes", "tflm_arena_bytes", "agreement")
        data = [{**{k: asdict(r)[k] for k in keys},
                 "images": r.images, "instructions_min": r.instructions_min,
                 "instructions_max": r.instructions_max, "stack_used_bytes": r.stack_used_bytes,
                 "kernel_flash_bytes": r.kernel_flash_bytes, "fused": list(r.fused)}
                for r in rows]
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
