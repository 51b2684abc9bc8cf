"""Evaluation on the MNIST test set: float accuracy (Keras) and int8 accuracy (TFLM reference).

The result is a flat dict (JSON-able) with the names used in every report: accuracy_float,
accuracy_int8, drop_points, agreement_top1, params, macs, flatbuffer_bytes, gzip_bytes,
arena_bytes, tflite_kib and the seed study's memory metric ``seed_metric = params + tflite_kib``.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from typing import Any

import numpy as np

from nanocore.errors import UserError
from trainer import tflite_info
from trainer.data import Mnist
from trainer.reference import Reference, run_cached
from trainer.tf import keras
from trainer.tflite_info import seed_metric
from trainer.train import prepare

__all__ = ["evaluate", "format_table", "seed_metric"]  # seed_metric: defined in tflite_info

log = logging.getLogger(__name__)


def evaluate(tflite: bytes, data: Mnist, keras_model: keras.Model | None = None,
             limit: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Accuracy of the int8 flatbuffer (TFLM reference) and, if given, the float Keras model.

    Uses the first ``limit`` test images (None = all 10,000). Accuracies are fractions (0..1),
    drop_points is (float - int8) * 100 percentage points, agreement_top1 the share of images
    where int8 and float pick the same class. Sizes in bytes, tflite_kib = bytes / 1024.
    """
    if limit is not None and limit < 1:
        raise UserError(f"limit must be >= 1 image, got {limit}")
    x, y = data.x_test, data.y_test
    if limit is not None:
        x, y = x[:limit], y[:limit]
    q = run_cached(tflite, x, progress=progress)
    pred8 = q.argmax(axis=1)
    res: dict[str, Any] = {
        "test_images": len(x),
        "accuracy_int8": float(np.mean(pred8 == y)),
    }
    # Params, MACs, ops and I/O quantization: the one view of the flatbuffer (trainer.tflite_info).
    info = tflite_info.parse(tflite)
    if keras_model is not None:
        logits = keras_model.predict(prepare(x), batch_size=500, verbose=0)
        predf = logits.argmax(axis=1)
        res["accuracy_float"] = float(np.mean(predf == y))
        res["drop_points"] = round(100.0 * (res["accuracy_float"] - res["accuracy_int8"]), 4)
        res["agreement_top1"] = float(np.mean(predf == pred8))
    res.update({
        "params": int(info.params),
        "macs": int(info.macs),
        "flatbuffer_bytes": len(tflite),
        "gzip_bytes": len(gzip.compress(tflite, 9)),
        "tflite_kib": round(len(tflite) / 1024.0, 2),
        "seed_metric": round(info.seed_metric, 2),
        "arena_bytes": Reference(tflite).arena_bytes,
        "ops": list(info.opcode_names),
        "input_scale": info.input_scale,
        "input_zero_point": info.input_zero_point,
        "output_scale": info.output_scale,
        "output_zero_point": info.output_zero_point,
        "sha256": hashlib.sha256(tflite).hexdigest(),
    })
    return res


def format_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """A plain-text table of results: one row per (name, result dict)."""
    cols = [("model", 14), ("float", 7), ("int8", 7), ("drop pt", 8), ("bytes", 8),
            ("arena", 7), ("params", 8), ("MACs", 9)]
    head = " ".join(f"{c:>{w}}" for c, w in cols)
    lines = [head, "-" * len(head)]
    def f(r: dict[str, Any], key: str, fmt: str) -> str:
        v = r.get(key)
        return "-" if v is None else format(v, fmt)

    for name, r in rows:
        vals = [name, f(r, "accuracy_float", ".4f"), f(r, "accuracy_int8", ".4f"),
                f(r, "drop_points", ".2f"), f(r, "flatbuffer_bytes", "d"),
                f(r, "arena_bytes", "d"), f(r, "params", "d"), f(r, "macs", "d")]
        lines.append(" ".join(f"{v:>{w}}" for v, (_, w) in zip(vals, cols, strict=True)))
    return "\n".join(lines)
