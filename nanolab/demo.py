"""The demo's cache: the default model trained, quantized and evaluated once, reused while its
configuration and the code that shapes it stay the same.

`tools/demo.py` (`make demo`) and `tools/augment_study.py` call these. Each stage keeps its result
next to the model in ``build/default/`` (or the caller's folder) with the key it was made from:
``train.json`` (``config_hash``: `training_key`, format in `trainer.modelio`), ``quant.json``
(training key + quant config hash), ``eval.json`` (the flatbuffer's sha256).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from nanocore.atomic import write_bytes_atomic, write_json_atomic
from nanocore.paths import DEFAULT_MODEL_DIR, REPO_ROOT, build_dir
from nanolab.promote import DEFAULT_MODEL_TOML
from trainer.config import Config, config_hash, load_toml, to_dict

log = logging.getLogger("demo")

ROOT = REPO_ROOT
BUILD = build_dir("default")
FIRMWARE_MODEL = DEFAULT_MODEL_DIR
SYNTH_CACHE = build_dir("synth")
SYNTH_PER_CLASS = 100  # 1,000 photo-like images
SYNTH_SEED = 0

# The deployable default, as a trainer config file (nanolab/default_model.toml): what the demo
# trains and --update-firmware exports; `promote` writes it from a study's selected point.
DEFAULT_CONFIG = load_toml(DEFAULT_MODEL_TOML)


@dataclasses.dataclass
class Trained:
    """A trained model in `directory` (model.keras, train.json) with its config hash."""

    directory: Path
    model: Any
    info: dict


def training_key(cfg: Config) -> str:
    """Cache key of a trained model: the model table, the resolved train table (per-model
    defaults filled in), the built architecture (Keras JSON: layers, widths, BatchNorm momentum,
    ...) and, when augmenting, trainer/augment.py's source. Edits to other zoo models do not
    invalidate it; edits to the training loop itself (trainer/train.py) are not tracked."""
    from trainer import models
    from trainer.train import resolve

    parts = [
        json.dumps(to_dict(cfg.model), sort_keys=True),
        json.dumps(to_dict(resolve(cfg.model, cfg.train)), sort_keys=True),
        models.build(cfg.model).to_json(),
    ]
    if cfg.train.augment:
        parts.append(_sha256((ROOT / "trainer" / "augment.py").read_bytes()))
    return _sha256("\n".join(parts).encode())[:16]


def train_or_reuse(cfg: Config, data, directory: Path, retrain: bool = False,
                   progress: bool = True) -> Trained:
    """Train cfg.model with cfg.train, or load directory/model.keras if its train.json has the
    same training key (configuration + model/augment code, see `training_key`)."""
    from trainer.modelio import (
        load_keras,
        read_train_json,
        save_keras,
        train_record,
        write_train_json,
    )
    from trainer.train import keras_accuracy, resolve, train

    key = training_key(cfg)
    info = read_train_json(directory)
    if not retrain and info is not None and (directory / "model.keras").exists():
        if info.get("config_hash") == key:
            log.info("reusing %s (config %s)", directory / "model.keras", key)
            return Trained(directory, load_keras(directory / "model.keras"), info)
        log.info("config changed (%s -> %s): retraining", info.get("config_hash"), key)
    cpu0 = time.process_time()
    result = train(cfg.model, cfg.train, data, progress=progress)
    cpu = time.process_time() - cpu0  # all threads of this process: robust to a busy machine
    save_keras(result.model, directory / "model.keras")
    acc = keras_accuracy(result.model, data.x_test, data.y_test)
    info = train_record(cfg.model, resolve(cfg.model, cfg.train), cfg.quant, result, acc,
                        data.source, cpu, config_hash=key)
    write_train_json(directory, info)
    return Trained(directory, result.model, info)


def quantize_or_reuse(trained: Trained, cfg: Config, data) -> Path:
    """Full-int8 flatbuffer next to the Keras model, keyed by (train config, quant config, the
    Keras file's sha256): a model retrained with the same config (--retrain) is quantized again."""
    from trainer.quantize import to_int8

    keras_sha = _sha256((trained.directory / "model.keras").read_bytes())[:16]
    key = training_key(cfg) + config_hash(cfg.quant) + keras_sha
    path = trained.directory / "model_int8.tflite"
    meta = trained.directory / "quant.json"
    if path.exists() and meta.exists() and json.loads(meta.read_text()).get("config_hash") == key:
        return path
    tflite = to_int8(trained.model, data, cfg.quant)
    write_bytes_atomic(path, tflite)
    idx = cfg.quant.calibration_indices(len(data.x_train))
    write_json_atomic(meta, {
        "config_hash": key,
        "quant": to_dict(cfg.quant),
        "calibration": {"source": "MNIST train", "count": len(idx),
                        "seed": cfg.quant.calibration_seed,
                        "indices_sha256": _sha256(json.dumps(idx.tolist()).encode())},
    }, sort_keys=False)
    return path


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def evaluate_mnist(trained: Trained, tflite_path: Path, data, progress: bool = True) -> dict:
    """trainer.evaluate on all 10,000 test images, cached by the flatbuffer's sha256."""
    from trainer.evaluate import evaluate

    tflite = tflite_path.read_bytes()
    cache = trained.directory / "eval.json"
    sha = _sha256(tflite)
    if cache.exists():
        res = json.loads(cache.read_text())
        if res.get("sha256") == sha and res.get("test_images") == len(data.x_test):
            return res
    res = evaluate(tflite, data, trained.model, progress=progress)
    write_json_atomic(cache, res, sort_keys=False)
    return res


def evaluate_synth(trained: Trained, tflite_path: Path) -> dict:
    """Float and int8 accuracy on the photo-like synthetic set (preprocessed by trainer.images)."""
    import numpy as np

    from trainer.images import predict_tflite
    from trainer.synth import load_set
    from trainer.train import prepare

    folder = load_set(SYNTH_CACHE, per_class=SYNTH_PER_CLASS, seed=SYNTH_SEED)
    predf = trained.model.predict(prepare(folder.images), batch_size=500, verbose=0).argmax(1)
    pred8 = predict_tflite(tflite_path, folder.images)
    return {
        "synth_images": len(folder.names),
        "synth_skipped": len(folder.skipped),
        "synth_accuracy_float": float(np.mean(predf == folder.labels)),
        "synth_accuracy_int8": float(np.mean(pred8 == folder.labels)),
    }


def export_model(tflite_path: Path, out_dir: Path, metrics: dict, calibration: dict,
                 backend: str = "all") -> dict:
    """trainer.export into out_dir; returns the manifest."""
    from trainer.export import export

    return export(tflite_path, out_dir, backend=backend, metrics=metrics,
                  calibration=calibration).manifest
