#!/usr/bin/env python3
"""Fuzz the firmware's protocol handling and report it as a benchmark.

    python tools/fuzz_protocol.py --target host --frames 1000000 --seed 1   # ASan/UBSan build
    python tools/fuzz_protocol.py --target qemu --frames 10000 --seed 1     # Cortex-M4 image
    python tools/fuzz_protocol.py --target libfuzzer --seconds 300          # coverage-guided

host/qemu: seeded fuzz frames over stdio pipes, every reply checked by the oracle of
nanobench.fuzz (one reply per delimited chunk, in order; INFER results equal to the TFLM
reference, which nanolab.bench computes). libfuzzer: firmware/ports/host/fuzz_core.c (core.c +
protocol.c) built with clang.
Prints one line of figures; exit 0 when nothing was found, 1 otherwise, 2 for a user error.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click

from nanocore import checks
from nanocore.exits import user_errors


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--target", type=click.Choice(["host", "qemu", "libfuzzer"]), required=True)
@click.option("--frames", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="fuzz frames to send (host, qemu)")
@click.option("--seconds", type=click.IntRange(min=1), default=60, show_default=True,
              help="how long libFuzzer runs (libfuzzer)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="exported model folder the firmware is built for [firmware/lib/model]")
@click.option("--corpus", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="libFuzzer corpus folder to keep [a temporary one]")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="also write the figures as JSON here")
@click.option("--report-every", type=click.IntRange(min=0), default=0,
              help="print the figures so far every N frames (host, qemu)")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
def main(target, frames, seconds, seed, model_dir, corpus, json_path, report_every, quiet):
    """Fuzz the protocol of the host build, the QEMU image, or the libFuzzer harness."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from nanolab import bench

    with user_errors():
        if json_path:
            checks.writable_file(json_path, "--json")
        if corpus:
            checks.writable_dir(corpus, "--corpus")
        if target == "libfuzzer":
            res = bench.libfuzzer(seconds, seed, corpus=corpus, model_dir=model_dir)
            record = {"target": target, "seed": seed, "seconds": round(res.seconds, 1),
                      "executions": res.executions, "exec_per_s": res.exec_per_s,
                      "edges_covered": res.edges_covered, "edges_total": res.edges_total,
                      "features": res.features, "corpus": res.corpus, "crashes": res.crashes,
                      "sanitizer_reports": res.sanitizer_reports}
            if not res.clean:
                click.echo(res.output_tail, err=True)
        else:
            res = bench.fuzz_protocol(target, frames, seed, model_dir=model_dir,
                                      progress=not quiet, report_every=report_every)
            record = {"target": target, "seed": seed, "frames": res.frames,
                      "chunks": res.chunks, "infers_checked": res.infers_checked,
                      "crashes": res.crashes, "sanitizer_reports": res.sanitizer_reports,
                      "mismatches": res.mismatches, "hangs": res.hangs,
                      "frames_per_s": round(res.frames_per_s, 1),
                      "seconds": round(res.seconds, 1), "interrupted": res.interrupted,
                      "kinds": res.kinds,
                      "examples": res.examples}
            for line in res.examples:
                click.echo(f"found: {line}", err=True)
        click.echo(res.line())
        if json_path:
            checks.write_text(json_path, checks.dumps(record, indent=2) + "\n")
    if getattr(res, "interrupted", False):
        sys.exit(130)
    sys.exit(0 if res.clean else 1)


if __name__ == "__main__":
    main()
