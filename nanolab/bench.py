"""Bench of a model: the model-level work around nanobench's device loop.

``nanobench`` talks to devices; this module gives it what it needs from the model side: the
images (the MNIST test set, or a folder of photos preprocessed by the trainer's MNIST-style
pipeline), the TFLM reference outputs, the firmware image when emulating (the model exported
with the AOT backend, then built), the footprint. ``bench`` is what ``tools/bench.py`` runs;
``fuzz_protocol`` and ``libfuzzer`` do the same for ``tools/fuzz_protocol.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import numpy as np

from nanobench import bench as nb
from nanobench import elfsize, firmware, fuzz, report
from nanobench import emulate as emu_mod
from nanobench.client import Device
from nanocore import checks
from nanocore.errors import UserError
from nanocore.paths import REPO_ROOT

log = logging.getLogger(__name__)

RENODE_ELF = REPO_ROOT / ".pio" / "build" / "nano33ble_renode" / "firmware.elf"


# ------------------------------------------------------------------------------- workloads


def mnist_workload(limit: int | None = None, data_dir: str | Path | None = None) -> nb.Workload:
    """The first ``limit`` (default all 10,000) MNIST test images."""
    from trainer.data import load_mnist

    data = load_mnist(data_dir)
    n = len(data.x_test) if limit is None else max(0, min(limit, len(data.x_test)))
    return nb.Workload(images=data.x_test[:n], labels=data.y_test[:n].astype(np.int64),
                       names=[str(i) for i in range(n)],
                       source=f"MNIST test set, images 0..{n - 1}")


def folder_workload(directory: str | Path, limit: int | None = None) -> nb.Workload:
    """Every readable photo under ``directory``; labels from `3_x.png` or `3/x.png` names
    (unlabelled images are streamed too, with label -1, and left out of the accuracy)."""
    from trainer.images import load_folder

    folder = load_folder(directory, require_label=False)
    n = len(folder.images) if limit is None else min(limit, len(folder.images))
    if n == 0:
        raise UserError(f"no usable image in {directory} ({len(folder.skipped)} skipped): "
                        "PNG/JPEG/BMP files of one dark-on-light or light-on-dark digit each")
    return nb.Workload(images=folder.images[:n], labels=folder.labels[:n],
                       names=folder.names[:n], source=f"folder {directory} ({n} images)",
                       skipped=list(folder.skipped))


def tflm_reference(tflite: bytes, progress: bool = False) -> nb.ReferenceFn:
    """The TFLM reference interpreter of ``tflite`` as nanobench wants it: uint8 images
    (N,28,28) to int8 output vectors. The interpreter is loaded on the first call; outputs for
    an image set it ran before are read from trainer.reference's cache."""

    def reference(images: np.ndarray) -> np.ndarray:
        from trainer.reference import run_cached

        return run_cached(tflite, images, progress=progress)

    return reference


# ------------------------------------------------------------------------- firmware images


def model_dir_for(tflite_path: str | Path) -> Path:
    """The exported model folder the firmware is built from for this .tflite: the committed
    ``firmware/lib/model`` when it is the same model, else ``build/models/<sha16>/`` (exported
    once with the AOT backend, reused while its manifest names the same sha256)."""
    path = Path(tflite_path)
    if not path.is_file():
        raise UserError(f"model not found: {path} (train and export one: python -m trainer ...)")
    sha = nb.model_sha256(path.read_bytes())
    default = firmware.DEFAULT_MODEL_DIR / "model_int8.tflite"
    if default.is_file() and nb.model_sha256(default.read_bytes()) == sha:
        return firmware.check_model_dir(None)
    out = firmware.BUILD_DIR / "models" / sha[:16]
    manifest = out / "manifest.json"
    try:
        same = json.loads(manifest.read_text())["source"]["sha256"] == sha
    except (OSError, ValueError, KeyError, TypeError):
        same = False
    if not same or any(not (out / f).is_file() for f in firmware.MODEL_FILES):
        from trainer.export import export

        log.info("exporting %s to %s", path, out)
        export(path, out, backend="aot")
    return firmware.check_model_dir(out)


def build_image(kind: str, tflite_path: str | Path) -> Path:
    """Build (or reuse) the firmware image for ``--emulate kind`` running this model."""
    if kind == "qemu":
        return firmware.build_qemu(model_dir_for(tflite_path))
    if kind == "host":
        # No sanitizers: this is for measuring; the fuzz tests build the sanitized one.
        return firmware.build_host(model_dir_for(tflite_path), sanitize=False)
    if kind == "renode":
        # Renode runs the real Nano 33 BLE firmware, which only PlatformIO builds.
        if RENODE_ELF.is_file():
            return RENODE_ELF
        raise UserError(f"{RENODE_ELF} not found: build it with `pio run -e nano33ble_renode` "
                        "(for this model), or pass the ELF with --elf")
    raise UserError(f"unknown emulator {kind!r}: choose qemu, renode or host")


# ----------------------------------------------------------------------------------- bench


def run(device: Device, workload: nb.Workload, tflite: bytes, *, model_name: str = "the model",
        window: int = 8, footprint: dict | None = None, progress: bool = True,
        max_lost: int | None = None) -> nb.Result:
    """``nanobench.bench.run`` for the model ``tflite``: its sha256 is what the device must
    run, its TFLM reference outputs are what every output vector is compared with."""
    return nb.run(device, workload, tflm_reference(tflite, progress),
                  sha256=nb.model_sha256(tflite), model_name=model_name, window=window,
                  footprint=footprint, progress=progress, max_lost=max_lost)


