#!/usr/bin/env python3
"""Stream digits to a nano-tflm device (or an emulated one) and write a report.

    python tools/bench.py --port /dev/ttyACM0                 # a flashed Nano 33 BLE
    python tools/bench.py --emulate qemu --limit 1000         # the Cortex-M4 image under QEMU
    python tools/bench.py --port socket://127.0.0.1:4321 --images photos/ --elf firmware.elf

Writes --out DIR (default runs/<timestamp>/): samples.csv, summary.json, report.md,
confusion.png, latency.png. The logic lives in nanolab.bench (the model side: images, TFLM
reference, firmware image) and nanobench (bench, client, emulate, report: the device side).

Exit status: 0 when every image has a validated result; 3 when images were lost (everything is
written first); 2 for a user error (nothing started); 1 (130 for Ctrl-C) when the run stopped
early: the folder then holds every sample received, summary.json says "complete": false.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click

from nanocore.checks import PositiveFloat
from nanocore.exits import user_errors
from nanocore.paths import DEFAULT_MODEL_DIR

DEFAULT_MODEL = DEFAULT_MODEL_DIR / "model_int8.tflite"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--port", help="pyserial URL: /dev/ttyACM0, socket://127.0.0.1:PORT, ...")
@click.option("--emulate", type=click.Choice(["qemu", "renode", "host"]),
              help="build (if needed) and start an emulated device instead of --port")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_MODEL,
              show_default="firmware/lib/model/model_int8.tflite",
              help="the int8 .tflite the device must run (checked by sha256)")
@click.option("--limit", type=click.IntRange(min=1), help="stream only the first N images")
@click.option("--images", type=click.Path(file_okay=False, path_type=Path),
              help="a folder of digit photos instead of the MNIST test set")
@click.option("--elf", type=click.Path(dir_okay=False, path_type=Path),
              help="firmware ELF: flash/RAM footprint (and the image --emulate runs)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="output folder [default: runs/<timestamp>/]")
@click.option("--window", type=click.IntRange(min=1), default=None,
              help="requests in flight [default: per transport, nanobench.bench.default_window: "
                   "4 emulated, 2 on a real port]")
@click.option("--timeout", type=PositiveFloat("seconds"), default=3.0, show_default=True,
              help="seconds without a reply before a request is re-sent")
@click.option("--max-lost", type=click.IntRange(min=0), default=None,
              help="stop the run once more than N images are lost [default: never]")
@click.option("--link", type=click.Choice(["pipe", "tcp"]), default="pipe", show_default=True,
              help="QEMU/host link: stdio pipes or a loopback TCP port")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
@click.option("-v", "--verbose", is_flag=True, help="log what happens")
def main(port, emulate, model, limit, images, elf, out, window, timeout, max_lost, link, quiet,
         verbose):
    """Benchmark a nano-tflm device: accuracy, agreement with the TFLM reference, latency,
    footprint."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from nanobench.report import format_summary
    from nanolab.bench import bench

    with user_errors():
        summary, paths = bench(port=port, emulate=emulate, model=model, limit=limit,
                               images=images, elf=elf, out=out, window=window, timeout=timeout,
                               link=link, max_lost=max_lost, progress=not quiet)
    folder = paths["summary"].parent
    if not summary["complete"]:
        reason = summary["stop_reason"]
        click.echo(f"error: the run stopped early ({reason}); {summary['n']} of "
                   f"{summary['images']} images answered, partial results in {folder}",
                   err=True)
        sys.exit(130 if reason.startswith("interrupted") else 1)
    click.echo(format_summary(summary))
    click.echo(f"report: {paths['report']}")
    if summary["lost"]:
        click.echo(f"error: {summary['lost']} of {summary['images']} images lost (no valid "
                   f"reply); the figures cover the {summary['n']} answered, see {folder}",
                   err=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
