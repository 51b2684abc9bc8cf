"""What a report concludes, by the study's own rules: its groups' acceptance checks
(``[[group.check]]``) and a compression group's conclusions (``[group.conclusions]``), filled
with this sweep's figures. The thresholds and the words are the study's; the code computes.
"""

from __future__ import annotations

import math
from typing import Any

from nanolab.sweep.study import Check, Group, GroupPoint, Study
from nanolab.sweep.tables import Agg, baseline_of, fixed, pm, ref_of, signed, whole

# A point counts as pruned to a check's min_sparsity when its measured (mean) sparsity is within
# this of it: measured sparsity may land a hair under the target.
_SPARSITY_SLACK = 1e-3


def _pct(x: float) -> str:
    return f"{100 * x:g}"


def _check(c: Check, g: Group, gp: GroupPoint,
           agg: Agg) -> tuple[str, bool | None, str] | None:
    """One check on one point: (name, passed, measured), or None when it does not apply."""
    a, lim = agg[gp.key], c.limits
    if c.kind == "int8_size":
        if a["sparsity"] >= lim["unpruned_below"] or a["options"].get("qat"):
            return None
        ratio = a["int8_bytes"] / a["float_bytes"]
        drop = 100 * (a["float_accuracy"] - a["int8_accuracy"])
        name = (f"int8 ≤ {_pct(lim['max_ratio'])} % of float at ≤ "
                f"{lim['max_drop_points']:g} points: {gp.label}")
        return (name,
                ratio <= lim["max_ratio"] and drop <= lim["max_drop_points"],
                f"{100 * ratio:.1f} %, int8 − float {-drop:+.2f} points")
    if c.kind == "pruned_gzip":
        r = agg[ref_of(g, gp).key]
        if not r["n"] or a["sparsity"] < lim["min_sparsity"] - _SPARSITY_SLACK:
            return None
        x = r["int8_gzip_bytes"] / a["int8_gzip_bytes"]
        name = (f"pruning ≥ {_pct(lim['min_sparsity'])} % shrinks int8 gzip ≥ "
                f"{lim['min_shrink']:g}x: {gp.label}")
        return (name, x >= lim["min_shrink"],
                (f"{x:.2f}x vs {ref_of(g, gp).label} at sparsity "
                 f"{100 * a['sparsity']:.1f} %, int8 acc {a['int8_accuracy']:.4f}"))
    if c.kind == "int8_accuracy":
        return (f"int8 accuracy ≥ {lim['min']:g} (mean over seeds): {gp.label}",
                a["int8_accuracy"] >= lim["min"],
                (f"mean {a['int8_accuracy']:.4f}, lowest seed "
                 f"{a['int8_accuracy_min']:.4f} (n={a['n']}), "
                 f"{round(a['int8_bytes']):,} B flatbuffer, "
                 f"{round(a['arena_bytes']):,} B arena"))
    raise ValueError(f"unknown check kind {c.kind!r}")  # parse_study admits only known kinds


def checks(study: Study, agg: Agg) -> list[tuple[str, bool | None, str]]:
    """Every group's checks on this sweep's numbers, point by point: (name, passed, measured).

    Kinds and limits: :data:`nanolab.sweep.study_report.CHECK_KINDS`; a point with no stored
    run, or one a check does not apply to (int8_size: pruned or QAT points; pruned_gzip: points
    pruned less), gets no row.
    """
    out: list[tuple[str, bool | None, str]] = []
    for g in study.groups:
        for gp in g.points:
            if not agg[gp.key]["n"]:
                continue
            for c in g.checks:
                row = _check(c, g, gp, agg)
                if row is not None:
                    out.append(row)
    return out


def figures(a: dict[str, Any], label: str, r: dict[str, Any]) -> dict[str, str]:
    """The placeholders of conclusion text for point ``a`` (labelled ``label``), formatted as
    in the tables; ``*_vs_ref`` compare with ``r``, its reference point. Names:
    :data:`nanolab.sweep.study_report.POINT_FIGURES`."""
    aot = a.get("aot") or {}
    f = {
        "label": label,
        "params": whole(a["params"]),
        "float_bytes": whole(a["float_bytes"]),
        "int8_bytes": whole(a["int8_bytes"]),
        "float_gzip_bytes": whole(a["float_gzip_bytes"]),
        "int8_gzip_bytes": whole(a["int8_gzip_bytes"]),
        "float_kib": fixed(a["float_bytes"] / 1024, 1),
        "int8_kib": fixed(a["int8_bytes"] / 1024, 1),
        "int8_share": fixed(100 * a["int8_bytes"] / a["float_bytes"], 1),
        "int8_minus_float": signed(100 * (a["int8_accuracy"] - a["float_accuracy"]), 2),
        "params_share": fixed(100 * a["params"] / a["seed_metric_float"], 2),
        "weight_gain": fixed(a["seed_metric_float"] - a["seed_metric"], 1),
        "weight_gain_share": fixed(
            100 * (a["seed_metric_float"] - a["seed_metric"]) / a["seed_metric_float"], 2),
        "sparsity": fixed(100 * a["sparsity"], 1),
        "int8_acc": pm(a["int8_accuracy"], a["int8_accuracy_std"]),
        "aot_model_flash_bytes": whole(aot.get("model_flash_bytes", math.nan)),
        "aot_instructions": whole(aot.get("instructions", math.nan)),
        "aot_sparse_layers": str(aot.get("sparse_layers", "—")),
        "int8_gzip_vs_ref": fixed(r["int8_gzip_bytes"] / a["int8_gzip_bytes"], 2),
        "float_gzip_vs_ref": fixed(r["float_gzip_bytes"] / a["float_gzip_bytes"], 2),
    }
    return f


def _pair(gp: GroupPoint, ref: GroupPoint, agg: Agg) -> dict[str, str]:
    """Figures of ``gp`` and, prefixed ``ref_``, of the point it is compared with."""
    r = agg[ref.key]
    ref_figures = figures(r, ref.label, r)
    return {**figures(agg[gp.key], gp.label, r), **{f"ref_{k}": v for k, v in ref_figures.items()}}


def conclusions(g: Group, agg: Agg) -> list[str]:
    """A compression group's conclusions as Markdown lines ([] when the study wrote none)."""
    c = g.conclusions
    if c is None:
        return []
    base_gp = baseline_of(g)
    lines = [f"### {c.title}", ""]
    if not agg[base_gp.key]["n"]:
        return lines + ["(baseline not trained yet)"]
    qat = "".join(c.qat_point.format_map(figures(agg[gp.key], gp.label, agg[gp.key]))
                  for gp in g.points
                  if agg[gp.key]["n"] and agg[gp.key]["options"].get("qat"))
    base = _pair(base_gp, base_gp, agg)
    lines += [f"- {text.format_map({**base, 'qat_points': qat})}" for text in c.baseline]
    if not c.pruned:
        return lines
    for gp in g.points:
        a = agg[gp.key]
        if not a["n"] or a["sparsity"] < c.pruned_min_sparsity:
            continue
        ref = ref_of(g, gp)
        fig = _pair(gp, ref, agg)
        both_aot = a.get("aot") and agg[ref.key].get("aot")
        on_chip = c.on_chip.format_map(fig) if both_aot else ""
        lines.append(f"- {c.pruned.format_map({**fig, 'on_chip': on_chip})}")
    return lines
