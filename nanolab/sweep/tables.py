"""The report's tables (Markdown lines), one function per group kind, and the number formats
every part of the report shares. Figures come from :func:`nanolab.sweep.aggregate.aggregate`.
"""

from __future__ import annotations

import math
from typing import Any

from nanolab.sweep.aggregate import inside
from nanolab.sweep.study import Group, GroupPoint, Study

Agg = dict[str, dict[str, Any]]


def fixed(x: float | None, nd: int = 4) -> str:
    """``x`` with ``nd`` decimals; "—" for a missing figure (None or NaN)."""
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def pm(m: float | None, s: float, nd: int = 4) -> str:
    """Mean ± std (just the mean when the std is unknown, i.e. one seed)."""
    if m is None or math.isnan(m):
        return "—"
    return f"{m:.{nd}f}" if math.isnan(s) else f"{m:.{nd}f} ± {s:.{nd}f}"


def whole(x: float | None) -> str:
    """A count with thousands separators ("68,270")."""
    return "—" if x is None or math.isnan(x) else f"{round(x):,}"


def signed(x: float | None, nd: int = 4) -> str:
    """A difference, always with its sign."""
    return "—" if x is None or math.isnan(x) else f"{x:+.{nd}f}"


def yes_no(b: bool | None) -> str:
    """A check or spread test: yes, **no**, or "—" when it cannot be decided."""
    return "—" if b is None else ("yes" if b else "**no**")


def baseline_of(g: Group) -> GroupPoint:
    """The group's baseline point (its first point when it names none)."""
    return next((p for p in g.points if p.label == g.baseline), g.points[0])


def ref_of(g: Group, gp: GroupPoint) -> GroupPoint:
    """The point a compression row compares with: its ``ref``, else the group's baseline."""
    name = gp.ref or g.baseline
    return next((p for p in g.points if p.label == name), g.points[0])


def seed_table(g: Group, agg: Agg) -> list[str]:
    """Side-by-side table of a seed group: the seed's delta, ours, and the spread test."""
    base_gp = baseline_of(g)
    b = agg[base_gp.key]
    seed_b_acc = g.seed_baseline.get("acc", math.nan)
    seed_b_params = g.seed_baseline.get("params", math.nan)
    lines = [
        f"Baseline: **{base_gp.label}**; seed baseline accuracy {fixed(seed_b_acc)}, "
        f"ours {pm(b['float_accuracy'], b['float_accuracy_std'])} (float, n={b['n']})."
        + (f" Seed baseline params {whole(seed_b_params)}, ours {whole(b['keras_params'])}."
           if not math.isnan(seed_b_params) else ""),
        "",
        ("| variant | seed Δacc | our Δacc (mean ± std) | our − seed | Δ inside 2σ | seed acc | "
         "our acc (mean ± std) | abs inside 2σ | seed Δparams | our Δparams | our int8 acc |"),
        "|---|---:|---:|---:|:---:|---:|---:|:---:|---:|---:|---:|",
    ]
    for gp in g.points:
        a = agg[gp.key]
        seed_d = gp.seed.get("acc_delta", 0.0 if gp.label == base_gp.label else math.nan)
        seed_acc = seed_b_acc + seed_d if not math.isnan(seed_d) else gp.seed.get("acc", math.nan)
        ours_d = a["float_accuracy"] - b["float_accuracy"]
        # A single-seed difference (what the seed measured) has variance σ_v² + σ_b².
        d_std = math.sqrt(a["float_accuracy_std"] ** 2 + b["float_accuracy_std"] ** 2)
        d_in = None if gp.label == base_gp.label else inside(seed_d, ours_d, d_std)
        seed_dp = gp.seed.get("params_delta", 0.0 if gp.label == base_gp.label else math.nan)
        lines.append(
            f"| {gp.label} | {signed(seed_d)} | {signed(ours_d)} ± {fixed(d_std)} | "
            f"{signed(ours_d - seed_d)} | {yes_no(d_in)} | {fixed(seed_acc)} | "
            f"{pm(a['float_accuracy'], a['float_accuracy_std'])} | "
            f"{yes_no(inside(seed_acc, a['float_accuracy'], a['float_accuracy_std']))} | "
            f"{signed(seed_dp, 0) if not math.isnan(seed_dp) else '—'} | "
            f"{signed(a['keras_params'] - b['keras_params'], 0)} | "
            f"{pm(a['int8_accuracy'], a['int8_accuracy_std'])} |")
    return lines


