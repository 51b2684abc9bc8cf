"""Training: float Keras training with optional augmentation, magnitude pruning and QAT.

``train(model_cfg, train_cfg, data)`` builds a zoo model, trains it on MNIST (pixels / 255,
shape (N,28,28,1)), and returns the trained Keras model with its history, wall time and the
achieved weight sparsity. With ``train_cfg.qat`` it then fine-tunes with tfmot's quantize_model
(the returned model carries fake-quant nodes and converts with the same ``quantize.to_int8``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nanocore.errors import UserError
from trainer import models
from trainer.config import ModelConfig, TrainConfig
from trainer.data import Mnist
from trainer.tf import keras, tf, tfmot

log = logging.getLogger(__name__)

# The zoo's output Dense layer (trainer/models.py names it so in every model).
CLASSIFIER_NAME = "logits"
# Layers whose kernels pruning acts on and sparsity is measured over.
_PRUNABLE = (keras.layers.Dense, keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
_OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
               "rmsprop": keras.optimizers.RMSprop, "nadam": keras.optimizers.Nadam,
               "adamw": keras.optimizers.AdamW}


@dataclass
class TrainResult:
    """model: trained keras.Model (QAT-wrapped if qat); history: metric name -> per-epoch values
    (float epochs, then ``qat_*`` entries); seconds: wall time of all fitting; sparsity: fraction
    of zero weights in Dense/Conv kernels (0..1); epochs: float epochs actually run."""

    model: keras.Model
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    sparsity: float = 0.0
    epochs: int = 0


def prepare(images: np.ndarray) -> np.ndarray:
    """uint8 (N,28,28) -> float32 (N,28,28,1) in [0,1], the models' input."""
    return (np.asarray(images, dtype=np.float32) / 255.0)[..., None]


def _split(data: Mnist, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    n = len(data.x_train) if cfg.train_limit is None else min(cfg.train_limit, len(data.x_train))
    if n <= cfg.validation_count:
        raise UserError(f"train_limit {n} leaves nothing after validation_count "
                        f"{cfg.validation_count}")
    x, y = data.x_train[:n], data.y_train[:n].astype(np.int64)
    val = None
    if cfg.validation_count > 0:
        k = n - cfg.validation_count
        val = (prepare(x[k:]), y[k:])
        x, y = x[:k], y[:k]
    return prepare(x), y, val


class _AugmentedBatches:
    """Shuffled batches, each augmented freshly by a trainer.augment.Augmenter; one epoch at a
    time as whole arrays (`epoch()`), a new order per epoch.

    Model.fit over these arrays (batch_size = batch, no shuffling) trains on exactly these
    batches. A keras.utils.Sequence drew the same batches one fit step at a time, but its
    per-step overhead cost about twice the training itself once TensorFlow's oneDNN kernels made
    the steps cheap (the deploy study: 167 s augmented vs 56 s plain for the same cnn, epochs and
    images). An epoch's random numbers are drawn batch by batch in one pass (the stream
    augmenting batch after batch would use), then the batches are augmented on `workers` threads
    (numpy releases the GIL in its array loops): the same arrays, in about half the time on two
    cores.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch: int, seed: int, fn: Any,
                 fraction: float = 1.0, workers: int | None = None) -> None:
        self.x, self.y, self.batch, self.fn, self.fraction = x, y, batch, fn, fraction
        self.rng = np.random.default_rng(seed)
        self.workers = workers or min(4, os.cpu_count() or 1)

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch)

    def epoch(self, fraction: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The next epoch: (images float32 (N,28,28,1), labels (N,)) in batch order; `fraction`
        overrides the augmented share for this epoch."""
        frac = self.fraction if fraction is None else fraction
        order = self.rng.permutation(len(self.x))
        out = np.empty((len(order), 28, 28, 1), np.float32)
        jobs = []
        for lo in range(0, len(order), self.batch):
            idx = order[lo : lo + self.batch]
            # frac < 1: only that share of each batch is augmented, the rest stays clean (at 1
            # no mask is drawn, so the random stream is what it was before the option).
            pick = (self.rng.random(len(idx)) < frac) if frac < 1.0 else None
            n = len(idx) if pick is None else int(pick.sum())
            jobs.append((lo, idx, pick, self.fn.draw(n, self.rng) if n else None))

        def run(job) -> None:
            lo, idx, pick, draws = job
            xb = np.asarray(self.x[idx], np.float32)  # a copy already (fancy indexing)
            if pick is None:
                xb = self.fn.apply(xb, draws)
            elif draws is not None:
                some = xb[pick]
                xb[pick] = self.fn.apply(some, draws).reshape(some.shape)
            out[lo : lo + len(idx)] = xb.reshape(len(idx), 28, 28, 1)

        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(run, jobs))  # list(): raise a worker's exception here
        return out, self.y[order]


