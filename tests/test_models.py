"""Model zoo: shapes, layer structure, parameter/MAC counts, custom layers, size budgets."""

from __future__ import annotations

import numpy as np
import pytest

from nanocore.errors import UserError
from trainer import models
from trainer.config import ModelConfig
from trainer.reference import Reference
from trainer.tf import keras

ZOO = ("seed_initial", "seed_final", "cnn", "mobilenet_v1", "shufflenet_v2")


def _dense_layers(m):
    return [layer for layer in m.layers if isinstance(layer, keras.layers.Dense)]


@pytest.mark.parametrize("name", ZOO)
def test_zoo_io_and_logits(name):
    m = models.build(ModelConfig(name=name))
    assert m.input_shape == (None, 28, 28, 1)
    assert m.output_shape == (None, 10)
    last = m.layers[-1]
    assert isinstance(last, keras.layers.Dense) and last.get_config()["activation"] == "linear"
    # No Reshape layer at the input (Flatten or conv straight from the image).
    assert not any(isinstance(layer, keras.layers.Reshape) for layer in m.layers)
    assert name in models.DEFAULT_EPOCHS


def test_registry_is_complete():
    assert set(ZOO) <= set(models.REGISTRY)


def test_seed_initial_structure():
    m = models.build(ModelConfig(name="seed_initial", activation="tanh"))
    dense = _dense_layers(m)
    assert [d.units for d in dense] == [80, 60, 10]
    assert [d.get_config()["activation"] for d in dense] == ["tanh", "tanh", "linear"]
    drops = [layer for layer in m.layers if isinstance(layer, keras.layers.Dropout)]
    assert len(drops) == 1 and drops[0].rate == pytest.approx(0.2)
    # Dropout sits between the last hidden layer and the classifier.
    assert m.layers.index(drops[0]) == m.layers.index(dense[-1]) - 1
    assert m.count_params() == (784 * 80 + 80) + (80 * 60 + 60) + (60 * 10 + 10)


@pytest.mark.parametrize("act", models.SEED_ACTIVATIONS)
def test_seed_activations(act):
    m = models.build(ModelConfig(name="seed_initial", activation=act))
    assert _dense_layers(m)[0].get_config()["activation"] == act
    out = m(np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32))
    assert np.all(np.isfinite(out.numpy()))


def test_seed_final_structure_params_macs():
    m = models.build(ModelConfig(name="seed_final"))
    dense = _dense_layers(m)
    assert [d.units for d in dense] == [50, 10]
    assert dense[0].get_config()["activation"] == "relu"
    assert m.count_params() == 784 * 50 + 50 + 50 * 10 + 10
    assert models.count_macs(m) == 784 * 50 + 50 * 10


def test_seed_variants_from_config():
    m = models.build(ModelConfig(name="seed_final", hidden=(32, 16, 8), dropout=0.0))
    assert [d.units for d in _dense_layers(m)] == [32, 16, 8, 10]
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in m.layers)


@pytest.mark.parametrize("name", ["cnn", "mobilenet_v1", "shufflenet_v2"])
@pytest.mark.parametrize("width", [0.5, 1.3])  # 1.0: the default build, checked below
def test_conv_channels_multiple_of_8(name, width):
    m = models.build(ModelConfig(name=name, width=width))
    convs = [la for la in m.layers if type(la) is keras.layers.Conv2D]
    assert all(conv.filters % 8 == 0 for conv in convs)
    m = models.build(ModelConfig(name=name))
    convs = [la for la in m.layers if type(la) is keras.layers.Conv2D]
    assert convs
    for conv in convs:
        assert conv.filters % 8 == 0, (conv.name, conv.filters)


def test_cnn_budget():
    m = models.build(ModelConfig(name="cnn"))
    assert models.count_macs(m) <= 270_000
    assert m.count_params() * 1.0 <= 60 * 1024  # int8 weights + overhead must fit 64 KiB


