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
import tf_keras as keras
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from nanocore.errors import UserError
from trainer import models
from trainer.data import Mnist
from trainer.quantize import summarize
from trainer.reference import Reference
from trainer.train import prepare

log = logging.getLogger(__name__)


def tflite_params(tflite: bytes) -> int:
    """Weights + biases in a flatbuffer: elements of constant FLOAT32/INT8/INT32 tensors that
    feed a compute op (conv, depthwise, fully connected) as input 1 or 2."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    compute = {schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D,
               schema.BuiltinOperator.FULLY_CONNECTED}
    sub = model.subgraphs[0]
    seen: set[int] = set()
    total = 0
    for op in sub.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) not in compute:
            continue
        for idx in list(op.inputs[1:3]):
            if idx < 0 or idx in seen:
                continue
            seen.add(idx)
            total += int(np.prod(sub.tensors[idx].shape))
    return total


def seed_metric(params: int, flatbuffer_bytes: int) -> float:
    """The seed study's memory "weight": parameters + flatbuffer size in KiB (unrounded)."""
    return int(params) + flatbuffer_bytes / 1024.0


def _inspect(tflite: bytes) -> Any | None:
    """trainer.tflite_info.inspect if that module is there (owned by the export stage)."""
    try:
        from trainer.tflite_info import inspect
    except ImportError:
        return None
    try:
        return inspect(tflite)
    except Exception as e:  # noqa: BLE001  (the numbers are optional extras here)
        log.warning("tflite_info.inspect failed: %s", e)
        return None


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
    ref = Reference(tflite)
    q = ref.run(x, progress=progress)
    pred8 = q.argmax(axis=1)
    res: dict[str, Any] = {
        "test_images": len(x),
        "accuracy_int8": float(np.mean(pred8 == y)),
    }
    info = _inspect(tflite)
    params = getattr(info, "params", None) or tflite_params(tflite)
    macs = getattr(info, "macs", None)
    if keras_model is not None:
        logits = keras_model.predict(prepare(x), batch_size=500, verbose=0)
        predf = logits.argmax(axis=1)
        res["accuracy_float"] = float(np.mean(predf == y))
        res["drop_points"] = round(100.0 * (res["accuracy_float"] - res["accuracy_int8"]), 4)
        res["agreement_top1"] = float(np.mean(predf == pred8))
        if macs is None:
            try:
                macs = models.count_macs(keras_model)
            except Exception:  # noqa: BLE001  (QAT-wrapped layers: leave MACs out)
                macs = None
    s = summarize(tflite)
    kib = len(tflite) / 1024.0
    res.update({
        "params": int(params),
        "macs": None if macs is None else int(macs),
        "flatbuffer_bytes": len(tflite),
        "gzip_bytes": len(gzip.compress(tflite, 9)),
        "tflite_kib": round(kib, 2),
        "seed_metric": round(seed_metric(params, len(tflite)), 2),
        "arena_bytes": ref.arena_bytes,
        "ops": list(s.ops),
        "input_scale": s.input_scale,
        "input_zero_point": s.input_zero_point,
        "output_scale": s.output_scale,
        "output_zero_point": s.output_zero_point,
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