def _augment_fn(strength: float = 1.0, elastic: float = 0.0):
    """trainer.augment.Augmenter with its ranges scaled by `strength` and the elastic warp drawn
    with probability `elastic` (see TrainConfig)."""
    try:
        from trainer.augment import DEFAULT, Augmenter
    except ImportError as e:
        raise UserError(f"augmentation is not available (trainer.augment: {e}); "
                        "train with augment = false") from None
    if not 0.0 < strength <= 2.0:
        raise UserError(f"augment_strength must be in (0, 2], got {strength}")
    if not 0.0 <= elastic <= 1.0:
        raise UserError(f"augment_elastic must be in [0, 1], got {elastic}")
    if strength == 1.0 and elastic == 0.0:
        return Augmenter(DEFAULT)
    return Augmenter(dataclasses.replace(scaled_augment(DEFAULT, strength), p_elastic=elastic))


def scaled_augment(cfg, strength: float):
    """An AugmentConfig with every range scaled by `strength`: plain numbers (shifts, angles,
    shear, probabilities, capped at 1 for p_*) multiplied, (lo, hi) ranges moved towards 1."""
    kw = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, tuple):
            kw[f.name] = tuple(1.0 + strength * (b - 1.0) for b in v)
        else:
            kw[f.name] = min(1.0, v * strength) if f.name.startswith("p_") else v * strength
    return dataclasses.replace(cfg, **kw)


def _optimizer(cfg: TrainConfig, lr: float, steps: int) -> keras.optimizers.Optimizer:
    if cfg.optimizer not in _OPTIMIZERS:
        raise UserError(f"unknown optimizer {cfg.optimizer!r}; choose {', '.join(_OPTIMIZERS)}")
    if cfg.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, steps), alpha=0.02)
    elif cfg.lr_schedule == "constant":
        rate = lr
    else:
        raise UserError(f"unknown lr_schedule {cfg.lr_schedule!r}; use cosine or constant")
    return _OPTIMIZERS[cfg.optimizer](learning_rate=rate)


def _compile(model: keras.Model, opt: keras.optimizers.Optimizer,
             label_smoothing: float = 0.0) -> None:
    if not 0.0 <= label_smoothing < 1.0:
        raise UserError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if label_smoothing > 0:
        # Keras' sparse loss has no smoothing; the dense one takes one-hot labels.
        def loss(y_true, logits):
            onehot = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), tf.shape(logits)[-1])
            return keras.losses.categorical_crossentropy(
                onehot, logits, from_logits=True, label_smoothing=label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=opt, loss=loss, metrics=["accuracy"])


class _WeightAverage(keras.callbacks.Callback):
    """Exponential moving average of every model weight (trainable ones and BatchNorm's
    statistics), updated after each batch with decay min(decay, (1 + t) / (10 + t)) at step t
    (a short memory while the weights move fast at the start). `apply()` copies the averages into
    the model. Kept across fit calls (the augmented path calls fit once per epoch)."""

    def __init__(self, decay: float) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise UserError(f"ema must be in (0, 1) (0 = off), got {decay}")
        self.decay = decay
        self.shadow: list | None = None
        self.step = None

    def on_train_begin(self, logs=None) -> None:
        if self.shadow is None:
            self.shadow = [tf.Variable(w, trainable=False) for w in self.model.weights]
            self.step = tf.Variable(0.0, trainable=False)
            weights = list(self.model.weights)

            @tf.function
            def update():
                self.step.assign_add(1.0)
                d = tf.minimum(self.decay, (1.0 + self.step) / (10.0 + self.step))
                for s, w in zip(self.shadow, weights, strict=True):
                    s.assign(d * s + (1.0 - d) * tf.cast(w, s.dtype))

            self._update = update

    def on_train_batch_end(self, batch, logs=None) -> None:
        self._update()

    def apply(self) -> None:
        if self.shadow is not None:
            for s, w in zip(self.shadow, self.model.weights, strict=True):
                w.assign(s)


def _verbose(progress: bool) -> int:
    # Keras' live bar on a terminal, one line per epoch in logs and CI.
    if not progress:
        return 0
    return 1 if sys.stdout.isatty() else 2


