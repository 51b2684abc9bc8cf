"""A trained model on disk: ``model.keras`` and its ``train.json`` record.

One format for ``train.json``, written by ``python -m trainer train`` and by the demo's cache
(``tools/demo.py``), read back by the demo to decide whether to retrain. Keys:

- ``model``, ``train``, ``quant``: the configs (``train`` resolved: per-model defaults filled in);
- ``epochs``, ``history``: float epochs run and per-epoch metrics;
- ``seconds``, ``seconds_per_epoch``: wall time of all fitting (s);
- ``cpu_seconds``, ``cpu_seconds_per_epoch``: CPU time of this process's threads (s), robust to
  a busy machine;
- ``sparsity``: fraction of exactly-zero Dense/Conv kernel weights (0..1); ``params``: count;
- ``accuracy_float``: Keras top-1 on the MNIST test set; ``data_source``: where MNIST came from;
- ``config_hash``: the caller's cache key (the demo's training key), or null.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nanocore.atomic import write_json_atomic
from nanocore.errors import UserError

TRAIN_JSON = "train.json"
MODEL_KERAS = "model.keras"


def load_keras(path: str | Path) -> Any:
    """Load a model saved by `trainer train` (zoo custom layers and QAT wrappers included)."""
    path = Path(path)
    if not path.exists():  # before importing TensorFlow: a typo should fail fast
        raise UserError(f"{path}: no such model file")
    from trainer import models
    from trainer.tf import keras
    from trainer.train import quantize_scope

    try:
        with quantize_scope():
            return keras.models.load_model(path, custom_objects=models.custom_objects(),
                                           compile=False)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot load Keras model ({str(e).splitlines()[0]})") from None


def save_keras(model: Any, path: str | Path) -> Path:
    """Save a Keras model (parents created); a failure is a one-line UserError."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def train_record(model_cfg: Any, train_cfg: Any, quant_cfg: Any, result: Any,
                 accuracy_float: float, data_source: str, cpu_seconds: float,
                 config_hash: str | None = None) -> dict[str, Any]:
    """The ``train.json`` dict of one training run.

    ``train_cfg`` is the resolved TrainConfig; ``result`` a ``trainer.train.TrainResult``;
    ``cpu_seconds`` the process CPU time the fitting took (s)."""
    from trainer.config import to_dict

    epochs = max(result.epochs, 1)
    return {
        "config_hash": config_hash,
        "model": to_dict(model_cfg),
        "train": to_dict(train_cfg),
        "quant": to_dict(quant_cfg),
        "epochs": result.epochs,
        "history": result.history,
        "seconds": round(result.seconds, 2),
        "seconds_per_epoch": round(result.seconds / epochs, 2),
        "cpu_seconds": round(cpu_seconds, 1),
        "cpu_seconds_per_epoch": round(cpu_seconds / epochs, 2),
        "sparsity": round(result.sparsity, 4),
        "params": int(result.model.count_params()),
        "accuracy_float": accuracy_float,
        "data_source": data_source,
    }


def write_train_json(directory: str | Path, record: dict[str, Any]) -> Path:
    """Write ``directory/train.json`` atomically (NaN as null); a failure is a UserError."""
    path = Path(directory) / TRAIN_JSON
    try:
        return write_json_atomic(path, record)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def read_train_json(directory: str | Path) -> dict[str, Any] | None:
    """``directory/train.json`` as a dict, or None when it is missing or not valid JSON."""
    path = Path(directory) / TRAIN_JSON
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
