"""The Pareto plot: int8 accuracy vs flash (int8 flatbuffer bytes) and vs RAM (the AOT arena when
every point has one measured, else the TFLM arena), with the study's `[select]` pick marked."""

from __future__ import annotations

import math
from pathlib import Path

from nanolab.sweep.aggregate import pareto_front
from nanolab.sweep.select import figure, select
from nanolab.sweep.study import Study
from nanolab.sweep.tables import Agg

# Nano 33 BLE (nRF52840) limits, bytes: the Pareto plot marks them.
NANO33_FLASH_BYTES = 1024 * 1024
NANO33_RAM_BYTES = 256 * 1024


def plotted(agg: Agg) -> list[dict]:
    """The aggregated points the plot shows: trained, with an int8 accuracy."""
    return [a for a in agg.values() if a["n"] and not math.isnan(a["int8_accuracy"])]


def ram_figure(agg: Agg) -> str:
    """The RAM axis' figure: "aot_arena_bytes" when every plotted point has its AOT arena
    measured (`sweep --aot`; the arena the AOT firmware reserves), else "arena_bytes" (the
    arena the TFLM reference interpreter planned)."""
    pts = plotted(agg)
    aot = pts and all(not math.isnan(figure(a, "aot_arena_bytes")) for a in pts)
    return "aot_arena_bytes" if aot else "arena_bytes"


def plot_pareto(study: Study, agg: Agg, path: Path) -> Path:
    """PNG: int8 accuracy vs int8 flatbuffer bytes and vs arena bytes (`ram_figure`), Pareto
    fronts, the Nano 33 BLE's limits (1 MB flash, 256 KB RAM) and the `[select]` pick (or the
    closest point when none qualifies) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = plotted(agg)
    ram = ram_figure(agg)
    ram_label = "AOT arena bytes (log)" if ram == "aot_arena_bytes" else "TFLM arena bytes (log)"
    picked, pick_text = None, ""
    if study.select is not None:
        sel = select(study.select, agg)
        key = sel.key or sel.closest
        picked = next((a for a in pts if a["key"] == key), None)
        pick_text = ("chosen by [select]" if sel.key else
                     "closest; fails " + "; ".join(sel.failed))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    group_of = {}
    for g in study.groups:
        for gp in g.points:
            group_of.setdefault(gp.key, g.name)
    names = list(dict.fromkeys(group_of[a["key"]] for a in pts))
    cmap = plt.get_cmap("tab10")
    for ax, xf, limit, lname, xlabel in (
        (axes[0], "int8_bytes", NANO33_FLASH_BYTES, "Nano 33 BLE flash (1 MB)",
         "int8 flatbuffer bytes (log)"),
        (axes[1], ram, NANO33_RAM_BYTES, "Nano 33 BLE RAM (256 KB)", ram_label),
    ):
        for gi, gname in enumerate(names):
            sel = [a for a in pts if group_of[a["key"]] == gname]
            ax.errorbar([figure(a, xf) for a in sel], [a["int8_accuracy"] for a in sel],
                        yerr=[0 if math.isnan(a["int8_accuracy_std"]) else a["int8_accuracy_std"]
                              for a in sel],
                        fmt="o", ms=5, color=cmap(gi % 10), label=gname, alpha=0.85)
        xs = [figure(a, xf) for a in pts]
        ys = [a["int8_accuracy"] for a in pts]
        front = pareto_front(xs, ys)
        ax.step([xs[i] for i in front], [ys[i] for i in front], where="post", color="k",
                lw=1, ls="--", label="Pareto front")
        for i in front:
            ax.annotate(pts[i]["labels"][0], (xs[i], ys[i]), fontsize=7,
                        xytext=(4, -10), textcoords="offset points")
        if picked is not None:
            at = (figure(picked, xf), picked["int8_accuracy"])
            ax.plot(*at, marker="*", ms=16, mfc="none", mec="darkorange", mew=1.5, ls="none",
                    label=pick_text)
            ax.annotate(pick_text, at, fontsize=7, color="darkorange", xytext=(4, 6),
                        textcoords="offset points")
        rule_max = study.select.at_most.get(xf) if study.select is not None else None
        if rule_max is not None:
            ax.axvline(rule_max, color="darkorange", lw=1, ls=":")
            ax.text(rule_max, 0.02, f"[select] max {rule_max:,.0f} ", color="darkorange",
                    rotation=90, va="bottom", ha="right", fontsize=7,
                    transform=ax.get_xaxis_transform())
        ax.axvline(limit, color="red", lw=1.5)
        ax.text(limit, 0.98, f"{lname} ", color="red", rotation=90, va="top", ha="right",
                fontsize=8, transform=ax.get_xaxis_transform())
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
        hi = max([limit * 1.6] + xs)
        ax.set_xlim(min(xs) / 1.6 if xs else 1000, hi)
    axes[0].set_ylabel("int8 accuracy (TFLM reference, MNIST test)")
    good = [a["int8_accuracy"] for a in pts if a["int8_accuracy"] > 0.5]
    if good:
        axes[0].set_ylim(max(0.0, min(good) - 0.01), min(1.0, max(good) + 0.005))
    axes[1].legend(fontsize=7, loc="lower center")
    fig.suptitle(f"sweep {study.name}: int8 accuracy vs flash and RAM "
                 f"(mean ± std over seeds; points below the y range are not shown)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
