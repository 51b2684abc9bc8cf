"""Configuration as data: frozen dataclasses for the model, the training run and quantization.

A TOML file holds up to three tables, ``[model]``, ``[train]`` and ``[quant]``, whose keys are
the dataclass fields below; anything unknown is a one-line UserError. Example::

    [model]
    name = "seed_initial"
    activation = "tanh"
    hidden = [80, 60]

    [train]
    epochs = 5
    prune_sparsity = 0.5
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nanocore import checks
from nanocore.errors import UserError


@dataclass(frozen=True)
class ModelConfig:
    """Which zoo model to build and its shape knobs.

    name: registry key (see ``trainer.models.REGISTRY``).
    activation: hidden activation of the dense seed models (elu, relu, sigmoid, softmax, softplus,
        tanh, exponential, ...); the convolutional models use their own (relu/relu6) unless set.
    hidden: hidden Dense widths, e.g. (80, 60); None = the model's default.
    dropout: dropout rate before the classifier (0 disables it).
    width: width multiplier for channel counts (conv models round to multiples of 8).
    filters: conv channel counts; None = the model's default.
    repeats: basic units per stage after the downsampling unit (shufflenet_v2; default 1).
    kernels: conv kernel sizes, one per conv (cnn; None = 5 then 3s).
    head: what follows the last conv block (cnn): "dense" (flatten, the hidden Dense layers, the
        classifier; the default) or "pool" (average pool over the whole map, then the classifier).
    """

    name: str = "cnn"
    activation: str | None = None
    hidden: tuple[int, ...] | None = None
    dropout: float | None = None
    width: float = 1.0
    filters: tuple[int, ...] | None = None
    repeats: int | None = None
    kernels: tuple[int, ...] | None = None
    head: str | None = None


@dataclass(frozen=True)
class TrainConfig:
    """A training run.

    epochs, batch_size, learning_rate: None = the model's default (trainer.models.TRAIN_DEFAULTS;
    tuned per model, recorded resolved in train.json). train_limit: use only the first N training
    images (None = all 60,000). validation_count: images held out from the end of the training set
    for validation metrics (0 = none). prune_sparsity: target fraction of zero weights reached with
    a polynomial schedule from prune_begin_epoch to prune_end_fraction of the run (None = no
    pruning). prune_block: (inputs, outputs) of the blocks Dense kernels are pruned in, whole blocks
    at a time (tfmot's block_size on the Keras (in, out) kernel); (8, 2) matches the AOT backend's
    sparse fully connected kernel (8 inputs of an output row pair per block). None or (1, 1) =
    unstructured; convolution kernels and the classifier (the last Dense) are always pruned
    unstructured (tfmot's blocks need rank-2 kernels; the classifier is too small). qat: after the
    float epochs, fine-tune qat_epochs with tfmot's quantize_model at qat_learning_rate.
    augment_strength: scales every range of the augmentation (trainer.augment.AugmentConfig:
    shifts, angles, shear and the probabilities by the factor, zoom/gamma/gain ranges towards 1);
    1 = the ranges as written, 0.5 = half as strong; augment_elastic: probability of the elastic
    warp (AugmentConfig.p_elastic, after the scaling); augment_fraction: the share of each
    epoch's images that are augmented (drawn per image; the others are trained on as they are);
    all three only read when augment is true. calm_epochs: the last this many epochs augment
    only calm_fraction of their images (a gentler end of training; 0 = off). ema: decay per
    step of an exponential moving average of all the model's weights (BatchNorm statistics
    included), which replaces the weights after the float epochs (0 = off; e.g. 0.999).
    label_smoothing: the cross-entropy's target smoothing (0 = one-hot targets).
    """

    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str = "adam"
    learning_rate: float | None = None
    lr_schedule: str = "cosine"
    seed: int = 0
    train_limit: int | None = None
    validation_count: int = 0
    augment: bool = False
    augment_strength: float = 1.0
    augment_elastic: float = 0.0
    augment_fraction: float = 1.0
    calm_epochs: int = 0
    calm_fraction: float = 0.5
    ema: float = 0.0
    label_smoothing: float = 0.0
    prune_sparsity: float | None = None
    prune_begin_epoch: int = 0
    prune_end_fraction: float = 0.75
    prune_frequency: int = 50
    prune_block: tuple[int, ...] | None = None
    qat: bool = False
    qat_epochs: int = 1
    qat_learning_rate: float = 1e-4


@dataclass(frozen=True)
class QuantConfig:
    """Full-integer post-training quantization.

    per_channel_dense: FULLY_CONNECTED weights quantized per output channel (the converter's
    default) or per tensor (False; older TFLM builds run only those exactly).
    calibration_count / calibration_seed: the representative set is this many training images,
    at the indices :meth:`calibration_indices` draws (recorded next to the model).
    """

    per_channel_dense: bool = True
    calibration_count: int = 500
    calibration_seed: int = 0

    def calibration_indices(self, n_train: int) -> np.ndarray:
        """Fixed indices into the training images, int64 (calibration_count,), sorted."""
        count = min(self.calibration_count, n_train)
        rng = np.random.default_rng(self.calibration_seed)
        return np.sort(rng.choice(n_train, size=count, replace=False)).astype(np.int64)


@dataclass(frozen=True)
class Config:
    """The three tables of a TOML config file."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)


def _check_type(key: str, value: Any, hint: Any, where: str) -> None:
    """UserError unless value fits the field's annotation (int where float is fine)."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (types.UnionType, typing.Union) \
        else (hint,)
    for t in args:
        origin = typing.get_origin(t) or t
        if t is type(None) and value is None:
            return
        if origin is tuple and isinstance(value, tuple) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return
        if origin is bool and isinstance(value, bool):
            return
        if origin in (int, float) and isinstance(value, int | float) and not isinstance(
            value, bool
        ) and (origin is float or isinstance(value, int)):
            return
        if origin is str and isinstance(value, str):
            return
    names = " or ".join("none" if t is type(None) else getattr(t, "__name__", str(t)) for t in args)
    raise UserError(f"{where}: {key} must be {names}, got {value!r}")


def _coerce(cls: type, table: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in table.items():
        if isinstance(value, list):
            value = tuple(value)
        _check_type(key, value, hints[key], where)
        if isinstance(value, int) and not isinstance(value, bool) and float in typing.get_args(
            hints[key]
        ) + (hints[key],):
            value = float(value)
        values[key] = value
    return cls(**values)


def from_dict(data: dict[str, Any], where: str = "config") -> Config:
    """Build a Config from a dict of tables ``{"model": {...}, "train": {...}, "quant": {...}}``."""
    unknown = sorted(set(data) - {"model", "train", "quant"})
    if unknown:
        raise UserError(f"{where}: unknown table(s) {', '.join(unknown)}; use model, train, quant")
    return Config(
        model=_coerce(ModelConfig, data.get("model", {}), f"{where} [model]"),
        train=_coerce(TrainConfig, data.get("train", {}), f"{where} [train]"),
        quant=_coerce(QuantConfig, data.get("quant", {}), f"{where} [quant]"),
    )


def load_toml(path: str | os.PathLike) -> Config:
    """Read a TOML config file. Raises UserError on a missing file, bad TOML or unknown keys."""
    return from_dict(checks.read_toml(path, "config"), str(path))


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass (or Config) as plain JSON-able data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


# Fields added after cached artifacts were first keyed: left out of config_hash while they hold
# this default, so configs that do not use them keep their keys (and their caches).
_HASH_OMIT_AT_DEFAULT = {"prune_block": None, "kernels": None, "head": None,
                         "augment_strength": 1.0, "augment_elastic": 0.0,
                         "augment_fraction": 1.0, "calm_epochs": 0, "calm_fraction": 0.5,
                         "ema": 0.0, "label_smoothing": 0.0}


def config_hash(*cfgs: Any) -> str:
    """Short stable hash of dataclass configs (used to key cached artifacts)."""
    dicts = []
    for c in cfgs:
        d = to_dict(c)
        if isinstance(d, dict):
            d = {k: v for k, v in d.items()
                 if k not in _HASH_OMIT_AT_DEFAULT or v != _HASH_OMIT_AT_DEFAULT[k]}
        dicts.append(d)
    blob = json.dumps(dicts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