def test_bad_configs():
    with pytest.raises(UserError, match="unknown model 'nope'"):
        models.build(ModelConfig(name="nope"))
    with pytest.raises(UserError, match="unknown activation"):
        models.build(ModelConfig(name="seed_final", activation="bogus"))
    with pytest.raises(UserError, match="6 filter counts"):
        models.build(ModelConfig(name="mobilenet_v1", filters=(8, 8)))
    with pytest.raises(UserError, match="width"):
        models.build(ModelConfig(name="cnn", width=0))


def test_channel_split_and_shuffle_match_numpy():
    x = np.arange(1 * 2 * 3 * 8, dtype=np.float32).reshape(1, 2, 3, 8)
    left, right = models.ChannelSplit()(x)
    np.testing.assert_array_equal(left.numpy(), x[..., :4])
    np.testing.assert_array_equal(right.numpy(), x[..., 4:])
    y = models.ChannelShuffle()(x).numpy()
    # Two groups of 4 interleaved: new channel 2*j+g is old channel g*4+j.
    order = [g * 4 + j for j in range(4) for g in range(2)]
    np.testing.assert_array_equal(y, x[..., order])


def test_custom_layers_survive_save_load(tmp_path):
    from trainer.modelio import load_keras

    m = models.build(ModelConfig(name="shufflenet_v2"))
    x = np.random.default_rng(1).random((2, 28, 28, 1), dtype=np.float32)
    m.save(tmp_path / "m.keras")
    back = load_keras(tmp_path / "m.keras")
    np.testing.assert_allclose(back(x).numpy(), m(x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "max_bytes", "max_arena"),
    [("cnn", 64 * 1024, 100 * 1024), ("mobilenet_v1", 300 * 1024, 100 * 1024),
     ("shufflenet_v2", 300 * 1024, 100 * 1024), ("seed_final", 64 * 1024, 100 * 1024)],
)
def test_int8_size_and_arena_budgets(tiny_tflite, name, max_bytes, max_arena):
    tflite = tiny_tflite(name)
    assert len(tflite) <= max_bytes
    assert Reference(tflite).arena_bytes <= max_arena


def test_cnn_default_unchanged_by_the_new_options():
    # The default cnn is the same network whether the new fields are absent or spelled out.
    a = models.build(ModelConfig(name="cnn"))
    b = models.build(ModelConfig(name="cnn", filters=(8, 16), kernels=(5, 3), head="dense"))
    assert a.to_json() == b.to_json()
    assert [type(layer).__name__ for layer in a.layers].count("Conv2D") == 2


@pytest.mark.parametrize("cfg, convs, kernels, pooled, dense_units", [
    (dict(filters=(8, 16, 32)), 3, [5, 3, 3], False, [64, 10]),
    (dict(filters=(8, 16, 32), kernels=(3, 3, 3)), 3, [3, 3, 3], False, [64, 10]),
    (dict(filters=(8, 16, 32), head="pool"), 3, [5, 3, 3], True, [10]),
    (dict(filters=(16, 32), head="pool", hidden=(16,)), 2, [5, 3], True, [16, 10]),
])
def test_cnn_three_convs_kernels_and_pooled_head(cfg, convs, kernels, pooled, dense_units):
    m = models.build(ModelConfig(name="cnn", **cfg))
    conv = [layer for layer in m.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(conv) == convs
    assert [c.kernel_size[0] for c in conv] == kernels
    assert any(isinstance(layer, keras.layers.AveragePooling2D) for layer in m.layers) == pooled
    assert [d.units for d in _dense_layers(m)] == dense_units
    assert m.output_shape == (None, 10)
    if convs == 3:  # 28 -> 24 (valid) -> 12 -> 12 (same) -> 6 -> 6 (same) -> 3
        assert conv[-1].output_shape[1:3] == (6, 6)


def test_cnn_bad_shapes():
    with pytest.raises(UserError, match="2 or 3 filter counts"):
        models.build(ModelConfig(name="cnn", filters=(8,)))
    with pytest.raises(UserError, match="kernels"):
        models.build(ModelConfig(name="cnn", filters=(8, 16), kernels=(5,)))
    with pytest.raises(UserError, match="kernels"):
        models.build(ModelConfig(name="cnn", kernels=(4, 3)))
    with pytest.raises(UserError, match="head must be dense or pool"):
        models.build(ModelConfig(name="cnn", head="gap"))
