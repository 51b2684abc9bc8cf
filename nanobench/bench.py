"""The bench: stream images to a device, check every output against the TFLM reference, report.

``tools/bench.py`` is the CLI around ``run``; ``Workload`` says what is streamed (the MNIST test
set or a folder of photos, preprocessed by the trainer's MNIST-style pipeline).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanobench import report
from nanobench.client import Device, DeviceError, Inference, Lost
from nanocore import checks
from nanocore.errors import UserError

log = logging.getLogger(__name__)

kRenodeElf = Path(__file__).resolve().parents[1] / ".pio" / "build" / "nano33ble_renode" / \
    "firmware.elf"
kTimerUnits = {"cycles": "cycles", "instructions": "instructions", "us": "us"}


@dataclass(frozen=True)
class Workload:
    """Images to stream: ``images`` uint8 (N,28,28) 0 = background, ``labels`` int (N,) with -1
    for unknown, ``names`` (N,) (test-set index or file name), ``skipped`` (name, reason) for
    files that could not be used, ``source`` a one-line description."""

    images: np.ndarray
    labels: np.ndarray
    names: list[str]
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)


def mnist_workload(limit: int | None = None, data_dir: str | Path | None = None) -> Workload:
    """The first ``limit`` (default all 10,000) MNIST test images."""
    from trainer.data import load_mnist

    data = load_mnist(data_dir)
    n = len(data.x_test) if limit is None else max(0, min(limit, len(data.x_test)))
    return Workload(images=data.x_test[:n], labels=data.y_test[:n].astype(np.int64),
                    names=[str(i) for i in range(n)],
                    source=f"MNIST test set, images 0..{n - 1}")


def folder_workload(directory: str | Path, limit: int | None = None) -> Workload:
    """Every readable photo under ``directory``; labels from `3_x.png` or `3/x.png` names
    (unlabelled images are streamed too, with label -1, and left out of the accuracy)."""
    from trainer.images import load_folder

    folder = load_folder(directory, require_label=False)
    n = len(folder.images) if limit is None else min(limit, len(folder.images))
    if n == 0:
        raise UserError(f"no usable image in {directory} ({len(folder.skipped)} skipped): "
                        "PNG/JPEG/BMP files of one dark-on-light or light-on-dark digit each")
    return Workload(images=folder.images[:n], labels=folder.labels[:n], names=folder.names[:n],
                    source=f"folder {directory} ({n} images)", skipped=list(folder.skipped))


def model_sha256(tflite: bytes) -> str:
    """Full sha256 hex of the model bytes (the device reports the first 16 hex digits)."""
    return hashlib.sha256(tflite).hexdigest()


def check_model(info: dict[str, str], tflite: bytes, model_name: str) -> str:
    """Refuse to bench when the device runs another model than ``tflite``; returns the sha."""
    sha = model_sha256(tflite)
    dev = info.get("model_sha256", "").lower()
    if not dev:
        raise UserError("the device does not report its model's sha256: old firmware? "
                        "rebuild and flash it")
    if not sha.startswith(dev) or len(dev) < 8:
        raise UserError(f"the device runs model {dev}, but {model_name} is {sha[:16]}: flash or "
                        "build the firmware for that model, or pass its .tflite with --model")
    return sha


@dataclass
class Result:
    """What ``run`` measured: the summary dict, the samples, the lost image indices.
    ``complete`` is False when streaming stopped early; ``stop_reason`` then says why."""

    summary: dict
    samples: list[report.Sample]
    lost: list[Lost]
    info: dict[str, str]
    complete: bool = True
    stop_reason: str | None = None
    interrupted: bool = False


def _stop_reason(exc: BaseException) -> str:
    """One short phrase for why streaming stopped (the first line of the error)."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def run(device: Device, workload: Workload, tflite: bytes, *, model_name: str = "the model",
        window: int = 8, footprint: dict | None = None, progress: bool = True,
        max_lost: int | None = None) -> Result:
    """HELLO, model check, RESET, stream every image (pipelined), STATS; compare each output
    vector with the TFLM reference and summarize. Lost images are counted, never scored.

    Streaming that stops early (the link fails, the emulator dies, Ctrl-C, more than
    ``max_lost`` images lost) still returns every sample received, with ``complete`` False.
    Device and reference accuracy are both taken over the labelled images the device answered.
    """
    from trainer.reference import Reference

    info = device.hello()
    sha = check_model(info, tflite, model_name)
    timer = info.get("timer", "")
    unit = kTimerUnits.get(timer)
    if unit is None:
        raise UserError(f"the device reports an unknown timer kind {timer!r}")
    ticks_to_units = int(info.get("ticks_to_units", "1") or 1)

    ref_model = Reference(tflite)
    reference = ref_model.run(workload.images, progress=progress)
    outputs = int(np.prod(reference.shape[1:]))

    device.reset()
    device.reset_counters()
    samples: list[report.Sample] = []
    lost: list[Lost] = []
    n = len(workload.images)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc=f"bench {info.get('board', '?')}", unit="img", mininterval=0.5)
    t0 = time.monotonic()
    stop_reason: str | None = None
    interrupted = False
    stream = device.infer_many(workload.images, window=window, outputs=outputs)
    try:
        for out in stream:
            if isinstance(out, Inference):
                i = out.index
                samples.append(report.Sample(
                    index=i, name=workload.names[i], label=int(workload.labels[i]),
                    prediction=out.label, scores=tuple(out.scores),
                    reference=tuple(int(v) for v in reference[i]),
                    latency_ticks=out.latency_ticks, latency=out.latency_ticks * ticks_to_units,
                    round_trip_ms=out.round_trip_s * 1000.0, retries=out.retries))
            else:
                lost.append(out)
                log.warning("image %s lost: %s", workload.names[out.index], out.reason)
            if bar is not None:
                bar.update(1)
                if device.counters.errors:
                    bar.set_postfix(errors=device.counters.errors,
                                    retries=device.counters.retries, refresh=False)
            if max_lost is not None and len(lost) > max_lost:
                stop_reason = f"lost-sample budget exceeded ({len(lost)} > {max_lost})"
                break
    except (DeviceError, OSError) as exc:
        stop_reason = _stop_reason(exc)
    except KeyboardInterrupt as exc:
        stop_reason = _stop_reason(exc)
        interrupted = True
    finally:
        stream.close()
        if bar is not None:
            bar.close()
    seconds = time.monotonic() - t0
    samples.sort(key=lambda s: s.index)
    counters = device.counters
    stats: dict[str, str] = {}
    if stop_reason is None:
        stats = device.stats()
    stack = stats.get("stack_used_bytes") or info.get("stack_used_bytes")
    # The reference's accuracy over the same images as the device's: those it answered.
    answered = np.array([s.index for s in samples if s.label >= 0], dtype=np.int64)
    ref_acc = (float(np.mean(np.argmax(reference[answered], axis=1)
                             == workload.labels[answered])) if len(answered) else None)
    summary = report.summarize(
        samples, info=info, latency_unit=unit, errors=counters.errors,
        retries=counters.retries, lost=len(lost), skipped=len(workload.skipped),
        seconds=seconds, model_sha256=sha, footprint=footprint,
        stack_used_bytes=int(stack) if stack else None, reference_accuracy=ref_acc,
        clock_hz=int(info["clock_hz"]) if info.get("clock_hz", "").isdigit() else None,
        complete=stop_reason is None, stop_reason=stop_reason, images=len(workload.images))
    summary["source"] = workload.source
    summary["window"] = window
    summary["link"] = {"infer_rle": info.get("infer_rle") == "1", "sent": counters.sent,
                       "error_frames": counters.error_frames,
                       "bad_frames": counters.bad_frames, "malformed": counters.malformed,
                       "timeouts": counters.timeouts, "stale": counters.stale,
                       "error_codes": counters.error_codes}
    summary["device_stats"] = stats
    if lost:
        summary["lost_images"] = [{"name": workload.names[x.index], "reason": x.reason,
                                   "attempts": x.attempts} for x in lost[:1000]]
    if workload.skipped:
        summary["skipped_files"] = [{"name": n, "reason": r} for n, r in workload.skipped]
    return Result(summary=summary, samples=samples, lost=lost, info=info,
                  complete=stop_reason is None, stop_reason=stop_reason, interrupted=interrupted)


