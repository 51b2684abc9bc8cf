"""The bench's device side: stream images to a device, compare every output vector with the
reference outputs its caller gives, summarize.

``run`` takes a ``Workload`` (the images, their labels and names) and a function that gives the
reference outputs for them; it never loads a dataset or a model itself. ``nanolab.bench`` builds
both (MNIST or a photo folder, the TFLM reference interpreter) and is what ``tools/bench.py``
calls.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanobench import report
from nanobench.client import Device, DeviceError, Inference, Lost
from nanocore.errors import UserError

log = logging.getLogger(__name__)

TIMER_UNITS = {"cycles": "cycles", "instructions": "instructions", "us": "us"}


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


def model_sha256(tflite: bytes) -> str:
    """Full sha256 hex of the model bytes (the device reports the first 16 hex digits)."""
    return hashlib.sha256(tflite).hexdigest()


def check_model(info: dict[str, str], sha: str, model_name: str) -> str:
    """Refuse to bench when the device runs another model than the one whose full sha256 hex is
    ``sha``; returns ``sha``."""
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


# Reference outputs for images: uint8 (N,28,28) in, the reference's int8 output vectors (N, ...)
# out (the TFLM reference interpreter, from nanolab.bench.tflm_reference).
ReferenceFn = Callable[[np.ndarray], np.ndarray]


def run(device: Device, workload: Workload, reference: ReferenceFn, *, sha256: str,
        model_name: str = "the model", window: int = 8, footprint: dict | None = None,
        progress: bool = True, max_lost: int | None = None) -> Result:
    """HELLO, model check (the device must run the model whose sha256 hex is ``sha256``),
    RESET, stream every image (pipelined), STATS; compare each output vector with
    ``reference(workload.images)`` and summarize. Lost images are counted, never scored.

    ``reference`` is called after the model check, so a device running another model is
    refused before the (slow) reference run.

    Streaming that stops early (the link fails, the emulator dies, Ctrl-C, more than
    ``max_lost`` images lost) still returns every sample received, with ``complete`` False.
    Device and reference accuracy are both taken over the labelled images the device answered.
    """
    info = device.hello()
    sha = check_model(info, sha256, model_name)
    timer = info.get("timer", "")
    unit = TIMER_UNITS.get(timer)
    if unit is None:
        raise UserError(f"the device reports an unknown timer kind {timer!r}")
    ticks_to_units = int(info.get("ticks_to_units", "1") or 1)

    reference = np.asarray(reference(workload.images))
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


# Requests in flight by default, per transport: the fastest window measured (issue 15; the
# figures are in README.md, "The bench"). A window above 1 keeps the next request waiting in the
# link while the device infers, so the device never idles on the host's turnaround; the QEMU
# port holds its UART interrupt off during invoke, so the latency does not depend on it.
# Measured only for QEMU (pipe and TCP: medians of 5 runs on a loaded machine, README.md). The
# host build, Renode and a real port were not measured: 4, 4 and 2 (the Arduino core's serial
# buffer is small; docs/PROTOCOL.md, "Pipelining").
DEFAULT_WINDOW = {("qemu", "pipe"): 4, ("qemu", "tcp"): 4, ("host", "pipe"): 4,
                  ("host", "tcp"): 4, ("renode", "tcp"): 4}
DEFAULT_PORT_WINDOW = 2


def default_window(emulate: str | None, link: str = "pipe") -> int:
    """The default requests in flight for ``--emulate`` kind and ``link`` (None: a real port).
    Renode always talks over TCP, whatever ``link`` says."""
    if emulate is None:
        return DEFAULT_PORT_WINDOW
    return DEFAULT_WINDOW.get((emulate, "tcp" if emulate == "renode" else link), 4)