def _fit(model, x, y, val, cfg: TrainConfig, epochs: int, progress: bool, callbacks: list):
    if cfg.augment:
        if not 0.0 < cfg.augment_fraction <= 1.0:
            raise UserError(f"augment_fraction must be in (0, 1], got {cfg.augment_fraction}")
        if cfg.calm_epochs < 0 or not 0.0 <= cfg.calm_fraction <= 1.0:
            raise UserError(f"calm_epochs must be >= 0 and calm_fraction in [0, 1], got "
                            f"{cfg.calm_epochs}, {cfg.calm_fraction}")
        seq = _AugmentedBatches(x, y, cfg.batch_size, cfg.seed,
                                _augment_fn(cfg.augment_strength, cfg.augment_elastic),
                                cfg.augment_fraction)
        history: dict[str, list[float]] = {}
        for e in range(epochs):  # one fit call per epoch: the optimizer's step count carries on
            t0 = time.perf_counter()
            calm = e >= epochs - cfg.calm_epochs
            xa, ya = seq.epoch(cfg.calm_fraction if calm else None)
            # Keras would number each one-epoch call "Epoch k/k"; the line below says k/epochs.
            h = model.fit(xa, ya, batch_size=cfg.batch_size, initial_epoch=e, epochs=e + 1,
                          validation_data=val, shuffle=False, callbacks=callbacks, verbose=0)
            for k, vals in h.history.items():
                history.setdefault(k, []).extend(float(v) for v in vals)
            if progress:
                figures = " - ".join(f"{k}: {v[-1]:.4f}" for k, v in h.history.items())
                print(f"Epoch {e + 1}/{epochs} - {time.perf_counter() - t0:.0f}s - {figures}",
                      flush=True)
        return history
    else:
        h = model.fit(x, y, batch_size=cfg.batch_size, epochs=epochs, validation_data=val,
                      shuffle=True, callbacks=callbacks, verbose=_verbose(progress))
    return {k: [float(v) for v in vals] for k, vals in h.history.items()}


def weight_sparsity(model: keras.Model) -> float:
    """Fraction of exactly-zero kernel weights over all Dense/Conv/DepthwiseConv layers (0..1).

    Reads the kernel variables by name, which works for plain models and inside tfmot's
    pruning and QAT wrappers (where ``layer.kernel`` may be a fake-quantized tensor).
    """
    zeros = total = 0
    for var in model.weights:
        name = var.name.split(":")[0]
        if name.endswith("kernel"):  # kernel, depthwise_kernel (not biases, BN, quant ranges)
            k = var.numpy()
            zeros += int(np.sum(k == 0))
            total += k.size
    return zeros / total if total else 0.0


def prune_block(cfg: TrainConfig) -> tuple[int, int]:
    """cfg.prune_block as (inputs, outputs) of a Dense kernel block; (1, 1) = unstructured.
    Raises UserError unless it is two positive ints."""
    block = cfg.prune_block if cfg.prune_block is not None else (1, 1)
    if len(block) != 2 or any(int(b) < 1 for b in block):
        raise UserError(f"prune_block must be two positive ints (inputs, outputs), got {block}")
    return int(block[0]), int(block[1])


def _prunable_clone(model: keras.Model, cfg: TrainConfig, steps_per_epoch: int, epochs: int):
    if not 0.0 < cfg.prune_sparsity < 1.0:
        raise UserError(f"prune_sparsity must be in (0, 1), got {cfg.prune_sparsity}")
    total = steps_per_epoch * epochs
    begin = min(cfg.prune_begin_epoch * steps_per_epoch, max(0, total - 1))
    end = max(begin + 1, int(total * cfg.prune_end_fraction))
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=cfg.prune_sparsity, begin_step=begin,
        end_step=end, frequency=max(1, min(cfg.prune_frequency, (end - begin) // 4 or 1)),
    )

    block = prune_block(cfg)

    def wrap(layer):
        # The classifier stays unstructured: it is tiny (e.g. 60 x 10), and whole 8 x 2 blocks
        # at 90 % left most classes without inputs (float accuracy 0.70, measured).
        if (isinstance(layer, keras.layers.Dense) and block != (1, 1)
                and layer.name != CLASSIFIER_NAME):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule,
                                                            block_size=block)
        if isinstance(layer, _PRUNABLE):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer.__class__.from_config(layer.get_config())

    # Layer by layer, so models with custom layers (ShuffleNet's split/shuffle) can be pruned.
    return keras.models.clone_model(model, clone_function=wrap)


def resolve(model_cfg: ModelConfig, train_cfg: TrainConfig) -> TrainConfig:
    """train_cfg with epochs/batch_size/learning_rate left at None taken from the model's
    defaults (models.TRAIN_DEFAULTS)."""
    if model_cfg.name not in models.REGISTRY:
        raise UserError(f"unknown model {model_cfg.name!r}; choose one of "
                        f"{', '.join(models.REGISTRY)}")
    defaults = models.TRAIN_DEFAULTS[model_cfg.name]
    fill = {k: v for k, v in defaults.items() if getattr(train_cfg, k) is None}
    return dataclasses.replace(train_cfg, **fill)


