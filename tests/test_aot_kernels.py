"""Per-kernel property tests for the AOT backend.

Each case builds a tiny Keras model around one op with random shapes, strides, padding,
activations and input ranges (so random zero points and scales), converts it to a full-int8
.tflite with TensorFlow, generates C with trainer.aot, builds it with gcc and ASan/UBSan, and
compares every output byte with the TFLM reference interpreter on random int8 inputs.
Seeded: the same cases every run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from nanocore.errors import UserError
from trainer.aot import generate
from trainer.aot.host import RUNNER_C, build_runner, run_runner

RECORDS = 48  # random input tensors per case

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def _keras():
    from trainer.tf import keras

    return keras


def _convert(model, in_shape, lo: float, hi: float, seed: int) -> bytes:
    from trainer.quantize import convert_int8

    rep = np.random.default_rng(seed).uniform(lo, hi, size=(16, *in_shape)).astype(np.float32)
    return convert_int8(model, rep, fixed_batch=False)


def _reference(tfl: bytes, x: np.ndarray) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tfl, arena_size=4 * 1024 * 1024)
    outs = []
    for xx in x:
        interp.set_input(xx[None], 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)).reshape(-1))
    return np.stack(outs)


def _init(k, rng):
    # Random (not Keras-default) weights and biases so that products, biases and per-channel
    # scales vary widely between channels.
    return k.initializers.RandomUniform(-rng.uniform(0.05, 1.5), rng.uniform(0.05, 1.5),
                                        seed=int(rng.integers(1 << 30)))


def _act(rng) -> str | None:
    return [None, "relu", "relu6"][int(rng.integers(3))]


def case_fc(k, rng):
    n = int(rng.integers(1, 80))
    i = k.Input((n,), batch_size=1)
    x = k.layers.Dense(int(rng.integers(1, 40)), activation=_act(rng),
                       use_bias=bool(rng.integers(2)), kernel_initializer=_init(k, rng),
                       bias_initializer=_init(k, rng))(i)
    return k.Model(i, x), (n,)


def _image(rng, max_hw=12, max_c=8):
    return (int(rng.integers(3, max_hw + 1)), int(rng.integers(3, max_hw + 1)),
            int(rng.integers(1, max_c + 1)))


def case_conv(k, rng):
    shape = _image(rng)
    kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    kh, kw = min(kh, shape[0]), min(kw, shape[1])
    # No dilation: the converter lowers dilated int8 convs to SPACE_TO_BATCH_ND + CONV_2D +
    # BATCH_TO_SPACE_ND, so a dilated CONV_2D never reaches the generator from Keras.
    i = k.Input(shape, batch_size=1)
    x = k.layers.Conv2D(int(rng.integers(1, 13)), (kh, kw), strides=int(rng.integers(1, 4)),
                        padding=["same", "valid"][int(rng.integers(2))], activation=_act(rng),
                        use_bias=bool(rng.integers(2)), kernel_initializer=_init(k, rng),
                        bias_initializer=_init(k, rng))(i)
    return k.Model(i, x), shape


def case_depthwise(k, rng):
    shape = _image(rng)
    kh, kw = min(int(rng.integers(1, 6)), shape[0]), min(int(rng.integers(1, 6)), shape[1])
    i = k.Input(shape, batch_size=1)
    x = k.layers.DepthwiseConv2D((kh, kw), strides=int(rng.integers(1, 3)),
                                 depth_multiplier=int(rng.integers(1, 4)),
                                 padding=["same", "valid"][int(rng.integers(2))],
                                 activation=_act(rng), use_bias=bool(rng.integers(2)),
                                 depthwise_initializer=_init(k, rng),
                                 bias_initializer=_init(k, rng))(i)
    return k.Model(i, x), shape


def case_pool(k, rng):
    shape = _image(rng)
    p = min(int(rng.integers(1, 5)), shape[0], shape[1])
    layer = [k.layers.MaxPool2D, k.layers.AveragePooling2D][int(rng.integers(2))]
    i = k.Input(shape, batch_size=1)
    x = layer(p, strides=int(rng.integers(1, 4)),
              padding=["same", "valid"][int(rng.integers(2))])(i)
    return k.Model(i, x), shape


def case_mean(k, rng):
    shape = _image(rng, max_hw=8)
    i = k.Input(shape, batch_size=1)
    x = k.layers.Conv2D(int(rng.integers(1, 9)), 1, kernel_initializer=_init(k, rng))(i)
    x = k.layers.GlobalAveragePooling2D(keepdims=bool(rng.integers(2)))(x)
    return k.Model(i, x), shape


def case_add(k, rng):
    shape = _image(rng, max_hw=8)
    c = int(rng.integers(1, 9))
    i = k.Input(shape, batch_size=1)
    a = k.layers.Conv2D(c, 1, kernel_initializer=_init(k, rng))(i)
    b = k.layers.Conv2D(c, 3, padding="same", kernel_initializer=_init(k, rng))(i)
    x = k.layers.Add()([a, b])
    if rng.integers(2):
        x = k.layers.ReLU()(x)
    return k.Model(i, x), shape


def case_concat(k, rng):
    shape = _image(rng, max_hw=8)
    i = k.Input(shape, batch_size=1)
    a = k.layers.Conv2D(int(rng.integers(1, 6)), 1, kernel_initializer=_init(k, rng))(i)
    b = k.layers.MaxPool2D(1)(i)
    x = k.layers.Concatenate(axis=-1)([a, b])
    return k.Model(i, x), shape


def case_softmax(k, rng):
    n = int(rng.integers(1, 40))
    i = k.Input((n,), batch_size=1)
    x = k.layers.Dense(int(rng.integers(2, 16)), kernel_initializer=_init(k, rng))(i)
    x = k.layers.Softmax()(x)
    return k.Model(i, x), (n,)


def case_activation(k, rng, name):
    n = int(rng.integers(4, 40))
    i = k.Input((n,), batch_size=1)
    x = k.layers.Dense(int(rng.integers(2, 24)), kernel_initializer=_init(k, rng))(i)
    x = k.layers.Activation(name)(x)
    return k.Model(i, x), (n,)


def case_shuffle(k, rng):
    from trainer.tf import tf

    h, w = int(rng.integers(2, 7)), int(rng.integers(2, 7))
    c = 2 * int(rng.integers(1, 5))
    shape = (h, w, c)
    i = k.Input(shape, batch_size=1)
    x = k.layers.Conv2D(c, 1, kernel_initializer=_init(k, rng))(i)
    a, b = k.layers.Lambda(lambda t: tf.split(t, 2, axis=-1))(x)
    b = k.layers.Conv2D(c // 2, 1, kernel_initializer=_init(k, rng))(b)
    y = k.layers.Concatenate()([a, b])
    y = k.layers.Reshape((h, w, 2, c // 2))(y)
    y = k.layers.Lambda(lambda t: tf.transpose(t, (0, 1, 2, 4, 3)))(y)
    y = k.layers.Reshape((h, w, c))(y)
    return k.Model(i, y), shape


def case_slice(k, rng):
    shape = _image(rng, max_hw=9)
    i = k.Input(shape, batch_size=1)
    x = k.layers.Conv2D(int(rng.integers(2, 6)), 1, kernel_initializer=_init(k, rng))(i)
    s0, s1 = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    x = k.layers.Lambda(lambda t: t[:, 1::s0, ::s1, 1:])(x)
    return k.Model(i, x), shape


# family: (builder, cases in the default suite); the slow suite runs 4x as many seeds.
FAMILIES = {
    "fc": (case_fc, 4), "conv": (case_conv, 5), "depthwise": (case_depthwise, 4),
    "pool": (case_pool, 4), "mean": (case_mean, 2), "add": (case_add, 3),
    "concat": (case_concat, 1), "softmax": (case_softmax, 2), "shuffle": (case_shuffle, 1),
    "slice": (case_slice, 1),
}
ACTIVATIONS = ("sigmoid", "tanh", "elu", "exponential", "softplus", "swish", "gelu")
CASES = [pytest.param(f, s, id=f"{f}-{s}") for f, (_, n) in FAMILIES.items()
         for s in range(n)]
CASES += [pytest.param(f"act_{a}", 0, id=f"act_{a}-0") for a in ACTIVATIONS]
CASES += [pytest.param(f, s, id=f"{f}-{s}", marks=pytest.mark.slow)
          for f, (_, n) in FAMILIES.items() for s in range(n, 4 * n)]


# The refusals a case family may end in, as fragments its message must contain; every other
# family (and every seed of the slow suite) must generate. All but one are models TFLM itself
# cannot run (so there is no reference to be bit-exact with, and neither backend can): ADD with
# these random scales aborts in TFLM's prepare, the converter lowers exponential and softplus to
# an int8 EXP that TFLM's EXP kernel (float only) refuses, and TFLM has no GELU kernel. The one
# AOT-only refusal: ELU converts to a float DEQUANTIZE chain that does not come back to int8
# through element-wise ops alone (the tflm backend runs it).
ALLOWED_REFUSALS: dict[str, tuple[str, ...]] = {
    "add": ("op ADD ", "fails to prepare in TFLM"),
    "act_elu": ("op DEQUANTIZE ", "does not return to int8 through elementwise ops"),
    "act_exponential": ("op EXP ", "fails to prepare in TFLM"),
    "act_gelu": ("op GELU ", "has no kernel in TFLM"),
    "act_softplus": ("op EXP ", "fails to prepare in TFLM"),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("aot_kernels")


def _build_case(family: str, seed: int):
    k = _keras()
    rng = np.random.default_rng([ord(ch) for ch in family] + [seed])
    if family.startswith("act_"):
        model, shape = case_activation(k, rng, family[4:])
    else:
        model, shape = FAMILIES[family][0](k, rng)
    lo = float(rng.uniform(-3, 0.5))
    hi = lo + float(rng.uniform(0.2, 6))
    return model, shape, lo, hi


@pytest.mark.parametrize(("family", "seed"), CASES)
def test_kernel_matches_tflm(family: str, seed: int, workdir: Path) -> None:
    model, shape, lo, hi = _build_case(family, seed)
    tfl = _convert(model, shape, lo, hi, seed)
    out = workdir / f"{family}_{seed}"
    try:
        res = generate(tfl, out)
    except UserError as e:
        # Only the documented refusals below may skip; any other refusal (say, of CONV_2D) is a
        # failure. The message must name the op and point to the tflm backend.
        msg = str(e)
        assert "tflm backend" in msg and "op " in msg, msg
        allowed = ALLOWED_REFUSALS.get(family)
        assert allowed is not None and all(part in msg for part in allowed), (
            f"{family}-{seed}: the generator refused an op it must support: {msg}")
        pytest.skip(f"refused at export (documented for {family}): {msg}")
    exe = build_runner(out, RUNNER_C)
    rng = np.random.default_rng(seed + 1000)
    x = rng.integers(-128, 128, size=(RECORDS, *shape), dtype=np.int8)
    want = _reference(tfl, x)
    got = run_runner(exe, x.reshape(RECORDS, -1), want.shape[1])
    bad = np.flatnonzero(np.any(got != want, axis=1))
    assert bad.size == 0, (f"{family}-{seed} ops={res.ops}: {bad.size}/{RECORDS} records "
                           f"differ, first {bad[0]}: got {got[bad[0]][:16]} "
                           f"want {want[bad[0]][:16]}")


@pytest.mark.parametrize("rows,depth", [(50, 784), (10, 50), (7, 14), (3, 6), (1, 8)])
def test_fc_stacked_words_read_as_int16_lanes(rows: int, depth: int) -> None:
    """NT_LAYOUT_FC_STACKED (kernels.h): same size as the weights; in each row pair's 8-input
    blocks every 4-byte word read as two little-endian int16 lanes is
    256 w[2j + 1][k] + w[2j][k] + 128 for the inputs (k0, k2), (k1, k3), (k4, k6), (k5, k7)
    (what the DSP loop multiplies unpacked); the depth % 8 tail of each row and an odd last row
    follow as is."""
    from trainer.aot.lower_nn import fc_stacked

    w = np.random.default_rng(rows * depth).integers(-128, 128, (rows, depth)).astype(np.int8)
    flat = fc_stacked(w)
    assert flat.dtype == np.int8 and flat.size == w.size
    body = depth // 8 * 8
    lane_inputs = [0, 2, 1, 3, 4, 6, 5, 7]
    pos = 0
    for j in range(rows // 2):
        w0, w1 = w[2 * j].astype(np.int32), w[2 * j + 1].astype(np.int32)
        lanes = flat[pos:pos + 2 * body].view("<i2").astype(np.int32)
        k = np.array([8 * b + i for b in range(body // 8) for i in lane_inputs], dtype=int)
        assert np.array_equal(lanes, 256 * w1[k] + w0[k] + 128)
        pos += 2 * body
        tail = depth - body
        assert np.array_equal(flat[pos:pos + 2 * tail], w[2 * j:2 * j + 2, body:].reshape(-1))
        pos += 2 * tail
    if rows % 2:
        assert np.array_equal(flat[pos:], w[-1])
