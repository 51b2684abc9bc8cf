"""One run of a sweep: train one point with one seed through the trainer's own stages
(``train.train`` -> ``quantize.to_float``/``to_int8`` -> ``evaluate.evaluate``) and measure it.

Executes in a worker process or a Ray task; returns a JSON-able record (the int8 flatbuffer
rides along under :data:`TFLITE_FIELD` for the driver to store).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import socket
import time
from typing import Any

from nanocore.errors import UserError
from nanolab.sweep.options import make_configs
from nanolab.sweep.store import RECORD_VERSION

log = logging.getLogger(__name__)

# A run's record carries its int8 flatbuffer under this key on the way back from the worker; the
# driver stores it beside the JSON as <key>-s<seed>.tflite (so Ray workers need no shared disk).
TFLITE_FIELD = "_int8_tflite"

# The dense models; the others (convolutional zoo) are several times slower to train.
DENSE_MODELS = ("seed_initial", "seed_final")

# Record fields that stay None when the model trains but gives no int8 model.
_INT8_FIELDS = ("int8_accuracy", "params", "macs", "float_bytes", "int8_bytes",
                "float_gzip_bytes", "int8_gzip_bytes", "int8_sparsity", "arena_bytes",
                "seed_metric", "seed_metric_float", "quantize_seconds")

_DATA_CACHE: dict[tuple, Any] = {}


def _data(train_images: int | None, test_images: int | None):
    """MNIST, cut to the first N train/test images; cached per process."""
    key = (train_images, test_images)
    if key not in _DATA_CACHE:
        from trainer.data import Mnist, load_mnist

        d = load_mnist()
        if train_images or test_images:
            d = Mnist(x_train=d.x_train[:train_images], y_train=d.y_train[:train_images],
                      x_test=d.x_test[:test_images], y_test=d.y_test[:test_images],
                      source=d.source)
        _DATA_CACHE[key] = d
    return _DATA_CACHE[key]


def limit_threads() -> None:
    """One TensorFlow thread per process, so N workers use N cores without oversubscription."""
    from trainer.tf import tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised in this process (a reused Ray worker): keep its setting


def gzip_bytes(blob: bytes) -> int:
    """Size of ``blob`` gzip-compressed at level 9, bytes (what a compressed download/OTA costs)."""
    return len(gzip.compress(blob, compresslevel=9, mtime=0))


def run_point(options: dict[str, Any], seed: int, train_images: int | None = None,
              test_images: int | None = None) -> dict[str, Any]:
    """Train one configuration with one seed and measure it. Returns the record (JSON-able but
    for the int8 flatbuffer under ``TFLITE_FIELD``, which the driver stores as a file).

    Float accuracy: Keras on the test images; int8 accuracy: the TFLM reference interpreter on
    the same images (``trainer.evaluate``). Sizes in bytes; ``seed_metric`` = params + int8
    flatbuffer KiB (the seed study's "weight", ``trainer.evaluate.seed_metric``),
    ``seed_metric_float`` the same with the float flatbuffer. A model that trains but cannot be
    converted (e.g. NaN weights from an exploding activation) keeps its float accuracy; the
    int8 fields are None and ``int8_error`` says why.
    """
    from trainer import evaluate, quantize, tflite_info, train

    t0 = time.monotonic()
    data = _data(train_images, test_images)
    mcfg, tcfg, qcfg = make_configs(options, seed)
    result = train.train(mcfg, tcfg, data, progress=False)
    model = result.model
    rec: dict[str, Any] = {
        "version": RECORD_VERSION,
        "options": options,
        "seed": seed,
        "train_images": len(data.x_train),
        "test_images": len(data.y_test),
        "float_accuracy": train.keras_accuracy(model, data.x_test, data.y_test),
        "keras_params": int(model.count_params()),
        "sparsity": float(result.sparsity),
        "train_seconds": float(result.seconds),
        "worker": {"host": socket.gethostname(), "pid": os.getpid()},
    }
    rec.update(dict.fromkeys(_INT8_FIELDS))
    try:
        float_tfl = quantize.to_float(model)
        rec.update(float_bytes=len(float_tfl), float_gzip_bytes=gzip_bytes(float_tfl))
        t_q = time.monotonic()
        int8_tfl = quantize.to_int8(model, data, qcfg)
        rec["quantize_seconds"] = time.monotonic() - t_q
        info = tflite_info.inspect(int8_tfl)
        ev = evaluate.evaluate(int8_tfl, data, progress=False)
    except UserError as e:
        log.warning("%s seed %d: no int8 model: %s", options, seed, e)
        rec["int8_error"] = str(e)
        rec["seconds"] = time.monotonic() - t0
        return rec
    rec.update({
        "int8_accuracy": ev["accuracy_int8"],
        "params": int(info.params),
        "macs": int(info.macs),
        "int8_bytes": len(int8_tfl),
        "int8_gzip_bytes": gzip_bytes(int8_tfl),
        "int8_sparsity": tflite_info.int8_weight_sparsity(int8_tfl),
        "arena_bytes": int(ev["arena_bytes"]),
        "seed_metric": evaluate.seed_metric(info.params, len(int8_tfl)),
        "seed_metric_float": evaluate.seed_metric(info.params, len(float_tfl)),
        "seconds": time.monotonic() - t0,
        "ops": list(info.unique_ops),
        "int8_sha256": hashlib.sha256(int8_tfl).hexdigest(),
        TFLITE_FIELD: int8_tfl,
    })
    return rec