def compression_table(g: Group, agg: Agg) -> list[str]:
    """Sizes of a compression group's points next to their reference point's."""
    lines = [
        ("Sizes in bytes. *gzip vs ref*: the reference point's gzip size divided by this one's "
         "(> 1: smaller). Flash holds the flatbuffer uncompressed; gzip shows what the zeros "
         "of pruning are worth once something compresses them (a download, an OTA image, or a "
         "sparse/compressed weight format). *AOT flash B* and *AOT instr*: on the chip, with "
         "the AOT backend (QEMU Cortex-M4, DSP kernels, first seed; `trainer sweep --aot`): the "
         "generated model's own flash (weights, sparse indices, constants and its code, from "
         "the ELF; kernels excluded) and instructions per inference, in parentheses as a share "
         "of the reference point's. Fully connected layers take the block-sparse format where "
         "it is smaller than dense, bit-exact (agreement with the TFLM reference in *AOT agr*)."),
        "",
        ("| point | ref | float acc | int8 acc | int8 − float (points) | float B | int8 B | "
         "int8/float | float gzip B | int8 gzip B | float gzip vs ref | int8 gzip vs ref | "
         "AOT flash B | AOT instr | AOT agr | "
         "sparsity (int8 weights) | params + KiB, int8 | params + KiB, float |"),
        "|---|---|" + "---:|" * 16,
    ]
    for gp in g.points:
        a = agg[gp.key]
        r = agg[ref_of(g, gp).key]
        if not a["n"]:
            continue
        drop = 100 * (a["int8_accuracy"] - a["float_accuracy"])
        lines.append(
            f"| {gp.label} | {ref_of(g, gp).label} | "
            f"{pm(a['float_accuracy'], a['float_accuracy_std'])} | "
            f"{pm(a['int8_accuracy'], a['int8_accuracy_std'])} | {signed(drop, 2)} | "
            f"{whole(a['float_bytes'])} | {whole(a['int8_bytes'])} | "
            f"{fixed(100 * a['int8_bytes'] / a['float_bytes'], 1)} % | "
            f"{whole(a['float_gzip_bytes'])} | {whole(a['int8_gzip_bytes'])} | "
            f"{fixed(r['float_gzip_bytes'] / a['float_gzip_bytes'], 2)}x | "
            f"{fixed(r['int8_gzip_bytes'] / a['int8_gzip_bytes'], 2)}x | "
            f"{_aot_cell(a, r, 'model_flash_bytes')} | {_aot_cell(a, r, 'instructions')} | "
            f"{fixed(a['aot']['agreement']) if a.get('aot') else '—'} | "
            f"{fixed(100 * a['sparsity'], 1)} % ({fixed(100 * a['int8_sparsity'], 1)} %) | "
            f"{fixed(a['seed_metric'], 1)} | {fixed(a['seed_metric_float'], 1)} |")
    return lines


def _aot_cell(a: dict[str, Any], r: dict[str, Any], field: str) -> str:
    """An AOT figure, with its share of the reference point's when both were measured."""
    if not a.get("aot"):
        return "—"
    v = a["aot"][field]
    if not r.get("aot") or not r["aot"][field]:
        return whole(v)
    return f"{whole(v)} ({100 * v / r['aot'][field]:.0f} %)"


def zoo_table(g: Group, agg: Agg) -> list[str]:
    """Accuracy, size, arena and latency of each point (zoo and plain groups)."""
    lines = [
        ("| point | float acc | int8 acc | params | MACs | int8 flatbuffer bytes | "
         "arena bytes | int8 gzip | latency | train s |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for gp in g.points:
        a = agg[gp.key]
        lines.append(
            f"| {gp.label} | {pm(a['float_accuracy'], a['float_accuracy_std'])} | "
            f"{pm(a['int8_accuracy'], a['int8_accuracy_std'])} | {whole(a['params'])} | "
            f"{whole(a['macs'])} | {whole(a['int8_bytes'])} | {whole(a['arena_bytes'])} | "
            f"{whole(a['int8_gzip_bytes'])} | {latency_str(a.get('latency'))} | "
            f"{fixed(a['train_seconds'], 0)} |")
    return lines


def latency_str(lat: dict[str, Any] | None) -> str:
    """A stored latency as "p50 unit (p50, device)", or "—"."""
    if not lat or lat.get("p50") is None:
        return "—"
    return f"{lat['p50']:,.0f} {lat['unit']} (p50, {lat.get('device', '?')})"


def all_points_table(study: Study, agg: Agg) -> list[str]:
    """Every point of the study, once, with its key and every label naming it."""
    lines = [
        ("| key | labels | n | float acc | int8 acc | params | MACs | float B | int8 B | "
         "int8 gzip B | arena B | sparsity | params + KiB | train s |"),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in study.points.values():
        a = agg[p.key]
        lines.append(
            f"| `{p.key}` | {', '.join(p.labels)} | {a['n']} | "
            f"{pm(a['float_accuracy'], a['float_accuracy_std'])} | "
            f"{pm(a['int8_accuracy'], a['int8_accuracy_std'])} | {whole(a['params'])} | "
            f"{whole(a['macs'])} | {whole(a['float_bytes'])} | {whole(a['int8_bytes'])} | "
            f"{whole(a['int8_gzip_bytes'])} | {whole(a['arena_bytes'])} | "
            f"{fixed(100 * a['sparsity'], 1)} % | {fixed(a['seed_metric'], 1)} | "
            f"{fixed(a['train_seconds'], 1)} |")
    return lines


def summary_table(study: Study, agg: Agg) -> list[str]:
    """The study's ``[[summary]]`` rows: the seed's weight and accuracy beside ours."""
    by_label = {f"{g.name}/{p.label}": p.key for g in study.groups for p in g.points}
    lines = [
        ("| model | seed weight | seed file KiB | ours, int8 weight | ours, float weight | "
         "our int8 / float file KiB | seed acc | our float acc | our int8 acc |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in study.summary:
        a = agg.get(by_label.get(s.get("point", ""), ""), None)
        if a is None:
            continue
        seed_w = s.get("seed_metric", math.nan)
        lines.append(
            f"| {s.get('label', s['point'])} | {fixed(seed_w, 1)} | "
            f"{fixed(seed_w - a['keras_params'], 1)} | "
            f"{fixed(a['seed_metric'], 1)} | {fixed(a['seed_metric_float'], 1)} | "
            f"{fixed(a['int8_bytes'] / 1024, 1)} / {fixed(a['float_bytes'] / 1024, 1)} | "
            f"{fixed(s.get('seed_acc', math.nan))} | "
            f"{pm(a['float_accuracy'], a['float_accuracy_std'])} | "
            f"{pm(a['int8_accuracy'], a['int8_accuracy_std'])} |")
    return lines
