"""trainer.modelio: one train.json format for `python -m trainer train` and the demo's cache."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from nanocore.errors import UserError
from trainer.config import ModelConfig, QuantConfig, TrainConfig
from trainer.modelio import load_keras, read_train_json, train_record, write_train_json

# Keys `python -m trainer train` wrote and keys the demo's cache wrote before they shared a writer
# (trainer/cli.py and tools/demo.py of issue 10): each reader still finds its own.
CLI_KEYS = {"model", "train", "quant", "epochs", "history", "seconds", "sparsity", "params",
            "accuracy_float", "data_source"}
DEMO_KEYS = {"config_hash", "model", "train", "epochs", "seconds", "seconds_per_epoch",
             "cpu_seconds", "cpu_seconds_per_epoch", "history", "accuracy_float", "data_source"}


def _result(seconds: float = 12.345, epochs: int = 3) -> SimpleNamespace:
    model = SimpleNamespace(count_params=lambda: 1234)
    return SimpleNamespace(model=model, history={"loss": [0.5, float("nan")]}, seconds=seconds,
                           sparsity=0.123456, epochs=epochs)


def test_one_record_holds_both_formats_keys(tmp_path) -> None:
    rec = train_record(ModelConfig(name="cnn"), TrainConfig(epochs=3), QuantConfig(), _result(),
                       0.98, "cache", cpu_seconds=20.0, config_hash="abc")
    assert set(rec) == CLI_KEYS | DEMO_KEYS
    assert rec["seconds_per_epoch"] == round(12.345 / 3, 2) and rec["params"] == 1234
    assert rec["model"]["name"] == "cnn" and rec["train"]["epochs"] == 3
    path = write_train_json(tmp_path / "run", rec)
    back = read_train_json(tmp_path / "run")
    assert back is not None and back["config_hash"] == "abc"
    assert back["history"]["loss"] == [0.5, None]  # NaN is not JSON: written as null
    assert json.loads(path.read_text()) == back
    assert not list((tmp_path / "run").glob(".*.tmp"))  # the temp file was renamed


def test_read_train_json_is_none_for_missing_or_corrupt(tmp_path) -> None:
    assert read_train_json(tmp_path) is None
    (tmp_path / "train.json").write_text("{not json")
    assert read_train_json(tmp_path) is None


def test_load_keras_of_a_missing_file_is_a_user_error(tmp_path) -> None:
    with pytest.raises(UserError, match="no such model file"):
        load_keras(tmp_path / "missing.keras")
