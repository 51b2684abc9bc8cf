"""Stored runs summarized per point: mean and sample std over seeds, and the Pareto fronts."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from nanolab.sweep.store import load_record, read_json, run_path
from nanolab.sweep.study import Study

_MEAN_FIELDS = ("float_accuracy", "int8_accuracy", "params", "macs", "float_bytes", "int8_bytes",
                "float_gzip_bytes", "int8_gzip_bytes", "sparsity", "int8_sparsity", "arena_bytes",
                "seed_metric", "seed_metric_float", "train_seconds", "seconds", "keras_params")


def _mean_std(vals: list[float]) -> tuple[float, float]:
    n = len(vals)
    if n == 0:
        return math.nan, math.nan
    m = sum(vals) / n
    if n < 2:
        return m, math.nan
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1))


def aggregate(study: Study, out_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Per point key: seeds found, and mean/std (sample std, ddof 1) of every measured field."""
    out_dir = Path(out_dir)
    agg: dict[str, dict[str, Any]] = {}
    for point in study.points.values():
        recs = [r for s in study.seeds if (r := load_record(out_dir, point, s)) is not None]
        a: dict[str, Any] = {"key": point.key, "labels": point.labels, "options": point.options,
                             "n": len(recs), "seeds": [r["seed"] for r in recs]}
        for f in _MEAN_FIELDS:
            vals = [float(r[f]) for r in recs if r.get(f) is not None]
            a[f], a[f + "_std"] = _mean_std(vals)
        int8 = [r["int8_accuracy"] for r in recs if r.get("int8_accuracy") is not None]
        a["int8_accuracy_min"] = min(int8) if int8 else math.nan
        photo = [p["photo_accuracy"] for r in recs
                 if (p := read_json(run_path(out_dir, point.key, r["seed"], ".photo.json")))]
        a["photo_accuracy"], a["photo_accuracy_std"] = _mean_std(photo)
        a["int8_errors"] = sorted({r["int8_error"] for r in recs if r.get("int8_error")})
        for r in recs:
            lat = read_json(run_path(out_dir, point.key, r["seed"], ".latency.json"))
            if lat:
                a["latency"] = lat
                break
        for r in recs:
            aot = read_json(run_path(out_dir, point.key, r["seed"], ".aot.json"))
            if aot:
                a["aot"] = aot
                break
        if recs:
            a["ops"] = recs[0].get("ops", [])
            a["test_images"] = recs[0].get("test_images")
            a["train_images"] = recs[0].get("train_images")
        a["train_gmacs"] = train_gmacs(a)
        agg[point.key] = a
    return agg


def train_gmacs(a: dict[str, Any]) -> float:
    """What training a point costs, in billions of forward-pass multiply-accumulates: its MACs
    per image x epochs x training images (NaN unless the point's options set epochs and a run
    recorded MACs and training images). A machine-independent stand-in for training time, which
    `make demo` spends on the default model."""
    epochs = (a.get("options") or {}).get("epochs")
    images, macs = a.get("train_images"), a.get("macs", math.nan)
    if not isinstance(epochs, int) or not isinstance(images, int):
        return math.nan
    return float(macs) * epochs * images / 1e9


def inside(value: float, mean: float, std: float, k: float = 2.0) -> bool | None:
    """Is ``value`` within ``mean ± k·std``? None when the spread is unknown (< 2 seeds)."""
    if any(math.isnan(v) for v in (value, mean, std)):
        return None
    return abs(value - mean) <= k * std


def pareto_front(xs: list[float], ys: list[float]) -> list[int]:
    """Indices of the points not dominated (smaller x and larger y is better), sorted by x."""
    order = sorted(range(len(xs)), key=lambda i: (xs[i], -ys[i]))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if ys[i] > best:
            front.append(i)
            best = ys[i]
    return front


def pareto_keys(agg: dict[str, dict[str, Any]]) -> list[str]:
    """Keys of the points on either Pareto front: int8 accuracy vs int8 flatbuffer bytes, and
    vs arena bytes."""
    pts = [a for a in agg.values() if a["n"] and not math.isnan(a["int8_accuracy"])]
    keys: list[str] = []
    for xf in ("int8_bytes", "arena_bytes"):
        for i in pareto_front([a[xf] for a in pts], [a["int8_accuracy"] for a in pts]):
            if pts[i]["key"] not in keys:
                keys.append(pts[i]["key"])
    return keys
