"""Requantization constants computed exactly as TFLM's Prepare functions compute them.

TFLM computes real multipliers in double (sometimes from a float32 product first) and turns
them into a Q31 significand and a power-of-two shift with QuantizeMultiplier (frexp, round half
away from zero). The same steps are reproduced here with Python floats (IEEE double) and numpy
float32 where TFLM uses float, so the constants are bit-identical.
"""

from __future__ import annotations

import math

import numpy as np


def round_half_away(x: float) -> int:
    """std::round / TfLiteRound for a double: halfway cases away from zero."""
    return math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplier(double): (Q31 significand, shift), shift > 0 is a left shift.
    Default (double-rounding) build: no clamp of shift > 30."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * float(1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), int(shift)


def f32(x) -> np.float32:
    return np.float32(x)


def activation_range(act: int, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLM CalculateActivationRangeQuantized for int8 outputs. `act` is the schema's
    ActivationFunctionType (0 NONE, 1 RELU, 2 RELU_N1_TO_1, 3 RELU6). Returns None-free
    (min, max); raises ValueError for activations TFLM does not fuse for int8."""
    qmin, qmax = -128, 127

    def quantize(f: float) -> int:
        # TFLM: zero_point + static_cast<int32_t>(TfLiteRound(f / scale)), f and scale float.
        return int(zero_point) + round_half_away(float(f32(f) / f32(scale)))

    if act == 0:
        return qmin, qmax
    if act == 1:
        return max(qmin, quantize(0.0)), qmax
    if act == 3:
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if act == 2:
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    raise ValueError(f"fused activation {act}")


def conv_multipliers(input_scale: float, filter_scales: np.ndarray, output_scale: float,
                     n_channels: int) -> tuple[list[int], list[int]]:
    """Per-channel multipliers as TFLM PopulateConvolutionQuantizationParams /
    per-channel FC: double(input_scale) * double(filter_scale[c]) / double(output_scale)."""
    mult, shift = [], []
    for c in range(n_channels):
        fs = float(filter_scales[c if len(filter_scales) > 1 else 0])
        m, s = quantize_multiplier(float(f32(input_scale)) * fs / float(f32(output_scale)))
        mult.append(m)
        shift.append(s)
    return mult, shift


def fc_multiplier_per_tensor(input_scale: float, filter_scale: float,
                             output_scale: float) -> tuple[int, int]:
    """FULLY_CONNECTED with one filter scale (per-tensor, or per-channel with one channel: the
    flatbuffer cannot tell them apart). The TFLM source of kernel_util.cc takes the
    input * filter product in float32 (GetQuantizedConvolutionMultipler), but the reference
    interpreter we check against (the `tflite-micro` wheel, 2026-10) matches the product of the
    two scales widened to double: seed142 of the AOT counterexample models differs by one on
    10 of 270,400 FC outputs with the float32 product and on none with the double product.
    The reference's behaviour is the truth, so: double(input_scale) * double(filter_scale) /
    double(output_scale)."""
    return quantize_multiplier(float(f32(input_scale)) * float(f32(filter_scale))
                               / float(f32(output_scale)))


MIN_SHIFT, MAX_SHIFT = -31, 30  # shifts nt_mul_q (and TFLM) apply without undefined behaviour


def shift_ok(shift: int) -> bool:
    """True if a QuantizeMultiplier shift is one the kernels (and TFLM's
    MultiplyByQuantizedMultiplier) compute without undefined behaviour: TFLM forms
    `x * (1 << shift)` in int, so a left shift of 31 or more is undefined there and differs
    between compilers and targets (x86 masks the count to 5 bits, Arm does not)."""
    return MIN_SHIFT <= shift <= MAX_SHIFT


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """TFLM PreprocessSoftmaxScaling (kScaledDiffIntegerBits = 5, double rounding build) and
    CalculateInputRadius: (input_multiplier, input_left_shift, diff_min)."""
    integer_bits = 5
    max_real = float((1 << 31) - 1)
    real = min(float(f32(beta)) * float(f32(input_scale)) * float(1 << (31 - integer_bits)),
               max_real)
    mult, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise ValueError("softmax input multiplier < 1")
    max_input_rescaled = (1.0 * ((1 << integer_bits) - 1) * float(1 << (31 - integer_bits))
                          / float(1 << left_shift))
    radius = math.floor(max_input_rescaled)
    return mult, left_shift, -radius


def add_params(s1: float, s2: float, so: float) -> dict[str, int]:
    """TFLM CalculateOpDataAdd for int8: left_shift 20, inputs rescaled to twice the larger
    input scale, output multiplier from that."""
    left_shift = 20
    twice_max = 2.0 * float(max(f32(s1), f32(s2)))
    m1, sh1 = quantize_multiplier(float(f32(s1)) / twice_max)
    m2, sh2 = quantize_multiplier(float(f32(s2)) / twice_max)
    mo, sho = quantize_multiplier(twice_max / (float(1 << left_shift) * float(f32(so))))
    return {"left_shift": left_shift, "in1_multiplier": m1, "in1_shift": sh1,
            "in2_multiplier": m2, "in2_shift": sh2, "out_multiplier": mo, "out_shift": sho}