def default_out_dir(root: str | Path = "runs") -> Path:
    """runs/<UTC timestamp>/ (a new folder per run)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out = Path(root) / stamp
    k = 1
    while out.exists():
        k += 1
        out = Path(root) / f"{stamp}-{k}"
    return out


def model_dir_for(tflite_path: str | Path) -> Path:
    """The exported model folder the firmware is built from for this .tflite: the committed
    ``firmware/lib/model`` when it is the same model, else ``build/models/<sha16>/`` (exported
    once with the AOT backend, reused while its manifest names the same sha256)."""
    import json

    from nanobench import firmware

    path = Path(tflite_path)
    if not path.is_file():
        raise UserError(f"model not found: {path} (train and export one: python -m trainer ...)")
    sha = model_sha256(path.read_bytes())
    default = firmware.DEFAULT_MODEL_DIR / "model_int8.tflite"
    if default.is_file() and model_sha256(default.read_bytes()) == sha:
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
    from nanobench import firmware

    if kind == "qemu":
        return firmware.build_qemu(model_dir_for(tflite_path))
    if kind == "host":
        # No sanitizers: this is for measuring; the fuzz tests build the sanitized one.
        return firmware.build_host(model_dir_for(tflite_path), sanitize=False)
    if kind == "renode":
        # Renode runs the real Nano 33 BLE firmware, which only PlatformIO builds.
        if kRenodeElf.is_file():
            return kRenodeElf
        raise UserError(f"{kRenodeElf} not found: build it with `pio run -e nano33ble_renode` "
                        "(for this model), or pass the ELF with --elf")
    raise UserError(f"unknown emulator {kind!r}: choose qemu, renode or host")


# Requests in flight by default, per transport: the fastest window measured (issue 15; the
# figures are in README.md, "The bench"). A window above 1 keeps the next request waiting in the
# link while the device infers, so the device never idles on the host's turnaround; the QEMU
# port holds its UART interrupt off during invoke, so the latency does not depend on it.
# Measured only for QEMU (pipe and TCP: medians of 5 runs on a loaded machine, README.md). The
# host build, Renode and a real port were not measured: 4, 4 and 2 (the Arduino core's serial
# buffer is small; docs/PROTOCOL.md, "Pipelining").
kDefaultWindow = {("qemu", "pipe"): 4, ("qemu", "tcp"): 4, ("host", "pipe"): 4,
                  ("host", "tcp"): 4, ("renode", "tcp"): 4}
kDefaultPortWindow = 2


def default_window(emulate: str | None, link: str = "pipe") -> int:
    """The default requests in flight for ``--emulate`` kind and ``link`` (None: a real port).
    Renode always talks over TCP, whatever ``link`` says."""
    if emulate is None:
        return kDefaultPortWindow
    return kDefaultWindow.get((emulate, "tcp" if emulate == "renode" else link), 4)


def bench(*, port: str | None = None, emulate: str | None = None, model: str | Path,
          limit: int | None = None, images: str | Path | None = None,
          elf: str | Path | None = None, out: str | Path | None = None,
          window: int | None = None,
          timeout: float = 2.0, link: str = "pipe", max_lost: int | None = None,
          progress: bool = True) -> tuple[dict, dict[str, Path]]:
    """One bench run as ``tools/bench.py`` does it: open ``port`` or build (unless ``elf`` is
    given) and start the ``emulate`` device, stream the MNIST test set (first ``limit``) or the
    photos in ``images``, check against the TFLM reference, write the report into ``out``
    (default runs/<timestamp>/). ``window``: requests in flight, default ``default_window``
    for the transport. ``max_lost``: stop once more images than this are lost (None: never).

    Every output path is checked before any work. A run that stops early still writes its
    folder (``summary["complete"]`` False, ``summary["stop_reason"]``); the caller turns that
    and ``summary["lost"]`` into an exit status. Returns (summary, output paths)."""
    import contextlib

    from nanobench import emulate as emu_mod
    from nanobench.elfsize import footprint

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
    out = Path(out) if out else default_out_dir()
    checks.writable_dir(out, "--out")
    tflite = model.read_bytes()
    from trainer.tflite_info import check_digit_classifier

    check_digit_classifier(tflite, str(model))
    if window is None:
        window = default_window(emulate, link)
    with contextlib.ExitStack() as stack:
        if port:  # open it first: a missing or busy port fails before any slow step
            device = stack.enter_context(Device(port, timeout=timeout))
        workload = folder_workload(images, limit) if images else mnist_workload(limit)
        if emulate and elf is None:
            elf = build_image(emulate, model)
        fp = None
        if elf is not None and emulate != "host":  # a host executable has no flash or RAM
            fp = footprint(elf).as_dict()
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
