"""The sweep's report: ``report.md``, ``summary.json`` and ``pareto.png`` from the stored runs.

Tables come from :mod:`nanolab.sweep.tables`, checks and conclusions (the study's thresholds
and words) from :mod:`nanolab.sweep.findings`, the plot from :mod:`nanolab.sweep.plot`.
"""

from __future__ import annotations

import os
from pathlib import Path

from nanocore.paths import REPO_ROOT
from nanolab.sweep.aggregate import aggregate, pareto_keys
from nanolab.sweep.execute import SweepResult
from nanolab.sweep.findings import checks, conclusions
from nanolab.sweep.plot import plot_pareto, ram_figure
from nanolab.sweep.select import describe_rule, figure, select
from nanolab.sweep.store import write_json_atomic
from nanolab.sweep.study import Study
from nanolab.sweep.tables import (
    Agg,
    all_points_table,
    baseline_of,
    compression_table,
    latency_str,
    pm,
    seed_table,
    summary_table,
    whole,
    yes_no,
    zoo_table,
)


def _shown(source: str) -> str:
    """A study file's path as the report shows it: relative to the repository when inside it
    (a built-in study), so a report reads the same on every clone."""
    try:
        return Path(source).resolve().relative_to(REPO_ROOT).as_posix()
    except (ValueError, OSError):
        return source


def _header(study: Study, agg: Agg, sweep: SweepResult | None) -> list[str]:
    n_done = sum(a["n"] for a in agg.values())
    any_rec = next((a for a in agg.values() if a["n"]), None)
    lines = [f"# Sweep `{study.name}`", ""]
    if study.description:
        lines += [study.description.strip(), ""]
    lines += [
        (f"Study file: `{_shown(study.source)}`. Points: {len(study.points)}, seeds per point: "
         f"{len(study.seeds)} ({', '.join(map(str, study.seeds))}); runs stored: "
         f"{n_done}/{len(study.runs())}."),
    ]
    if any_rec:
        lines.append(f"Trained on {any_rec.get('train_images'):,} MNIST training images, "
                     f"evaluated on {any_rec.get('test_images'):,} test images. Float accuracy: "
                     "Keras; int8 accuracy: the TFLM reference interpreter (tflite-micro) on "
                     "the full-int8 flatbuffer. ± is the sample standard deviation over seeds.")
    if sweep is not None:
        lines.append(f"This invocation trained {len(sweep.trained)} runs, found "
                     f"{len(sweep.skipped)} finished, {len(sweep.failed)} failed; wall time "
                     f"{sweep.seconds:.0f} s.")
    lines += ["", ("Spread rule: a seed figure is *inside* our seed-to-seed spread when it lies in "
                   "our mean ± 2 std. For differences (Δ vs the table's baseline) the std is that "
                   "of a single-seed difference, √(σ_variant² + σ_baseline²), because the seed "
                   "measured each variant once; for absolute accuracies it is σ_variant."), ""]
    return lines


def _group(g, agg: Agg) -> list[str]:
    lines = [f"## {g.title}", ""]
    if g.note:
        lines += [g.note.strip(), ""]
    if any(not agg[gp.key]["n"] for gp in g.points):
        missing = [gp.label for gp in g.points if not agg[gp.key]["n"]]
        lines += [f"Not trained yet: {', '.join(missing)}.", ""]
    for gp in g.points:
        if agg[gp.key].get("int8_errors"):
            lines += [(f"{gp.label}: no int8 model for some seeds "
                       f"({'; '.join(agg[gp.key]['int8_errors'])})."), ""]
    base_done = agg[baseline_of(g).key]["n"]
    if g.report == "seed" and base_done:
        lines += seed_table(g, agg)
    elif g.report == "compression" and base_done:
        lines += compression_table(g, agg)
        if g.conclusions is not None:
            lines += [""] + conclusions(g, agg)
    else:
        lines += zoo_table(g, agg)
    return lines + [""]


