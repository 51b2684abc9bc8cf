"""tflite_info and export: inspection against Keras, generated C compiled for Cortex-M4 and host,
array bytes/alignment read back from the ELF, LUT and selftest vectors against the reference."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import types
from pathlib import Path

import numpy as np
import pytest

from nanocore.errors import UserError
from trainer.tflite_info import inspect

ARM_GXX = shutil.which("arm-none-eabi-g++")
HOST_CC = shutil.which("gcc")
HOST_CXX = shutil.which("g++")
needs_arm = pytest.mark.skipif(ARM_GXX is None, reason="arm-none-eabi-g++ not installed")
needs_host_cc = pytest.mark.skipif(HOST_CC is None or HOST_CXX is None, reason="no host gcc/g++")


def _tiny_keras():
    from trainer.tf import keras

    sequential, initializers, layers = keras.Sequential, keras.initializers, keras.layers

    # Non-zero biases: the converter drops all-zero bias tensors, which would hide params.
    bias = initializers.RandomUniform(-0.1, 0.1, seed=1)
    model = sequential([
        layers.Input((28, 28, 1)),
        layers.Conv2D(4, 3, activation="relu", bias_initializer=bias),
        layers.MaxPooling2D(),
        layers.DepthwiseConv2D(3, activation="relu", bias_initializer=bias),
        layers.Conv2D(6, 3, strides=2, activation="relu", bias_initializer=bias),
        layers.Flatten(),
        layers.Dense(12, activation="relu", bias_initializer=bias),
        layers.Dense(10, bias_initializer=bias),
    ])
    return model


def _convert(model, *, int8: bool = True, per_tensor_dense: bool = False) -> bytes:
    from trainer.quantize import convert_int8
    from trainer.tf import tf

    if not int8:
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()
    rep = np.random.default_rng(0).random((16, 28, 28, 1), dtype=np.float32)
    return convert_int8(model, rep, per_channel_dense=not per_tensor_dense, fixed_batch=False)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A small untrained int8 model in three flavours (random weights are enough for export).

    The converted files are cached under build/test-cache/ keyed by this file's model and
    converter code and the TensorFlow version (conversion is the slow part).
    """
    import hashlib
    import inspect as pyinspect

    from trainer.tf import keras as tf_keras
    from trainer.tf import tf

    src = pyinspect.getsource(_tiny_keras) + pyinspect.getsource(_convert) + tf.__version__
    cache = (Path(__file__).resolve().parents[1] / "build" / "test-cache"
             / f"export-tiny-{hashlib.sha256(src.encode()).hexdigest()[:12]}")
    tf_keras.utils.set_random_seed(0)
    model = _tiny_keras()
    flavours = {"pt": {"per_tensor_dense": True}, "pc": {"per_tensor_dense": False},
                "float": {"int8": False}}
    paths = {name: cache / f"{name}.tflite" for name in flavours}
    if not all(p.exists() for p in paths.values()):
        tmp = tmp_path_factory.mktemp("tiny")
        for name, kw in flavours.items():
            (tmp / f"{name}.tflite").write_bytes(_convert(model, **kw))
        cache.mkdir(parents=True, exist_ok=True)
        for name in flavours:
            shutil.copyfile(tmp / f"{name}.tflite", paths[name])
    return types.SimpleNamespace(model=model, **paths)


@pytest.fixture(scope="session")
def images():
    rng = np.random.default_rng(7)
    imgs = np.zeros((5, 28, 28), np.uint8)
    imgs[:, 6:22, 8:20] = rng.integers(0, 256, (5, 16, 12))
    return imgs, np.arange(5, dtype=np.uint8)


@pytest.fixture(scope="session")
def exported(tiny, images, tmp_path_factory):
    from trainer.export import export

    out = tmp_path_factory.mktemp("export")
    return export(tiny.pt, out, backend="tflm", selftest_images=images[0],
                  selftest_labels=images[1], metrics={"int8_accuracy": 0.5})


# ---------------------------------------------------------------- tflite_info


