"""The Pareto plot: int8 accuracy vs flash (int8 flatbuffer bytes) and vs RAM (TFLM arena)."""

from __future__ import annotations

import math
from pathlib import Path

from nanolab.sweep.aggregate import pareto_front
from nanolab.sweep.study import Study
from nanolab.sweep.tables import Agg

# Nano 33 BLE (nRF52840) limits, bytes: the Pareto plot marks them.
NANO33_FLASH_BYTES = 1024 * 1024
NANO33_RAM_BYTES = 256 * 1024


def plot_pareto(study: Study, agg: Agg, path: Path) -> Path:
    """PNG: int8 accuracy vs int8 flatbuffer bytes and vs TFLM arena bytes, Pareto fronts and
    the Nano 33 BLE's limits (1 MB flash, 256 KB RAM) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [a for a in agg.values() if a["n"] and not math.isnan(a["int8_accuracy"])]
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
        (axes[1], "arena_bytes", NANO33_RAM_BYTES, "Nano 33 BLE RAM (256 KB)",
         "TFLM arena bytes (log)"),
    ):
        for gi, gname in enumerate(names):
            sel = [a for a in pts if group_of[a["key"]] == gname]
            ax.errorbar([a[xf] for a in sel], [a["int8_accuracy"] for a in sel],
                        yerr=[0 if math.isnan(a["int8_accuracy_std"]) else a["int8_accuracy_std"]
                              for a in sel],
                        fmt="o", ms=5, color=cmap(gi % 10), label=gname, alpha=0.85)
        xs = [a[xf] for a in pts]
        ys = [a["int8_accuracy"] for a in pts]
        front = pareto_front(xs, ys)
        ax.step([xs[i] for i in front], [ys[i] for i in front], where="post", color="k",
                lw=1, ls="--", label="Pareto front")
        for i in front:
            ax.annotate(pts[i]["labels"][0], (xs[i], ys[i]), fontsize=7,
                        xytext=(4, -10), textcoords="offset points")
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