def train(model_cfg: ModelConfig, train_cfg: TrainConfig, data: Mnist,
          progress: bool = True) -> TrainResult:
    """Build and train a zoo model. Returns TrainResult (see its docstring).

    Seeds numpy/python/TF from train_cfg.seed; the first train_limit training images are used,
    the last validation_count of those held out. Pruning wraps Dense/Conv kernels with
    prune_low_magnitude (schedule in TrainConfig) and strips the wrappers afterwards.
    """
    train_cfg = resolve(model_cfg, train_cfg)
    keras.utils.set_random_seed(train_cfg.seed)
    epochs = train_cfg.epochs
    if epochs < 0 or train_cfg.batch_size <= 0:
        raise UserError(f"epochs must be >= 0 and batch_size > 0 (got {epochs}, "
                        f"{train_cfg.batch_size})")
    x, y, val = _split(data, train_cfg)
    model = models.build(model_cfg)
    steps = math.ceil(len(x) / train_cfg.batch_size)
    callbacks: list = []
    pruning = train_cfg.prune_sparsity is not None and train_cfg.prune_sparsity > 0
    if pruning:
        model = _prunable_clone(model, train_cfg, steps, epochs)
        callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
    _compile(model, _optimizer(train_cfg, train_cfg.learning_rate, steps * epochs),
             train_cfg.label_smoothing)
    if train_cfg.ema and pruning:
        raise UserError("ema and pruning do not combine (the average would blur the masks)")
    average = _WeightAverage(train_cfg.ema) if train_cfg.ema else None
    if average is not None:
        callbacks.append(average)
    log.info("training %s: %d images, %d epochs, batch %d", model_cfg.name, len(x), epochs,
             train_cfg.batch_size)
    t0 = time.perf_counter()
    history = _fit(model, x, y, val, train_cfg, epochs, progress, callbacks) if epochs else {}
    if average is not None:
        average.apply()
    if pruning:
        model = tfmot.sparsity.keras.strip_pruning(model)
    sparsity = weight_sparsity(model)
    result = TrainResult(model, history, time.perf_counter() - t0, sparsity, epochs)
    if train_cfg.qat:
        qat_finetune(result, data, train_cfg, progress, preserve_sparsity=pruning)
    return result


class _NoOpQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """For layers that only move data (ShuffleNet's split/shuffle): no fake-quant inserted."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


def quantize_scope():
    """Context for loading a QAT model saved by `trainer train --qat` (tfmot + zoo layers)."""
    objs = dict(models.custom_objects())
    objs["_NoOpQuantizeConfig"] = _NoOpQuantizeConfig
    return tfmot.quantization.keras.quantize_scope(objs)


def qat_model(model: keras.Model, preserve_sparsity: bool = False) -> keras.Model:
    """Wrap a trained float model for quantization-aware training (tfmot quantize_model)."""
    custom = tuple(models.custom_objects().values())

    def annotate(layer):
        if isinstance(layer, custom):
            return tfmot.quantization.keras.quantize_annotate_layer(
                layer.__class__.from_config(layer.get_config()), _NoOpQuantizeConfig())
        return tfmot.quantization.keras.quantize_annotate_layer(
            layer.__class__.from_config(layer.get_config()))

    if any(isinstance(layer, custom) for layer in model.layers):
        annotated = keras.models.clone_model(model, clone_function=annotate)
        annotated.set_weights(model.get_weights())
    else:
        annotated = tfmot.quantization.keras.quantize_annotate_model(model)
    scheme = None
    if preserve_sparsity:
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    with quantize_scope():
        if scheme is not None:
            return tfmot.quantization.keras.quantize_apply(annotated, scheme)
        return tfmot.quantization.keras.quantize_apply(annotated)


def qat_finetune(result: TrainResult, data: Mnist, train_cfg: TrainConfig,
                 progress: bool = True, preserve_sparsity: bool = False) -> TrainResult:
    """QAT fine-tuning of result.model in place: qat_epochs at qat_learning_rate (cosine)."""
    train_cfg = dataclasses.replace(train_cfg, batch_size=train_cfg.batch_size or 128)
    x, y, val = _split(data, train_cfg)
    try:
        model = qat_model(result.model, preserve_sparsity)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"QAT cannot wrap this model: {str(e).splitlines()[0]}") from None
    steps = math.ceil(len(x) / train_cfg.batch_size) * max(1, train_cfg.qat_epochs)
    _compile(model, _optimizer(train_cfg, train_cfg.qat_learning_rate, steps))
    t0 = time.perf_counter()
    hist = _fit(model, x, y, val, train_cfg, train_cfg.qat_epochs, progress, [])
    result.seconds += time.perf_counter() - t0
    result.history.update({f"qat_{k}": v for k, v in hist.items()})
    result.model = model
    result.sparsity = weight_sparsity(model)
    return result


def keras_accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray,
                   batch: int = 500) -> float:
    """Top-1 accuracy of a float Keras model on uint8 images (N,28,28) with labels (N,)."""
    logits = model.predict(prepare(images), batch_size=batch, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels)))
