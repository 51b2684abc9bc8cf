"""Keras -> TFLite flatbuffers: float, and full-integer int8 (int8 in, int8 out).

The int8 conversion traces the model with a fixed input signature [1,28,28,1] so the graph has
no dynamic batch (no SHAPE/STRIDED_SLICE/PACK ops), allows only TFLITE_BUILTINS_INT8 ops and
calibrates on training images at recorded, fixed indices (QuantConfig.calibration_indices).
Quantization-aware-trained models (tfmot quantize_model) go through the same conversion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from nanocore.errors import UserError
from trainer import tflite_info
from trainer.config import QuantConfig
from trainer.data import Mnist
from trainer.tf import keras, tf

log = logging.getLogger(__name__)

INPUT_SIGNATURE = (1, 28, 28, 1)
# Ops that must never appear: they come from a dynamic batch dimension.
DYNAMIC_SHAPE_OPS = ("SHAPE", "PACK", "STRIDED_SLICE")


@dataclass(frozen=True)
class FlatbufferSummary:
    """What the int8 checks need from a flatbuffer (the full inspector is trainer.tflite_info).

    input_type/output_type: TensorType names ("INT8", "FLOAT32"); ops: builtin op names in
    operator-code order; input_scale/zero_point and output_scale/zero_point from the I/O tensors;
    float_ops: ops computing in float32 between a DEQUANTIZE and a QUANTIZE (the converter does
    this for activations it cannot quantize, e.g. ELU): not full-integer, unusable by the AOT
    backend.
    """

    input_type: str
    output_type: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    ops: tuple[str, ...]
    float_ops: tuple[str, ...] = ()


def summarize(tflite: bytes) -> FlatbufferSummary:
    """The first subgraph's I/O types, shapes, quantization and op names (a view of
    trainer.tflite_info.parse, which refuses no tensor types)."""
    info = tflite_info.parse(tflite)
    return FlatbufferSummary(
        input_type=info.input_dtype.upper(),
        output_type=info.output_dtype.upper(),
        input_shape=info.input_shape,
        output_shape=info.output_shape,
        input_scale=info.input_scale,
        input_zero_point=info.input_zero_point,
        output_scale=info.output_scale,
        output_zero_point=info.output_zero_point,
        ops=info.opcode_names,
        float_ops=info.float_ops,
    )


def _concrete(model: keras.Model, signature: tuple[int, ...] = INPUT_SIGNATURE):
    fn = tf.function(lambda x: model(x, training=False))
    return fn.get_concrete_function(tf.TensorSpec(signature, tf.float32, name="image"))


def _convert(converter: tf.lite.TFLiteConverter, what: str) -> bytes:
    try:
        return bytes(converter.convert())
    except Exception as e:  # noqa: BLE001  (converter errors are long; keep the first line)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{what} conversion failed: {first}") from None


def to_float(model: keras.Model) -> bytes:
    """Float32 .tflite flatbuffer (batch 1), for comparison and size reference."""
    cf = _concrete(model)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([cf], model)
    return _convert(converter, "float")


def calibration_images(data: Mnist, qcfg: QuantConfig) -> np.ndarray:
    """The representative set: float32 (N,28,28,1) in [0,1] at qcfg.calibration_indices."""
    idx = qcfg.calibration_indices(len(data.x_train))
    return (data.x_train[idx].astype(np.float32) / 255.0)[..., None]


def convert_int8(model: keras.Model, representative: np.ndarray, *,
                 per_channel_dense: bool = True, fixed_batch: bool = True) -> bytes:
    """Keras model + representative inputs -> full-integer int8 .tflite bytes (int8 input and
    output, TFLITE_BUILTINS_INT8 ops only). Converts; checks nothing (see `check_int8`).

    Args:
        model: the float (or QAT) Keras model.
        representative: float32 (N, *input shape without batch): the calibration inputs, fed
            one at a time as a batch of 1, in order.
        per_channel_dense: False quantizes FULLY_CONNECTED weights per tensor (one scale).
        fixed_batch: trace the model with the input signature (1, *representative.shape[1:]),
            so the graph has no dynamic batch (no SHAPE/STRIDED_SLICE/PACK ops); False converts
            the Keras model as it is (`TFLiteConverter.from_keras_model`).

    Raises:
        UserError: the converter failed (its first line).
    """
    calib = np.asarray(representative, dtype=np.float32)

    def samples():
        for x in calib:
            yield [x[None]]

    if fixed_batch:
        cf = _concrete(model, (1, *calib.shape[1:]))
        converter = tf.lite.TFLiteConverter.from_concrete_functions([cf], model)
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    if not per_channel_dense:
        # Private flag of the converter (TF >= 2.13); check_int8's callers see the weights'
        # scales (dense_weight_scales).
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return _convert(converter, "int8")


def to_int8(model: keras.Model, data: Mnist, qcfg: QuantConfig | None = None) -> bytes:
    """Full-integer int8 .tflite (int8 input and output, TFLITE_BUILTINS_INT8 only, batch 1),
    calibrated on the training images at qcfg.calibration_indices (`convert_int8`).

    Dense weights are per-channel unless qcfg.per_channel_dense is False. Raises UserError if
    conversion fails or the result is not int8 in/out or still has dynamic-shape ops.
    """
    qcfg = qcfg or QuantConfig()
    tflite = convert_int8(model, calibration_images(data, qcfg),
                          per_channel_dense=qcfg.per_channel_dense)
    check_int8(tflite)
    return tflite


def check_int8(tflite: bytes) -> FlatbufferSummary:
    """Raise UserError unless the flatbuffer is int8 in/out, batch 1, without dynamic-shape ops."""
    s = summarize(tflite)
    if s.input_type != "INT8" or s.output_type != "INT8":
        raise UserError(f"model is not int8 in/out (input {s.input_type}, output {s.output_type})")
    if s.input_shape[:1] != (1,):
        raise UserError(f"model input batch is not 1 (shape {s.input_shape})")
    bad = [op for op in s.ops if op in DYNAMIC_SHAPE_OPS]
    if bad:
        raise UserError(f"int8 model has dynamic-shape ops {', '.join(bad)}")
    if s.float_ops:
        # Still int8 in/out and runs in TFLM, so not refused here (the seed study compares such
        # activations); the exporter refuses what a backend cannot run.
        log.warning("not full-integer: %s computes in float32 (DEQUANTIZE/QUANTIZE around it)",
                    ", ".join(s.float_ops))
    return s


def dense_weight_scales(tflite: bytes) -> list[int]:
    """Number of quantization scales of each FULLY_CONNECTED weight tensor (1 = per-tensor)."""
    return tflite_info.parse(tflite).dense_weight_scales
