"""On-chip figures of a sweep's points: latency of the Pareto points through the bench
(nanobench, on a board or an emulator) and the AOT backend's flash and instructions for the
compression groups (nanolab.aot_bench on QEMU). Results are stored beside the runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from nanocore.errors import UserError
from nanocore.paths import REPO_ROOT
from nanolab.sweep.aggregate import aggregate, pareto_keys
from nanolab.sweep.store import read_json, run_path, write_json_atomic
from nanolab.sweep.study import Study

log = logging.getLogger(__name__)

_ROOT = REPO_ROOT


def bench_pareto(study: Study, out_dir: str | os.PathLike, port: str | None = None,
                 emulate: str | None = None, progress: bool = True) -> dict[str, dict]:
    """On-device latency of the Pareto points, through the bench (nanobench).

    ``emulate="qemu"``: each point's int8 model (its first stored seed) is exported, built into
    the QEMU Cortex-M4 image and streamed ``study.latency_images`` MNIST test images; latency is
    in instructions (icount). ``port``: a real board runs one model at a time, so only the
    Pareto point whose sha256 matches the flashed model is benched (the others are listed).
    Results go to ``runs/<key>-s<seed>.latency.json``; returns them by point key.
    """
    from nanobench.client import Device
    from nanolab import bench as nb

    out_dir = Path(out_dir)
    agg = aggregate(study, out_dir)
    workload = nb.mnist_workload(limit=study.latency_images)
    done: dict[str, dict] = {}
    flashed = None
    if port:
        with Device(port) as dev:
            flashed = dev.hello().get("model_sha256", "").lower()
    for key in pareto_keys(agg):
        a = agg[key]
        seed = a["seeds"][0]
        tfl_path = run_path(out_dir, key, seed, ".tflite")
        lat_path = run_path(out_dir, key, seed, ".latency.json")
        label = a["labels"][0]
        if not tfl_path.is_file():
            log.warning("no stored model for %s (%s): rerun the sweep", label, tfl_path)
            continue
        tflite = tfl_path.read_bytes()
        sha = hashlib.sha256(tflite).hexdigest()
        if port and not (flashed and sha.startswith(flashed)):
            log.warning("Pareto point %s: flash %s (sha256 %s) to bench it on %s", label,
                        tfl_path, sha[:16], port)
            continue
        try:
            if port:
                with Device(port) as dev:
                    res = nb.run(dev, workload, tflite, model_name=label, progress=progress)
                where = port
            else:
                from nanobench import emulate as emu_mod

                image = nb.build_image(emulate, tfl_path)
                with emu_mod.emulate(emulate, image) as emu, Device(emu.port) as dev:
                    res = nb.run(dev, workload, tflite, model_name=label, progress=progress)
                where = f"--emulate {emulate}"
        except UserError as e:
            log.warning("cannot bench %s: %s", label, e)
            continue
        lat = dict(res.summary["latency"])
        lat.update(images=len(workload.images), agreement=res.summary.get("agreement"),
                   accuracy=res.summary.get("accuracy"), device=where, seed=seed,
                   board=res.info.get("board"), backend=res.info.get("backend"))
        write_json_atomic(lat_path, lat)
        done[key] = lat
    return done


def aot_compression(study: Study, out_dir: str | os.PathLike, images: int = 100,
                    work: str | os.PathLike | None = None) -> dict[str, dict]:
    """On-chip cost of the compression groups' points (every point when the study's ``[select]``
    rule reads an ``aot_`` figure) with the AOT backend: for each point's
    first stored seed, nanolab.aot_bench generates the C (sparse fully connected layers where
    that is smaller), builds the QEMU Cortex-M4 image with the DSP kernels and runs `images`
    MNIST test images. Stores ``runs/<key>-s<seed>.aot.json``: ``model_flash_bytes`` (the
    generated model's own flash: weights, indices, constants, parameter structs and its invoke
    code, from the ELF's DWARF attribution; kernels excluded), ``kernel_flash_bytes``,
    ``instructions`` (median per inference, QEMU -icount), ``arena_bytes`` (the
    generated model's planned arena), ``agreement`` with the TFLM
    reference. Already measured runs (same int8 sha256) are kept. Returns them by point key."""
    from nanolab import aot_bench as bench
    from trainer.data import load_mnist

    out_dir = Path(out_dir)
    agg = aggregate(study, out_dir)
    work = Path(work or out_dir / "aot").resolve()
    keys = [gp.key for g in study.groups if g.report == "compression" for gp in g.points]
    if study.select is not None and any(n.startswith("aot_") for n in study.select.figures()):
        keys += list(study.points)  # the rule reads AOT figures: measure every point
    x = None
    done: dict[str, dict] = {}
    for key in dict.fromkeys(keys):
        a = agg[key]
        if not a["n"]:
            continue
        seed = a["seeds"][0]
        tfl_path = run_path(out_dir, key, seed, ".tflite")
        aot_path = run_path(out_dir, key, seed, ".aot.json")
        if not tfl_path.is_file():
            log.warning("no stored model for %s (%s): rerun the sweep", a["labels"][0], tfl_path)
            continue
        sha = hashlib.sha256(tfl_path.read_bytes()).hexdigest()
        old = read_json(aot_path)
        if (old and old.get("int8_sha256") == sha and old.get("images") == images
                and "arena_bytes" in old):
            done[key] = old
            continue
        if x is None:
            x = load_mnist().x_test[:images]
        prep = bench.prepare(key, tfl_path, x, work)
        row = bench.bench_one(prep, "dsp", work, timeout=900.0)
        src = (prep.gen_dir / "model_aot.c").read_text()
        rec = {"model_flash_bytes": row.flash_bytes - row.kernel_flash_bytes,
               "kernel_flash_bytes": row.kernel_flash_bytes, "instructions": row.instructions,
               "arena_bytes": row.arena_bytes,
               "agreement": row.agreement, "images": row.images, "macs": row.macs,
               "sparse_layers": src.count("nt_fully_connected_sparse("), "seed": seed,
               "int8_sha256": sha, "variant": "dsp"}
        write_json_atomic(aot_path, rec)
        done[key] = rec
    return done
