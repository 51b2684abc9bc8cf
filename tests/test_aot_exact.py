"""AOT exactness beyond the zoo: the four counterexample models of issue 17
(tests/data/aot_counterexamples/, README there), PAD and unfolded BatchNormalization models,
and a short fixed-seed run of tools/aot_fuzz.py. Every comparison is against the TFLM reference
interpreter on MNIST images, random int8 vectors and the extreme inputs (all -128, all 127),
with the generated C built under ASan/UBSan."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from nanocore.errors import UserError
from trainer.aot import generate
from trainer.aot.__main__ import check

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "aot_counterexamples"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def test_seed142_per_channel_dense_with_one_scale_agrees(mnist, tmp_path: Path) -> None:
    """A 1-output Dense on a 4-D map: per-channel weights with a single scale. TFLM's result
    matches the multiplier from the double product of the scales; with the float32 product,
    random vectors 48 and 269 of seed 1 differ by one (the images all agree)."""
    r = check(DATA / "seed142.tflite", mnist.x_test[:100], n_random=300, seed=1)
    assert r["agreement_by_kind"]["random"]["count"] == 300
    assert r["mismatches"] == 0, r["agreement_by_kind"]


@pytest.mark.parametrize("name, shift", [("seed204", "+37"), ("seed271", "+54")])
def test_shift_beyond_31_bits_is_refused_in_one_line(name: str, shift: str,
                                                     tmp_path: Path) -> None:
    """Requantization shifts of 37 and 54 bits are undefined behaviour in TFLM's integer
    arithmetic (and abort our UBSan build): refused, naming the op and the shift."""
    with pytest.raises(UserError) as e:
        generate((DATA / f"{name}.tflite").read_bytes(), tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "op CONV_2D" in msg and f"shift of {shift} bits" in msg


def test_model_tflm_cannot_prepare_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError) as e:
        generate((DATA / "seed146.tflite").read_bytes(), tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("op FULLY_CONNECTED (operator 7) fails to prepare in TFLM")
    assert "scale_diff / output_scale <= 0.02" in msg
    assert not (tmp_path / "model_aot.c").exists()


def _convert(model, mnist) -> bytes:
    from trainer.config import QuantConfig
    from trainer.quantize import to_int8

    return to_int8(model, mnist, QuantConfig(calibration_count=32))


def _ops(tfl: bytes) -> list[str]:
    from trainer.aot.graph import load

    return [o.name for o in load(tfl).ops]


def _check_exact(tfl: bytes, mnist, tmp_path: Path) -> dict:
    path = tmp_path / "m.tflite"
    path.write_bytes(tfl)
    r = check(path, mnist.x_test[:100], n_random=200)
    assert r["mismatches"] == 0, r["agreement_by_kind"]
    return r


def test_zero_padding_and_explicit_pad_agree(mnist, tmp_path: Path) -> None:
    """ZeroPadding2D (PAD, pad value = output zero point) and tf.pad with a constant (PADV2),
    asymmetric paddings, before valid convolutions."""
    from trainer.tf import keras, tf

    keras.utils.set_random_seed(3)
    inp = keras.Input((28, 28, 1))
    x = keras.layers.ZeroPadding2D(((1, 2), (0, 3)))(inp)
    x = keras.layers.Conv2D(5, 3, activation="relu")(x)
    x = keras.layers.Lambda(lambda t: tf.pad(t, [[0, 0], [2, 0], [1, 1], [0, 0]],
                                             constant_values=0.25))(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2)(x)
    x = keras.layers.Flatten()(x)
    tfl = _convert(keras.Model(inp, keras.layers.Dense(10)(x)), mnist)
    ops = _ops(tfl)
    assert "PAD" in ops and "PADV2" in ops, ops
    _check_exact(tfl, mnist, tmp_path)


def test_unfolded_batch_norm_and_broadcast_mul_agree(mnist, tmp_path: Path) -> None:
    """A BatchNormalization after a ReLU (the converter cannot fold it: MUL and ADD by
    per-channel constant vectors) and a Multiply of a 7-channel map by a 1-channel map."""
    from trainer.tf import keras

    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(7, 3, strides=2, activation="relu")(inp)
    bn = keras.layers.BatchNormalization()
    x = bn(x)
    bn.set_weights([rng.uniform(0.3, 2, 7), rng.normal(0, 0.5, 7), rng.normal(0, 0.5, 7),
                    rng.uniform(0.2, 2, 7)])
    gate = keras.layers.Conv2D(1, 1, activation="sigmoid")(x)
    x = keras.layers.Multiply()([x, gate])
    x = keras.layers.Flatten()(x)
    tfl = _convert(keras.Model(inp, keras.layers.Dense(10)(x)), mnist)
    ops = _ops(tfl)
    assert ops.count("MUL") >= 2 and "ADD" in ops, ops
    r = _check_exact(tfl, mnist, tmp_path)
    assert "MUL" in r["ops"] and "ADD" in r["ops"]


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("aot_fuzz", ROOT / "tools" / "aot_fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("aot_fuzz", mod)  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


def test_fuzz_short_fixed_seed(tmp_path: Path) -> None:
    """tools/aot_fuzz.py on a handful of models (seed 7): every accepted model agrees with
    TFLM under ASan/UBSan; the summary counts add up."""
    fuzz = _fuzz_module()
    s = fuzz.run(3, 7, "c99", n_images=10, n_random=30, keep=tmp_path, isolate=False)
    assert s.models == 3 and s.converted >= 2
    assert s.accepted + sum(s.refused_by_op.values()) == s.converted
    assert s.accepted >= 2, s
    assert (s.mismatches, s.sanitizer_errors, s.errors) == (0, 0, 0), s.failures
    assert "mismatches 0, sanitizer errors 0" in fuzz.report(s)


def test_fuzz_keeps_a_failing_model_with_a_reproduction(tmp_path: Path) -> None:
    fuzz = _fuzz_module()
    s = fuzz.Summary(5, "dsp")
    o = fuzz.Outcome(17, "conv", "mismatch", "1 of 10 output vectors differ from TFLM")
    fuzz.add(s, o, b"TFL3-bytes", tmp_path)
    assert s.mismatches == 1 and (tmp_path / "s5-m17.tflite").read_bytes() == b"TFL3-bytes"
    assert f"python tools/aot_fuzz.py --tflite {tmp_path / 's5-m17.tflite'} --variant dsp" \
        in s.failures[0]
    assert fuzz.refused_op("op PAD (operator 3) has non-constant paddings: ...") == "PAD"
    assert fuzz.refused_op("op GELU has no kernel in TFLM (...): ...") == \
        "GELU (TFLM cannot prepare)"
