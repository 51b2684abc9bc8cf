"""Whole-model agreement: each zoo model's generated AOT C (host gcc build, ASan/UBSan) against
the TFLM reference interpreter on real MNIST test images. Agreement must be 1.0 (every int8
output vector identical), and the offline-planned arena must not exceed TFLM's."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from trainer.aot import generate
from trainer.aot.graph import load
from trainer.aot.host import RUNNER_C, build_runner, run_runner

ZOO = ("seed_initial", "seed_final", "cnn", "mobilenet_v1", "shufflenet_v2")
IMAGES = 300  # default suite; the slow test runs all 10,000

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def _agreement(tfl: bytes, images: np.ndarray, out_dir: Path) -> tuple[float, object, int]:
    from trainer.reference import Reference, input_lut

    res = generate(tfl, out_dir)
    exe = build_runner(out_dir, RUNNER_C)
    g = load(tfl)
    t_in = g.tensors[g.inputs[0]]
    lut = input_lut(float(t_in.scale[0]), int(t_in.zero_point[0]))
    x = lut[images.reshape(len(images), -1)]
    ref = Reference(tfl)
    want = ref.run(images).reshape(len(images), -1)
    got = run_runner(exe, x, want.shape[1])
    return float(np.mean(np.all(got == want, axis=1))), res, ref.arena_bytes


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_agrees_with_tflm(name: str, tiny_tflite, mnist, tmp_path: Path) -> None:
    tfl = tiny_tflite(name)
    agreement, res, tflm_arena = _agreement(tfl, mnist.x_test[:IMAGES], tmp_path)
    assert agreement == 1.0, f"{name}: agreement {agreement} on {IMAGES} images"
    assert res.arena_bytes <= tflm_arena, f"{name}: arena {res.arena_bytes} > TFLM {tflm_arena}"


def test_per_tensor_dense_agrees_with_tflm(tiny_tflite, mnist, tmp_path: Path) -> None:
    """Per-tensor FULLY_CONNECTED (TFLM takes the input*filter scale product in float32)."""
    tfl = tiny_tflite("seed_final", per_channel_dense=False)
    agreement, _, _ = _agreement(tfl, mnist.x_test[:IMAGES], tmp_path)
    assert agreement == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_agrees_on_full_test_set(name: str, tiny_tflite, mnist, tmp_path: Path) -> None:
    agreement, _, _ = _agreement(tiny_tflite(name), mnist.x_test, tmp_path)
    assert agreement == 1.0, f"{name}: agreement {agreement} on 10,000 images"


@pytest.mark.parametrize("act", ("elu", "softmax", "exponential"))
def test_seed_study_activation(act: str, mnist, tmp_path: Path) -> None:
    """The seed study's hidden activations whose int8 op sequence is special: ELU becomes
    DEQUANTIZE -> float ELU -> QUANTIZE, softmax a hidden SOFTMAX, exponential (like softplus)
    an EXP with no int8 TFLM kernel. relu is covered by the zoo test, sigmoid and tanh by the
    kernel tests. Untrained weights are enough: the point is the op sequence."""
    from nanocore.errors import UserError
    from trainer.config import ModelConfig, QuantConfig
    from trainer.models import build
    from trainer.quantize import to_int8
    from trainer.reference import Reference

    tfl = to_int8(build(ModelConfig(name="seed_final", activation=act)), mnist,
                  QuantConfig(calibration_count=100))
    try:
        agreement, _, _ = _agreement(tfl, mnist.x_test[:200], tmp_path)
    except UserError as e:
        # Refused only when TFLM itself cannot run the model (EXP has no int8 kernel).
        assert "neither the aot nor the tflm backend" in str(e)
        with pytest.raises((RuntimeError, UserError)):
            Reference(tfl).run(mnist.x_test[:1])
        return
    assert agreement == 1.0, f"seed_final/{act}: agreement {agreement}"


def test_generated_code_is_deterministic_and_bannered(tiny_tflite, tmp_path: Path) -> None:
    import hashlib

    tfl = tiny_tflite("seed_final")
    generate(tfl, tmp_path / "a")
    generate(tfl, tmp_path / "b")
    for f in ("model_aot.h", "model_aot.c"):
        a, b = (tmp_path / "a" / f).read_text(), (tmp_path / "b" / f).read_text()
        assert a == b
        assert "do not edit" in a and hashlib.sha256(tfl).hexdigest() in a
    src = (tmp_path / "a" / "model_aot.c").read_text()
    # No dynamic allocation and no floating point in the generated int8 path.
    for banned in ("malloc", "free(", "float", "double"):
        assert banned not in src


def test_unsupported_op_is_refused_with_one_line(tmp_path: Path) -> None:
    from nanocore.errors import UserError
    from trainer.quantize import convert_int8
    from trainer.tf import keras as k
    from trainer.tf import tf

    i = k.Input((6,), batch_size=1)
    x = k.layers.Dense(4)(i)
    x = k.layers.Lambda(lambda t: tf.math.reduce_max(t, axis=-1, keepdims=True))(x)
    model = k.Model(i, x)

    rep = np.random.default_rng(0).uniform(-1, 1, (1, 6)).astype(np.float32).repeat(8, axis=0)
    tflite = convert_int8(model, rep, fixed_batch=False)
    with pytest.raises(UserError) as e:
        generate(tflite, tmp_path)
    msg = str(e.value)
    assert "REDUCE_MAX" in msg and "tflm backend" in msg and "\n" not in msg


def test_conv_pool_fused_so_the_full_map_never_exists(tiny_tflite, mnist, tmp_path: Path) -> None:
    """cnn: each CONV_2D + MAX_POOL_2D pair is one kernel call, so the 24x24x8 conv output
    (4,608 B) is never in the arena, and the outputs stay TFLM's bit for bit."""
    agreement, res, tflm_arena = _agreement(tiny_tflite("cnn"), mnist.x_test[:100], tmp_path)
    assert agreement == 1.0
    assert len(res.fused) == 2 and all(f.startswith("CONV_2D+MAX_POOL_2D") for f in res.fused)
    assert res.arena_bytes < 24 * 24 * 8 <= tflm_arena
    assert "nt_max_pool" not in (tmp_path / "model_aot.c").read_text()


def test_planner_fits_a_budget_by_dropping_scratch(tiny_tflite, mnist, tmp_path: Path) -> None:
    """Below the fast plan's arena the generator plans the kernels without scratch (their plain
    paths), which still gives TFLM's outputs exactly."""
    from trainer.reference import Reference, input_lut

    tfl = tiny_tflite("seed_final")
    fast = generate(tfl, tmp_path / "fast", arena_limit=None)
    small = generate(tfl, tmp_path / "small", arena_limit=fast.arena_bytes - 1)
    assert small.arena_bytes < fast.arena_bytes
    assert "kernels without scratch" in (tmp_path / "small" / "model_aot.h").read_text()
    assert ".scratch = NULL" in (tmp_path / "small" / "model_aot.c").read_text()
    exe = build_runner(tmp_path / "small", RUNNER_C)
    g = load(tfl)
    t_in = g.tensors[g.inputs[0]]
    images = mnist.x_test[:100]
    x = input_lut(float(t_in.scale[0]), int(t_in.zero_point[0]))[images.reshape(100, -1)]
    want = Reference(tfl).run(images).reshape(100, -1)
    assert np.array_equal(run_runner(exe, x, want.shape[1]), want)
