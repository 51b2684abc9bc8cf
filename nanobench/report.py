"""Bench results on disk: samples.csv, summary.json, report.md, confusion and latency PNGs.

Names follow shared/DESIGN.md ("Measurements"): `accuracy` (top-1 on the images streamed),
`agreement` (share of device output vectors identical to the TFLM reference), `latency` (on the
device, around invoke only, in the device's timer unit: "cycles" on hardware, "instructions"
under QEMU icount), `round_trip_ms` (host-measured per image, including transfer and the time a
request waited in the pipeline window).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanocore import checks
from nanocore.errors import UserError

log = logging.getLogger(__name__)

# summary.json keys promised by issue 4; extra keys may follow, these are never renamed.
SUMMARY_KEYS = (
    "accuracy", "agreement", "n", "errors", "retries", "skipped", "latency", "round_trip_ms",
    "throughput_ips", "flash_bytes", "ram_bytes", "model_bytes", "arena_bytes",
    "arena_used_bytes", "stack_used_bytes", "backend", "board", "model_sha256",
)


@dataclass(frozen=True)
class Sample:
    """One image's result from the device, next to the TFLM reference's output.

    `label` is -1 when unknown; `scores`/`reference` are the int8 output vectors (10 values);
    `latency_ticks` is the device's raw count, `latency` the same in the device's timer unit;
    `round_trip_ms` is host wall time from the (last) send to the reply.
    """

    index: int
    name: str
    label: int
    prediction: int
    scores: tuple[int, ...]
    reference: tuple[int, ...]
    latency_ticks: int
    latency: float
    round_trip_ms: float
    retries: int = 0

    @property
    def agrees(self) -> bool:
        """True when the device's output vector equals the reference's, value for value."""
        return self.scores == self.reference


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of values; None when empty.

    Nearest rank, not interpolation: the figure is one latency the device really measured.
    """
    if len(values) == 0:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return float(ordered[rank - 1])


def summarize(
    samples: Sequence[Sample],
    *,
    info: dict[str, str],
    latency_unit: str,
    errors: int,
    retries: int,
    lost: int,
    skipped: int,
    seconds: float,
    model_sha256: str,
    footprint: dict | None = None,
    stack_used_bytes: int | None = None,
    reference_accuracy: float | None = None,
    clock_hz: int | None = None,
    complete: bool = True,
    stop_reason: str | None = None,
    images: int | None = None,
) -> dict:
    """Build the summary dict (summary.json) from the samples and the run's counters.

    `info` is the device's HELLO dict; `footprint` is `elfsize.Footprint.as_dict()` or None
    (then flash/RAM are null: they come only from an ELF); `seconds` is the wall time of the
    streaming (for throughput_ips, images per second). `complete` is False when streaming
    stopped early, `stop_reason` then says why in one phrase; `images` is how many images the
    run set out to stream (default: the samples plus the lost ones).
    `reference_accuracy` must cover the same images as `accuracy` (the labelled ones answered).
    """
    n = len(samples)
    labelled = [s for s in samples if s.label >= 0]
    accuracy = (sum(s.prediction == s.label for s in labelled) / len(labelled)
                if labelled else None)
    agreement = sum(s.agrees for s in samples) / n if n else None
    lat = [s.latency for s in samples]
    rtt = [s.round_trip_ms for s in samples]

    def as_int(key: str) -> int | None:
        try:
            return int(info[key])
        except (KeyError, ValueError):
            return None

    latency = {
        "unit": latency_unit,
        "p50": percentile(lat, 50),
        "p90": percentile(lat, 90),
        "p99": percentile(lat, 99),
        "max": max(lat) if lat else None,
    }
    summary: dict = {
        "accuracy": accuracy,
        "agreement": agreement,
        "n": n,
        "errors": errors,
        "retries": retries,
        "skipped": skipped,
        "latency": latency,
        "round_trip_ms": {"p50": percentile(rtt, 50), "p99": percentile(rtt, 99)},
        "throughput_ips": n / seconds if seconds > 0 else None,
        "flash_bytes": footprint["flash_bytes"] if footprint else None,
        "ram_bytes": footprint["ram_bytes"] if footprint else None,
        "model_bytes": as_int("model_bytes"),
        "arena_bytes": as_int("arena_bytes"),
        "arena_used_bytes": as_int("arena_used_bytes"),
        "stack_used_bytes": (stack_used_bytes if stack_used_bytes is not None
                             else as_int("stack_used_bytes")),
        "backend": info.get("backend"),
        "board": info.get("board"),
        "model_sha256": model_sha256,
        # Extra keys (not in the list, never replacing one of it).
        "complete": complete,
        "stop_reason": stop_reason,
        "lost": lost,
        "images": images if images is not None else n + lost,
        "labelled": len(labelled),
        "reference_accuracy": reference_accuracy,
        "seconds": seconds,
        "timer": info.get("timer"),
        # How the device kept the link out of the timed region (HELLO `timing`, board.h):
        # "link-held", "polled" or "link-live"; None from firmware that does not say.
        "timing": info.get("timing"),
        "firmware": info.get("fw"),
        "protocol": info.get("proto"),
    }
    if clock_hz and latency_unit == "cycles" and lat:
        # On hardware the cycle counter runs at the core clock, so cycles / clock = time.
        summary["latency_us"] = {
            k: (v * 1e6 / clock_hz if v is not None else None)
            for k, v in latency.items() if k != "unit"
        }
    if footprint:
        summary["footprint"] = {k: v for k, v in footprint.items() if k != "sections"}
    return summary


