"""TEST-ONLY stand-in model for the host firmware (see backend_standin.c): its Python twin and
the generator of the stand-in model_meta.h / model_selftest.h in this folder.

Regenerate (committed output): ``python firmware/ports/host/standin/standin.py`` (with the
repository on PYTHONPATH): the headers come from trainer.export's renderers, as a model's do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
SHA256_PREFIX = "57a4d1200000e5e5"  # marks the stand-in; not the hash of any model
INPUT_SCALE = 1.0 / 255.0
INPUT_ZERO_POINT = -128


def lut() -> np.ndarray:
    """uint8 pixel -> int8 input, int8 (256,): the usual MNIST quantization p - 128."""
    return (np.arange(256) - 128).astype(np.int8)


def run(images: np.ndarray) -> np.ndarray:
    """The stand-in 'model' on uint8 images (N, 28, 28) -> int8 scores (N, 10)."""
    x = lut()[np.asarray(images, np.uint8).reshape(len(images), -1)].astype(np.int64)
    i = np.arange(784)
    w = (i * 7) % 11 - 5
    acc = np.zeros((len(images), 10), np.int64)
    for k in range(10):
        acc[:, k] = (x[:, i % 10 == k] * w[i % 10 == k]).sum(axis=1)
    return np.clip(acc >> 8, -128, 127).astype(np.int8)


def model_info():
    """The stand-in described as trainer.tflite_info.ModelInfo, for export's renderers: int8
    (1, 28, 28, 1) in, int8 (1, 10) out, no ops, no flatbuffer."""
    from trainer.tflite_info import ModelInfo, TensorInfo

    def tensor(index: int, name: str, shape: tuple[int, ...], scale: float, zp: int):
        return TensorInfo(index=index, name=name, shape=shape, dtype="int8", scale=(scale,),
                          zero_point=(zp,), quantized_dimension=0, is_constant=False, nbytes=0)

    inp = tensor(0, "input", (1, 28, 28, 1), INPUT_SCALE, INPUT_ZERO_POINT)
    out = tensor(1, "scores", (1, 10), 0.25, 0)
    return ModelInfo(sha256=SHA256_PREFIX + "0" * 48, flatbuffer_bytes=0, schema_version=3,
                     description="TEST-ONLY stand-in", ops=(), op_names=(), unique_ops=(),
                     tensors=(inp, out), input=inp, output=out, params=0, macs=0,
                     num_subgraphs=1, num_inputs=1, num_outputs=1, opcode_names=())


def main(out_dir: Path = HERE) -> None:
    """Write model_meta.h and model_selftest.h (beside this file by default) with
    trainer.export's renderers (the files a real model's export writes), marked TEST-ONLY."""
    from trainer.export import DEFAULT_LABELS, render_model_meta, render_model_selftest

    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    images[0] = 0
    outputs = run(images)
    info = model_info()
    banner = "// TEST-ONLY stand-in model (firmware/ports/host/standin/standin.py), not a model.\n"
    meta = render_model_meta(info, lut(), DEFAULT_LABELS, 0, 0, banner=banner)
    # Labels: the stand-in's own answers (the core's self-test compares output vectors only).
    selftest = render_model_selftest(info.sha256, images, outputs.argmax(axis=1), outputs,
                                     banner=banner)
    (Path(out_dir) / "model_meta.h").write_text(meta)
    (Path(out_dir) / "model_selftest.h").write_text(selftest)


if __name__ == "__main__":
    main()