def bench(*, port: str | None = None, emulate: str | None = None, model: str | Path,
          limit: int | None = None, images: str | Path | None = None,
          elf: str | Path | None = None, out: str | Path | None = None,
          window: int | None = None,
          timeout: float = 2.0, link: str = "pipe", max_lost: int | None = None,
          progress: bool = True) -> tuple[dict, dict[str, Path]]:
    """One bench run as ``tools/bench.py`` does it: open ``port`` or build (unless ``elf`` is
    given) and start the ``emulate`` device, stream the MNIST test set (first ``limit``) or the
    photos in ``images``, check against the TFLM reference, write the report into ``out``
    (default runs/<timestamp>/). ``window``: requests in flight, default
    ``nanobench.bench.default_window`` for the transport. ``max_lost``: stop once more images
    than this are lost (None: never).

    Every output path is checked before any work. A run that stops early still writes its
    folder (``summary["complete"]`` False, ``summary["stop_reason"]``); the caller turns that
    and ``summary["lost"]`` into an exit status. Returns (summary, output paths)."""
    model = Path(model)
    elf = Path(elf) if elf is not None else None
    if (port is None) == (emulate is None):
        raise UserError("give either --port URL (e.g. /dev/ttyACM0, socket://HOST:PORT) or "
                        "--emulate qemu|renode|host")
    if not model.is_file():
        raise UserError(f"model not found: {model} (pass --model PATH.tflite)")
    if timeout is None or not timeout > 0 or timeout == float("inf"):
        raise UserError(f"timeout must be a finite number of seconds > 0, got {timeout}")
    if window is not None and window < 1:
        raise UserError(f"window must be >= 1, got {window}")
    if limit is not None and limit < 1:
        raise UserError(f"limit must be >= 1 image, got {limit}")
    out = Path(out) if out else nb.default_out_dir()
    checks.writable_dir(out, "--out")
    tflite = model.read_bytes()
    from trainer.tflite_info import check_digit_classifier

    check_digit_classifier(tflite, str(model))
    if window is None:
        window = nb.default_window(emulate, link)
    with contextlib.ExitStack() as stack:
        if port:  # open it first: a missing or busy port fails before any slow step
            device = stack.enter_context(Device(port, timeout=timeout))
        workload = folder_workload(images, limit) if images else mnist_workload(limit)
        if emulate and elf is None:
            elf = build_image(emulate, model)
        fp = None
        if elf is not None and emulate != "host":  # a host executable has no flash or RAM
            fp = elfsize.footprint(elf).as_dict()
        if emulate:
            emu = stack.enter_context(emu_mod.emulate(emulate, elf, link=link))
            device = stack.enter_context(Device(emu.port, timeout=timeout))
        result = run(device, workload, tflite, model_name=str(model), window=window,
                     footprint=fp, progress=progress, max_lost=max_lost)
    summary = result.summary
    summary["emulator"] = emulate
    summary["elf"] = str(elf) if elf else None
    source = f"{workload.source}; model {model}; " + (f"--emulate {emulate}" if emulate
                                                       else f"--port {port}")
    paths = report.write_run(out, result.samples, summary, source)
    return summary, paths


# ---------------------------------------------------------------------- the protocol fuzzer


def fuzz_images(n_mnist: int = fuzz.POOL_IMAGES) -> np.ndarray:
    """The fuzzer's INFER pool: MNIST test images 0..n-1 (when the dataset is cached or can be
    fetched) plus ``nanobench.fuzz.synthetic_images()`` (uint8 (N,28,28))."""
    try:
        from trainer.data import load_mnist

        mnist = list(load_mnist().x_test[:n_mnist])
    except UserError as exc:
        log.warning("MNIST not available (%s): synthetic images only", exc)
        mnist = []
    return np.stack(mnist + list(fuzz.synthetic_images()))


def _model_reference(model_dir: str | Path | None) -> nb.ReferenceFn:
    """The TFLM reference of the model folder's model_int8.tflite (read on the first call)."""

    def reference(images: np.ndarray) -> np.ndarray:
        tflite = firmware.check_model_dir(model_dir) / "model_int8.tflite"
        return tflm_reference(tflite.read_bytes())(images)

    return reference


def fuzz_protocol(target: str, frames: int, seed: int = 0, *,
                  model_dir: str | Path | None = None, images: np.ndarray | None = None,
                  batch: int | None = None, hang_s: float | None = None,
                  progress: bool = False, report_every: int = 0) -> fuzz.FuzzStats:
    """``nanobench.fuzz.run`` on the firmware built for ``model_dir`` (default: the committed
    model), INFER results checked against the TFLM reference of its model_int8.tflite, over
    ``images`` (default ``fuzz_images()``)."""
    images = fuzz_images() if images is None else images
    return fuzz.run(target, frames, seed, images=images, reference=_model_reference(model_dir),
                    model_dir=model_dir, batch=batch, hang_s=hang_s, progress=progress,
                    report_every=report_every)


def libfuzzer(seconds: int, seed: int = 0, *, corpus: str | Path | None = None,
              model_dir: str | Path | None = None) -> fuzz.LibFuzzerStats:
    """``nanobench.fuzz.libfuzzer`` with seed frames of MNIST test images 0..3 (or synthetic
    images when MNIST is not available)."""
    return fuzz.libfuzzer(seconds, seed, images=fuzz_images(4), corpus=corpus,
                          model_dir=model_dir)