def _pareto(study: Study, agg: Agg, out_dir: Path) -> list[str]:
    png = plot_pareto(study, agg, out_dir / "pareto.png")
    right = ("the AOT arena (`--aot`, the RAM for activations the AOT firmware reserves)"
             if ram_figure(agg) == "aot_arena_bytes" else
             "the TFLM arena the reference interpreter planned (RAM for activations)")
    marked = (" The star marks the point the `[select]` rule picks (or, when none qualifies, the "
              "closest one)." if study.select is not None else "")
    lines = ["## Pareto: int8 accuracy vs flash and RAM", "", f"![pareto]({png.name})", "",
             (f"Left: int8 flatbuffer bytes (what the model costs in flash); right: {right}. "
              "Red lines: the Nano 33 BLE's 1 MB flash and 256 KB RAM, shared with the "
              f"firmware.{marked}"), ""]
    lines += [("Points on a Pareto front (latency: `python -m trainer sweep ... --emulate qemu` "
               "or `--port`):"), "",
              "| point | int8 acc | int8 flatbuffer B | arena B | MACs | latency |",
              "|---|---:|---:|---:|---:|---:|"]
    for key in pareto_keys(agg):
        a = agg[key]
        lines.append(f"| {', '.join(a['labels'])} | "
                     f"{pm(a['int8_accuracy'], a['int8_accuracy_std'])} | "
                     f"{whole(a['int8_bytes'])} | {whole(a['arena_bytes'])} | "
                     f"{whole(a['macs'])} | {latency_str(a.get('latency'))} |")
    return lines + [""]


def _selection(study: Study, agg: Agg) -> list[str]:
    """The ``[select]`` section: the rule, each point's figures it reads, and the pick."""
    rule = study.select
    lines = ["## Selection rule", "", f"Rule (the study's `[select]`): {describe_rule(rule)}", ""]
    names = rule.figures()
    lines += ["| point | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key, a in agg.items():
        if a["n"]:
            vals = [figure(a, n) for n in names]
            lines.append(f"| {', '.join(a['labels'])} | "
                         + " | ".join("not measured" if v != v else f"{v:.4f}" if v < 2
                                      else f"{v:,.0f}" for v in vals)
                         + " |")
    sel = select(rule, agg)
    lines.append("")
    if sel.key is not None:
        lines.append(f"**Chosen point:** {', '.join(agg[sel.key]['labels'])} "
                     f"(key `{sel.key}`).")
    elif sel.closest is not None:
        lines.append(f"**No point meets the constraints.** Closest: "
                     f"{', '.join(agg[sel.closest]['labels'])}, which fails "
                     f"{'; '.join(sel.failed)}.")
    else:
        lines.append("**No point meets the constraints:** no point has been measured yet.")
    return lines + [""]


def write_report(study: Study, out_dir: str | os.PathLike,
                 sweep: SweepResult | None = None) -> Path:
    """Write ``report.md``, ``summary.json`` and ``pareto.png`` from the stored runs.

    ``sweep``: what this invocation did (one more line in the report), None for --report-only.
    """
    out_dir = Path(out_dir)
    agg = aggregate(study, out_dir)
    lines = _header(study, agg, sweep)
    for g in study.groups:
        lines += _group(g, agg)
    text = study.report
    if study.summary:
        lines += [f"## {text.summary_title}", ""]
        if text.summary_note:
            lines += [text.summary_note.strip(), ""]
        lines += summary_table(study, agg) + [""]
    chk = checks(study, agg)
    if chk:
        lines += [f"## {text.checks_title}", "", "| check | pass | measured |", "|---|:---:|---|"]
        lines += [f"| {n} | {yes_no(ok)} | {d} |" for n, ok, d in chk]
        lines.append("")
    if any(a["n"] for a in agg.values()):
        lines += _pareto(study, agg, out_dir)
    if study.select is not None:
        lines += _selection(study, agg)
    lines += ["## All points", ""] + all_points_table(study, agg) + [""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    summary = {"study": study.name, "source": study.source, "seeds": list(study.seeds),
               "points": list(agg.values()),
               "checks": [{"check": n, "pass": ok, "measured": d} for n, ok, d in chk]}
    if study.select is not None:
        sel = select(study.select, agg)
        summary["selected"] = {"key": sel.key, "closest": sel.closest,
                               "failed": list(sel.failed)}
    write_json_atomic(out_dir / "summary.json", summary)
    return report
