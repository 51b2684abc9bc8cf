"""TEST-ONLY stand-in model for the host firmware (see backend_standin.c): its Python twin and
the generator of the stand-in model_meta.h / model_selftest.h in this folder.

Regenerate (committed output): ``python firmware/ports/host/standin/standin.py``.
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


def _rows(values, per_line: int) -> str:
    vals = [str(int(v)) for v in values]
    return ",\n".join("    " + ", ".join(vals[j:j + per_line]) for j in range(0, len(vals), per_line))


def main() -> None:
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    images[0] = 0
    outputs = run(images)
    banner = "// TEST-ONLY stand-in model (firmware/ports/host/standin/standin.py), not a model.\n"
    meta = f"""{banner}#ifndef NANO_TFLM_MODEL_META_H_
#define NANO_TFLM_MODEL_META_H_

#include <stdint.h>

#define MODEL_SHA256_PREFIX "{SHA256_PREFIX}"
#define MODEL_BYTES 0
#define MODEL_INPUT_DIMS 4
#define MODEL_INPUT_SHAPE {{1, 28, 28, 1}}
#define MODEL_INPUT_BYTES 784
#define MODEL_INPUT_SCALE {INPUT_SCALE:.9g}f
#define MODEL_INPUT_ZERO_POINT ({INPUT_ZERO_POINT})
#define MODEL_OUTPUT_DIMS 2
#define MODEL_OUTPUT_SHAPE {{1, 10}}
#define MODEL_OUTPUT_BYTES 10
#define MODEL_NUM_CLASSES 10
#define MODEL_OUTPUT_SCALE 0.25f
#define MODEL_OUTPUT_ZERO_POINT 0

static const int8_t kModelInputLut[256] = {{
{_rows(lut(), 16)}
}};

#endif  // NANO_TFLM_MODEL_META_H_
"""
    rows_in = ",\n".join("  {\n" + _rows(img.reshape(-1), 28) + "\n  }" for img in images)
    rows_out = ",\n".join("  {" + ", ".join(str(int(v)) for v in o) + "}" for o in outputs)
    selftest = f"""{banner}#ifndef NANO_TFLM_MODEL_SELFTEST_H_
#define NANO_TFLM_MODEL_SELFTEST_H_

#include <stdint.h>

#define MODEL_SELFTEST_COUNT {len(images)}
#define MODEL_SELFTEST_INPUT_BYTES 784
#define MODEL_SELFTEST_OUTPUT_BYTES 10

static const uint8_t kModelSelftestInput[{len(images)}][784] = {{
{rows_in}
}};

static const int8_t kModelSelftestOutput[{len(images)}][10] = {{
{rows_out}
}};

#endif  // NANO_TFLM_MODEL_SELFTEST_H_
"""
    (HERE / "model_meta.h").write_text(meta)
    (HERE / "model_selftest.h").write_text(selftest)


if __name__ == "__main__":
    main()
