"""Shared fixtures: the real MNIST data and briefly trained zoo models, cached on disk.

`tiny_tflite(name, **quant)` trains a zoo model on a subset (6,000 images, 2 epochs) and returns
its int8 .tflite bytes; `tiny_keras(name)` returns the float Keras model it came from. Both are
cached under build/test-cache/ keyed by a hash of the configs and of the trainer sources that
produce them, so a second test session (or another test file) does not train again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from nanocore.atomic import write_bytes_atomic

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "test-cache"

# Subset training for tests: enough steps for BatchNorm statistics to settle, a few seconds
# for the small models.
TINY_TRAIN = {"epochs": 2, "train_limit": 6000, "batch_size": 64, "seed": 0}
TINY_QUANT = {"calibration_count": 200}
# Sources whose change makes a cached artifact stale (the .tflite also depends on quantize.py).
_TRAIN_SOURCES = ("models.py", "train.py", "config.py")
_QUANT_SOURCES = ("quantize.py",)


def _source_hash(names: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for name in names:
        h.update((ROOT / "trainer" / name).read_bytes())
    return h.hexdigest()[:12]


@pytest.fixture(scope="session")
def mnist():
    """The real, sha256-verified MNIST (trainer.data.Mnist); fetched once into the cache."""
    from trainer.data import load_mnist

    return load_mnist()


class _TinyZoo:
    """Trains zoo models briefly on demand; keeps them in memory and on disk."""

    def __init__(self, data) -> None:
        self.data = data
        self._keras: dict[str, object] = {}
        self._src = _source_hash(_TRAIN_SOURCES)
        self._qsrc = _source_hash(_QUANT_SOURCES)

    def _key(self, name: str) -> str:
        from trainer.config import ModelConfig, TrainConfig, config_hash

        digest = config_hash(ModelConfig(name=name), TrainConfig(**TINY_TRAIN))
        return f"{name}-{digest}-{self._src}"

    def keras(self, name: str):
        """The float Keras model (trained on the subset), loaded from the cache if there."""
        if name in self._keras:
            return self._keras[name]
        from trainer.config import ModelConfig, TrainConfig
        from trainer.modelio import load_keras
        from trainer.train import train

        path = CACHE / f"{self._key(name)}.keras"
        if path.exists():
            model = load_keras(path)
        else:
            model = train(ModelConfig(name=name), TrainConfig(**TINY_TRAIN), self.data,
                          progress=False).model
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{os.getpid()}-{path.name}")
            model.save(tmp)
            os.replace(tmp, path)
        self._keras[name] = model
        return model

    def tflite(self, name: str, **quant) -> bytes:
        """int8 .tflite bytes of the tiny model; quant overrides QuantConfig fields."""
        from trainer.config import QuantConfig, config_hash
        from trainer.quantize import to_int8

        qcfg = QuantConfig(**{**TINY_QUANT, **quant})
        path = CACHE / f"{self._key(name)}-q{config_hash(qcfg)}-{self._qsrc}.tflite"
        if path.exists():
            return path.read_bytes()
        tflite = to_int8(self.keras(name), self.data, qcfg)
        write_bytes_atomic(path, tflite)
        return tflite


@pytest.fixture(scope="session")
def tiny_zoo(mnist) -> _TinyZoo:
    """The cache behind tiny_tflite / tiny_keras."""
    return _TinyZoo(mnist)


@pytest.fixture(scope="session")
def tiny_tflite(tiny_zoo):
    """Factory: tiny_tflite("cnn", per_channel_dense=False) -> int8 .tflite bytes."""
    return tiny_zoo.tflite


@pytest.fixture(scope="session")
def tiny_keras(tiny_zoo):
    """Factory: tiny_keras("cnn") -> the float keras.Model behind tiny_tflite("cnn")."""
    return tiny_zoo.keras


def pytest_addoption(parser):
    """`--port` (for -m hardware) comes from nanobench/pytest_plugin.py, an installed plugin:
    a conftest is loaded too late for `pytest -m hardware --port /dev/ttyACM0` as written.
    Declared here only when that plugin is not installed (then `--port=URL` still works)."""
    from nanobench import pytest_plugin

    try:
        pytest_plugin.pytest_addoption(parser)
    except ValueError:  # already declared by the installed plugin
        pass