def _keras_macs(model) -> int:
    from trainer.tf import keras

    layers = keras.layers

    total = 0
    for layer in model.layers:
        out = layer.output_shape
        if isinstance(layer, layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += int(np.prod(out[1:])) * kh * kw
        elif isinstance(layer, layers.Conv2D):
            kh, kw = layer.kernel_size
            total += int(np.prod(out[1:])) * kh * kw * layer.input_shape[-1]
        elif isinstance(layer, layers.Dense):
            total += layer.units * layer.input_shape[-1]
    return total


def test_inspect_matches_keras(tiny):
    info = inspect(tiny.pt.read_bytes())
    assert info.op_names == ("CONV_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "RESHAPE",
                             "FULLY_CONNECTED", "FULLY_CONNECTED")
    assert info.unique_ops == ("CONV_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D", "RESHAPE",
                               "FULLY_CONNECTED")
    assert info.params == tiny.model.count_params()
    assert info.macs == _keras_macs(tiny.model)
    assert info.input_shape == (1, 28, 28, 1) and info.output_shape == (1, 10)
    assert info.input_dtype == "int8" and info.output_dtype == "int8"
    assert info.flatbuffer_bytes == tiny.pt.stat().st_size


def test_inspect_quant_params_match_tflm(tiny):
    from tflite_micro.python.tflite_micro import runtime

    data = tiny.pt.read_bytes()
    info = inspect(data)
    interp = runtime.Interpreter.from_bytes(data)
    qi = interp.get_input_details(0)["quantization_parameters"]
    qo = interp.get_output_details(0)["quantization_parameters"]
    assert np.float32(info.input_scale) == np.float32(qi["scales"][0])
    assert info.input_zero_point == int(qi["zero_points"][0])
    assert np.float32(info.output_scale) == np.float32(qo["scales"][0])
    assert info.output_zero_point == int(qo["zero_points"][0])


def test_per_channel_flags(tiny):
    pt = inspect(tiny.pt.read_bytes())
    pc = inspect(tiny.pc.read_bytes())
    assert not pt.per_channel_dense and pc.per_channel_dense
    assert "FULLY_CONNECTED" in pc.per_channel_ops and "FULLY_CONNECTED" not in pt.per_channel_ops
    assert "CONV_2D" in pt.per_channel_ops  # convs stay per-channel either way


@pytest.mark.parametrize("cut", [0, 7, 100, "half"])
def test_inspect_rejects_non_flatbuffers(tiny, cut):
    data = tiny.pt.read_bytes()
    bad = data[: len(data) // 2] if cut == "half" else data[:cut]
    with pytest.raises(UserError) as err:
        inspect(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError):
        inspect(b"this is a text file, not a model" * 10)


def test_inspect_rejects_float_model(tiny):
    with pytest.raises(UserError, match="int8"):
        inspect(tiny.float.read_bytes())
    assert inspect(tiny.float.read_bytes(), require_int8=False).input_dtype == "float32"


# ---------------------------------------------------------------- export


def test_export_writes_all_files(exported, tiny):
    names = {p.name for p in exported.files}
    assert {"model_int8.tflite", "model_data.h", "model_data.cc", "model_meta.h",
            "model_selftest.h", "manifest.json"} <= names
    out = exported.out_dir
    assert (out / "model_int8.tflite").read_bytes() == tiny.pt.read_bytes()
    sha = inspect(tiny.pt.read_bytes()).sha256
    for n in ("model_data.h", "model_data.cc", "model_meta.h", "model_selftest.h"):
        text = (out / n).read_text()
        assert text.startswith("// generated by nano-tflm, do not edit"), n
        assert sha in text.splitlines()[1], n
    man = json.loads((out / "manifest.json").read_text())
    assert man["source"]["sha256"] == sha
    assert man["tflm_exact"] is True
    assert man["metrics"] == {"int8_accuracy": 0.5}
    for name, entry in man["files"].items():
        assert entry["bytes"] == (out / name).stat().st_size


def test_export_is_reproducible(exported, tiny, images, tmp_path):
    from trainer.export import export

    again = export(tiny.pt, tmp_path, backend="tflm", selftest_images=images[0],
                   selftest_labels=images[1], metrics={"int8_accuracy": 0.5})
    for p in exported.files:
        assert (tmp_path / p.name).read_bytes() == p.read_bytes(), p.name
    assert again.manifest == exported.manifest


def _elf_symbol(elf, name):
    sym = elf.get_section_by_name(".symtab").get_symbol_by_name(name)
    assert sym, f"{name} not in symbol table"
    return sym[0]


def _symbol_bytes(elf, sym) -> bytes:
    sec = elf.get_section(sym["st_shndx"])
    start = sym["st_value"] - sec["sh_addr"]
    return sec.data()[start: start + sym["st_size"]]


@needs_arm
def test_model_data_compiles_aligned_and_equal_for_cortex_m4(exported, tiny, tmp_path):
    from elftools.elf.elffile import ELFFile

    out = exported.out_dir
    obj = tmp_path / "model_data.o"
    flags = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os",
             "-std=c++11", "-Wall", "-Wextra", "-Werror"]
    subprocess.run([ARM_GXX, *flags, "-c", str(out / "model_data.cc"), "-o", str(obj)],
                   check=True)
    # In the object file: the array's section must ask for >= 16-byte alignment.
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        sym = _elf_symbol(elf, "g_model_data")
        assert elf.get_section(sym["st_shndx"])["sh_addralign"] >= 16
        assert sym["st_value"] % 16 == 0

    # Linked with a 1-byte odd-sized object placed before it, the array must still land on a
    # 16-byte boundary, and its bytes (read back from the ELF) must be the .tflite file.
    main = tmp_path / "main.cc"
    main.write_text(
        '#include "model_data.h"\n'
        "extern const unsigned char g_pad[];\n"
        "const unsigned char g_pad[3] = {1, 2, 3};\n"
        "int main(void) { return g_model_data[g_model_data_len - 1] + g_pad[0]; }\n"
    )
    elf_path = tmp_path / "tiny.elf"
    subprocess.run([ARM_GXX, *flags, f"-I{out}", str(main), str(obj), "--specs=nosys.specs",
                    "-o", str(elf_path)], check=True)
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        sym = _elf_symbol(elf, "g_model_data")
        assert sym["st_value"] % 16 == 0, hex(sym["st_value"])
        assert sym["st_size"] == tiny.pt.stat().st_size
        assert _symbol_bytes(elf, sym) == tiny.pt.read_bytes()
        length = _symbol_bytes(elf, _elf_symbol(elf, "g_model_data_len"))
        assert int.from_bytes(length, "little") == tiny.pt.stat().st_size


@needs_arm
def test_meta_and_selftest_compile_for_cortex_m4_c_and_cxx(exported, tmp_path):
    out = exported.out_dir
    src = '#include "model_meta.h"\n#include "model_selftest.h"\nint f(void) { return 0; }\n'
    for lang, ext, std in (("c", "c", "-std=c99"), ("c++", "cc", "-std=c++11")):
        f = tmp_path / f"use.{ext}"
        f.write_text(src)
        subprocess.run([ARM_GXX, "-x", lang, std, "-mcpu=cortex-m4", "-mthumb", "-Wall", "-Wextra",
                        "-Werror", f"-I{out}", "-c", str(f), "-o", str(tmp_path / f"use_{ext}.o")],
                       check=True)


_DUMP_C = r"""
#include <stdio.h>
#include "model_meta.h"
#include "model_selftest.h"
int main(void) {
  printf("scale_in %.9g\nzp_in %d\nscale_out %.9g\nzp_out %d\n", (double)MODEL_INPUT_SCALE,
         MODEL_INPUT_ZERO_POINT, (double)MODEL_OUTPUT_SCALE, MODEL_OUTPUT_ZERO_POINT);
  printf("bytes %d\nsha %s\nop_count %d\n", MODEL_BYTES, MODEL_SHA256_PREFIX, MODEL_OP_COUNT);
  printf("lut");
  for (int i = 0; i < 256; ++i) printf(" %d", kModelInputLut[i]);
  printf("\nops");
#define X(name) printf(" %s", #name);
  MODEL_OPS(X)
#undef X
  printf("\nlabels");
  for (int i = 0; i < MODEL_NUM_CLASSES; ++i) printf(" %s", kModelLabels[i]);
  for (int n = 0; n < MODEL_SELFTEST_COUNT; ++n) {
    printf("\nin%d", n);
    for (int i = 0; i < MODEL_SELFTEST_INPUT_BYTES; ++i) printf(" %d", kModelSelftestInput[n][i]);
    printf("\nout%d", n);
    for (int i = 0; i < MODEL_SELFTEST_OUTPUT_BYTES; ++i) printf(" %d", kModelSelftestOutput[n][i]);
  }
  printf("\n");
  return 0;
}
"""


@needs_host_cc
@pytest.mark.parametrize("compiler", ["gcc", "g++"])
def test_meta_values_equal_reference(exported, tiny, images, tmp_path, compiler):
    """Compile the headers on the host, print what they hold, compare with Python's truth."""
    from trainer.reference import Reference, input_lut

    src = tmp_path / ("dump.c" if compiler == "gcc" else "dump.cc")
    src.write_text(_DUMP_C)
    exe = tmp_path / "dump"
    std = "-std=c99" if compiler == "gcc" else "-std=c++11"
    subprocess.run([compiler, std, "-Wall", "-Werror", f"-I{exported.out_dir}", str(src), "-o",
                    str(exe)], check=True)
    lines = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    got = {ln.split(" ", 1)[0]: ln.split(" ", 1)[1] for ln in lines.strip().splitlines()}

    data = tiny.pt.read_bytes()
    info = inspect(data)
    assert np.float32(got["scale_in"]) == np.float32(info.input_scale)
    assert int(got["zp_in"]) == info.input_zero_point
    assert np.float32(got["scale_out"]) == np.float32(info.output_scale)
    assert int(got["zp_out"]) == info.output_zero_point
    assert int(got["bytes"]) == len(data) and got["sha"] == info.sha256[:16]
    ops = got["ops"].split()
    assert int(got["op_count"]) == len(ops) == len(info.unique_ops)
    assert ops == ["AddConv2D", "AddMaxPool2D", "AddDepthwiseConv2D", "AddReshape",
                   "AddFullyConnected"]
    assert got["labels"].split() == [str(d) for d in range(10)]

    lut = np.array(got["lut"].split(), dtype=np.int64)
    want = input_lut(info.input_scale, info.input_zero_point)
    np.testing.assert_array_equal(lut, np.asarray(want, dtype=np.int64))
    # and independently of trainer.reference: q = round(p / 255 / scale) + zero_point, clamped
    p = np.arange(256) / 255.0
    expect = np.clip(np.round(p / info.input_scale) + info.input_zero_point, -128, 127)
    assert np.abs(lut - expect).max() <= 1  # float rounding at .5 ties may differ by one step

    ref = Reference(data)
    imgs, _ = images
    want = np.asarray(ref.run(imgs), dtype=np.int64).reshape(len(imgs), -1)
    for n in range(len(imgs)):
        np.testing.assert_array_equal(np.array(got[f"in{n}"].split(), dtype=np.int64),
                                      imgs[n].ravel())
        np.testing.assert_array_equal(np.array(got[f"out{n}"].split(), dtype=np.int64), want[n])


def test_export_refuses_per_channel_dense_for_tflm(tiny, images, tmp_path):
    from trainer.export import export

    with pytest.raises(UserError, match="--per-tensor-dense") as err:
        export(tiny.pc, tmp_path, backend="tflm", selftest_images=images[0],
               selftest_labels=images[1])
    assert "\n" not in str(err.value)
    assert not (tmp_path / "model_data.cc").exists()


def test_export_refuses_unsupported_op(tiny, monkeypatch):
    import trainer.export as ex

    info = inspect(tiny.pt.read_bytes())
    fake = dataclasses.replace(info, unique_ops=(*info.unique_ops, "CUMSUM"))
    with pytest.raises(UserError, match=r"op CUMSUM is not supported by the tflm backend"):
        ex.check_backend(fake, "tflm")

    # An AOT generator that publishes its op list: an op only TFLM runs is refused for aot with a
    # hint to use tflm; and the reverse.
    aot = types.SimpleNamespace(SUPPORTED_OPS={"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                                               "RESHAPE", "CUMSUM"}, generate=None)
    monkeypatch.setattr(ex, "_aot_module", lambda: aot)
    with pytest.raises(UserError, match=r"op MAX_POOL_2D .* aot backend.*--backend tflm"):
        ex.check_backend(info, "aot")
    only_aot = dataclasses.replace(info, unique_ops=("CONV_2D", "CUMSUM"))
    with pytest.raises(UserError, match=r"op CUMSUM .* tflm backend.*--backend aot"):
        ex.check_backend(only_aot, "all")
    with pytest.raises(UserError, match="unknown backend"):
        ex.check_backend(info, "cmsis")


def test_export_missing_file_is_user_error(tmp_path):
    from trainer.export import export

    with pytest.raises(UserError, match="cannot read"):
        export(tmp_path / "nope.tflite", tmp_path / "out")
    bad = tmp_path / "bad.tflite"
    bad.write_text("not a model")
    with pytest.raises(UserError, match="TFLite"):
        export(bad, tmp_path / "out")


def test_recommended_arena_has_margin():
    from trainer.export import recommended_arena_bytes

    for measured in (1000, 9216, 50_000, 100_000):
        r = recommended_arena_bytes(measured)
        assert r >= measured + 2048 and r >= measured * 1.25 and r % 1024 == 0


def test_export_exists_for_float_model_refused(tiny, tmp_path):
    from trainer.export import export

    with pytest.raises(UserError, match="int8"):
        export(tiny.float, tmp_path)


def test_default_firmware_model_is_consistent():
    """The committed firmware/lib/model files were generated from the committed .tflite."""
    d = Path(__file__).resolve().parents[1] / "firmware" / "lib" / "model"
    if not (d / "manifest.json").exists():
        pytest.skip("firmware/lib/model has no exported model yet (python tools/demo.py "
                    "--update-firmware)")
    man = json.loads((d / "manifest.json").read_text())
    data = (d / "model_int8.tflite").read_bytes()
    info = inspect(data)
    assert man["source"]["sha256"] == info.sha256
    assert not info.per_channel_dense
    for name, entry in man["files"].items():
        import hashlib

        assert hashlib.sha256((d / name).read_bytes()).hexdigest() == entry["sha256"], name
    assert f'"{info.sha256[:16]}"' in (d / "model_meta.h").read_text()


def test_export_cli(tiny, tmp_path):
    from click.testing import CliRunner

    from nanolab.cli import main

    runner = CliRunner()
    res = runner.invoke(main, ["export", str(tiny.pc), "--out", str(tmp_path), "--backend",
                               "tflm"])
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: ") and "--per-tensor-dense" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = runner.invoke(main, ["inspect", str(tiny.pt)])
    assert res.exit_code == 0 and "FULLY_CONNECTED" in res.output and "per-tensor" in res.output


def test_export_all_backends_and_stale_files(tiny, images, tmp_path):
    import trainer.export as ex

    if ex._aot_module() is None:
        pytest.skip("trainer.aot has no generate() in this checkout")
    res = ex.export(tiny.pt, tmp_path, backend="all", selftest_images=images[0],
                    selftest_labels=images[1])
    names = {p.name for p in res.files}
    assert {"model_aot.h", "model_aot.c", "model_data.cc"} <= names
    assert res.manifest["backends"]["generated"] == ["tflm", "aot"]
    # Re-exporting for one backend removes the other backend's files: never two models mixed.
    ex.export(tiny.pt, tmp_path, backend="aot", selftest_images=images[0],
              selftest_labels=images[1])
    assert not (tmp_path / "model_data.cc").exists() and (tmp_path / "model_aot.c").exists()
    # The AOT backend runs per-channel dense weights, so it is not refused there.
    ex.export(tiny.pc, tmp_path / "pc", backend="aot", selftest_images=images[0],
              selftest_labels=images[1])
    man = json.loads((tmp_path / "pc" / "manifest.json").read_text())
    assert man["tflm_exact"] is False


def test_default_selftest_images_need_no_mnist(tiny, tmp_path, monkeypatch):
    """Exporting with the default self-test images reads no dataset: they are committed in the
    package (trainer.selftest_digits), so a PlatformIO build of a custom model needs no MNIST."""
    import trainer.data
    from trainer.export import export

    def no_mnist(*args, **kwargs):
        raise AssertionError("export loaded MNIST")

    for name in ("load_mnist", "load_dir", "read_idx"):
        monkeypatch.setattr(trainer.data, name, no_mnist)
    res = export(tiny.pt, tmp_path, backend="tflm")
    assert res.manifest["selftest"] == {"count": 5, "labels": [7, 2, 1, 0, 4],
                                        "source": "MNIST test images 0..4"}


def test_committed_selftest_digits_are_mnist_test_images_0_to_4(mnist):
    """The committed digits are exactly what export used to load: MNIST test images 0..4."""
    from trainer.selftest_digits import images

    x, y = images()
    assert x.dtype == np.uint8 and x.shape == (5, 28, 28) and y.dtype == np.uint8
    np.testing.assert_array_equal(x, mnist.x_test[:5])
    np.testing.assert_array_equal(y, mnist.y_test[:5])


def test_standin_headers_are_rendered_by_export(tmp_path):
    """The host stand-in's committed headers are what standin.py renders with trainer.export's
    renderers (one set of renderers), and they hold its Python twin's outputs."""
    import importlib.util

    d = Path(__file__).resolve().parents[1] / "firmware" / "ports" / "host" / "standin"
    spec = importlib.util.spec_from_file_location("standin", d / "standin.py")
    standin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standin)
    standin.main(tmp_path)
    for name in ("model_meta.h", "model_selftest.h"):
        assert (tmp_path / name).read_text() == (d / name).read_text(), name
    assert f'"{standin.SHA256_PREFIX}"' in (d / "model_meta.h").read_text()