def write_samples_csv(path: Path, samples: Sequence[Sample]) -> None:
    """One row per image: index, name (file or test index), label, prediction, agrees, scores,
    reference scores, latency (ticks and units), round trip (ms), retries."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "name", "label", "prediction", "agrees", "scores", "reference",
                    "latency_ticks", "latency", "round_trip_ms", "retries"])
        for s in samples:
            w.writerow([s.index, s.name, s.label if s.label >= 0 else "", s.prediction,
                        int(s.agrees), " ".join(map(str, s.scores)),
                        " ".join(map(str, s.reference)), s.latency_ticks, f"{s.latency:g}",
                        f"{s.round_trip_ms:.3f}", s.retries])


def confusion(samples: Sequence[Sample], classes: int = 10) -> np.ndarray:
    """Confusion matrix, int (classes, classes): rows true label, columns prediction."""
    m = np.zeros((classes, classes), dtype=np.int64)
    for s in samples:
        if 0 <= s.label < classes and 0 <= s.prediction < classes:
            m[s.label, s.prediction] += 1
    return m


def plot_confusion(path: Path, matrix: np.ndarray, title: str) -> None:
    """Confusion matrix heat map with counts in the cells (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5.4))
    ax.imshow(np.log1p(matrix), cmap="Blues")
    hi = matrix.max() if matrix.size else 0
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if matrix[i, j]:
                dark = matrix[i, j] > hi / 3
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_xlabel("predicted on device")
    ax.set_ylabel("true label")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(path: Path, latencies: Sequence[float], unit: str, title: str) -> None:
    """Histogram of on-device latency per inference (PNG), p50/p99 marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    if len(latencies):
        ax.hist(latencies, bins=min(60, max(5, len(set(latencies)))), color="#4477aa")
        for q, style in ((50, "-"), (99, "--")):
            v = percentile(latencies, q)
            ax.axvline(v, color="black", linestyle=style, linewidth=1, label=f"p{q} {v:,.0f}")
        ax.legend(fontsize=8)
    ax.set_xlabel(f"latency per inference ({unit})")
    ax.set_ylabel("images")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v, spec: str = ",.0f") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and spec == "pct":
        return f"{100 * v:.2f} %"
    return format(v, spec)


def render_markdown(summary: dict, samples: Sequence[Sample], source: str) -> str:
    """report.md text: headline figures, footprint, per-class accuracy, disagreements."""
    lat = summary["latency"]
    unit = lat["unit"]
    lines = [
        "# nano-tflm bench report",
        "",
        f"- source: {source}",
        (f"- board: `{summary['board']}`, backend: `{summary['backend']}`, "
        f"firmware {summary.get('firmware')}, protocol {summary.get('protocol')}"),
        f"- model sha256: `{summary['model_sha256']}`",
        "",
        "| figure | value |",
        "|---|---|",
        f"| images answered (n) | {summary['n']} of {summary.get('images', summary['n'])} |",
        f"| accuracy (top-1, device) | {_fmt(summary['accuracy'], 'pct')} |",
        (f"| reference accuracy (TFLM on host, same images) | "
        f"{_fmt(summary.get('reference_accuracy'), 'pct')} |"),
        f"| agreement with TFLM reference | {_fmt(summary['agreement'], 'pct')} |",
        (f"| latency p50 / p90 / p99 / max ({unit}) | {_fmt(lat['p50'])} / {_fmt(lat['p90'])} / "
        f"{_fmt(lat['p99'])} / {_fmt(lat['max'])} |"),
    ]
    if "latency_us" in summary:
        us = summary["latency_us"]
        lines.append(f"| latency p50 / p99 (us) | {_fmt(us['p50'], ',.1f')} / "
                     f"{_fmt(us['p99'], ',.1f')} |")
    rt = summary["round_trip_ms"]
    lines += [
        (f"| round trip p50 / p99 (ms, host) | {_fmt(rt['p50'], '.2f')} / "
        f"{_fmt(rt['p99'], '.2f')} |"),
        f"| throughput (images/s) | {_fmt(summary['throughput_ips'], '.1f')} |",
        (f"| errors / retries / lost / skipped | {summary['errors']} / {summary['retries']} / "
        f"{summary.get('lost', 0)} / {summary['skipped']} |"),
        (f"| flash / RAM (bytes, from ELF) | {_fmt(summary['flash_bytes'])} / "
        f"{_fmt(summary['ram_bytes'])} |"),
        f"| model (bytes) | {_fmt(summary['model_bytes'])} |",
        (f"| arena reserved / used (bytes) | {_fmt(summary['arena_bytes'])} / "
        f"{_fmt(summary['arena_used_bytes'])} |"),
        f"| stack used (bytes, painted high-water mark) | {_fmt(summary['stack_used_bytes'])} |",
        "",
    ]
    labelled = summary.get("labelled", summary["n"])
    lines += [(f"Device accuracy and reference accuracy both cover the same {labelled} labelled "
              f"images the device answered; agreement covers all {summary['n']} answered."), ""]
    if summary.get("complete") is False:
        lines[2:2] = [(f"- **incomplete run**: {summary.get('stop_reason')}; "
                      f"{summary['n']} of {summary.get('images')} images answered")]
    if unit == "instructions":
        lines += [("Latency under QEMU `-icount shift=0` is an instruction count, not cycles or "
                  "time: it is deterministic and comparable between builds, not a clock figure."),
                  ""]
    timing = summary.get("timing")
    if timing:
        why = {"link-held": "the link's receive interrupt was masked during each invoke (the "
                            "transport buffers meanwhile), so latency is the inference alone",
               "polled": "the link has no interrupt (read only between inferences), so latency "
                         "is the inference alone",
               "link-live": "link interrupts may run during invoke and are counted in latency"}
        lines += [f"Timing method: `{timing}`: {why.get(timing, 'as the device reports')}.", ""]
    fp = summary.get("footprint")
    if fp and fp.get("breakdown"):
        lines += ["## Footprint breakdown (bytes, from the ELF)", "",
                  f"Attribution: {fp.get('attribution')}.", "",
                  "| part | flash | RAM |", "|---|---|---|"]
        for part, v in fp["breakdown"].items():
            lines.append(f"| {part} | {v['flash']:,} | {v['ram']:,} |")
        lines.append("")
    m = confusion(samples)
    if m.sum():
        lines += ["## Per-class accuracy", "", "| class | images | accuracy |", "|---|---|---|"]
        for c in range(m.shape[0]):
            total = int(m[c].sum())
            acc = f"{100 * m[c, c] / total:.2f} %" if total else "n/a"
            lines.append(f"| {c} | {total} | {acc} |")
        lines += ["", "![confusion matrix](confusion.png)", ""]
    lines += ["![latency histogram](latency.png)", ""]
    bad = [s for s in samples if not s.agrees]
    if bad:
        lines += [f"## Disagreements with the reference ({len(bad)}, first 20)", "",
                  "| image | device | reference |", "|---|---|---|"]
        for s in bad[:20]:
            lines.append(f"| {s.name} | {list(s.scores)} | {list(s.reference)} |")
        lines.append("")
    return "\n".join(lines)


def write_run(out_dir: Path, samples: Sequence[Sample], summary: dict,
              source: str) -> dict[str, Path]:
    """Write every output file of a bench run into out_dir; returns their paths by kind.
    samples.csv and summary.json go first (they hold the results); a failure to write is a
    one-line UserError."""
    try:
        return _write_run(out_dir, samples, summary, source)
    except OSError as exc:
        raise UserError(f"cannot write the run folder {out_dir}: "
                        f"{exc.strerror or exc} ({exc.filename or out_dir})") from None


def _write_run(out_dir: Path, samples: Sequence[Sample], summary: dict,
               source: str) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "samples": out_dir / "samples.csv",
        "summary": out_dir / "summary.json",
        "report": out_dir / "report.md",
        "confusion": out_dir / "confusion.png",
        "latency": out_dir / "latency.png",
    }
    write_samples_csv(paths["samples"], samples)
    paths["summary"].write_text(checks.dumps(summary, indent=2) + "\n")
    paths["report"].write_text(render_markdown(summary, samples, source))
    title = f"{summary['board']} / {summary['backend']}, n={summary['n']}"
    plot_confusion(paths["confusion"], confusion(samples), f"confusion: {title}")
    plot_latency(paths["latency"], [s.latency for s in samples], summary["latency"]["unit"],
                 f"on-device latency: {title}")
    log.info("wrote %s", out_dir)
    return paths


def format_summary(summary: dict) -> str:
    """A few lines for the terminal: the figures `make demo` prints."""
    lat = summary["latency"]
    unit = lat["unit"]
    acc = summary["accuracy"]
    ref = summary.get("reference_accuracy")
    lines = [
        f"images {summary['n']}  accuracy {_fmt(acc, 'pct')}"
        + (f" (reference {_fmt(ref, 'pct')})" if ref is not None else "")
        + f"  agreement {_fmt(summary['agreement'], '.4f')}",
        (f"latency ({unit}) p50 {_fmt(lat['p50'])}  p90 {_fmt(lat['p90'])}  "
        f"p99 {_fmt(lat['p99'])}  max {_fmt(lat['max'])}"),
        (f"round trip p50 {_fmt(summary['round_trip_ms']['p50'], '.2f')} ms  "
        f"throughput {_fmt(summary['throughput_ips'], '.1f')} images/s  "
        f"errors {summary['errors']}  retries {summary['retries']}  "
        f"lost {summary.get('lost', 0)}  skipped {summary['skipped']}"),
        (f"flash {_fmt(summary['flash_bytes'])} B  RAM {_fmt(summary['ram_bytes'])} B  "
        f"model {_fmt(summary['model_bytes'])} B  arena {_fmt(summary['arena_used_bytes'])}"
        f"/{_fmt(summary['arena_bytes'])} B used  stack {_fmt(summary['stack_used_bytes'])} B"),
        (f"board {summary['board']}  backend {summary['backend']}  "
        f"model {str(summary['model_sha256'])[:16]}"),
    ]
    return "\n".join(lines)
