"""The integer truth: TFLM's own C++ kernels on the host, through the PyPI ``tflite-micro`` wheel.

Pixels are quantized with :func:`input_lut`, the same 256-entry table the exporter writes into
``model_meta.h``, so host and device turn a uint8 pixel into exactly the same int8 input.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tflite_micro.python.tflite_micro import runtime

from nanocore.atomic import write_bytes_atomic
from nanocore.errors import UserError
from nanocore.paths import build_dir

log = logging.getLogger(__name__)

# The wheel's default arena is 10x the model size; tiny-weight models with large activations
# would not fit, so never go below this (the *used* size is measured, not this reservation).
_MIN_ARENA = 2 * 1024 * 1024
_ARENA_RE = re.compile(r"Arena allocation total (\d+) bytes")


def input_lut(scale: float, zero_point: int) -> np.ndarray:
    """uint8 pixel -> int8 model input, int8 (256,).

    x = pixel / 255 in [0,1]; q = round(x / scale) + zero_point, rounding half away from zero
    (x >= 0, so floor(v + 0.5)), clamped to [-128, 127]. Computed in float64; for the usual
    scale 1/255 and zero point -128 this is q = pixel - 128.
    """
    if not scale > 0:
        raise UserError(f"input scale must be > 0, got {scale}")
    x = np.arange(256, dtype=np.float64) / 255.0
    q = np.floor(x / np.float64(np.float32(scale)) + 0.5) + int(zero_point)
    return np.clip(q, -128, 127).astype(np.int8)


@contextlib.contextmanager
def _capture_fd2() -> Iterator[list[str]]:
    """Capture what C++ code writes to file descriptor 2 (stderr) inside the block."""
    out: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


class Reference:
    """TFLM reference interpreter for one int8 model (int8 input (1,28,28,1), int8 output).

    Attributes: input_scale, input_zero_point, output_scale, output_zero_point, lut (int8 (256,)),
    output_size (number of output values, 10 for the zoo).
    """

    def __init__(self, tflite: bytes, arena_size: int | None = None) -> None:
        self.tflite = bytes(tflite)
        self._arena_size = arena_size or max(10 * len(self.tflite), _MIN_ARENA)
        try:
            self._interp = runtime.Interpreter.from_bytes(self.tflite, arena_size=self._arena_size)
        except Exception as e:  # noqa: BLE001  (the wheel raises RuntimeError/ValueError)
            raise UserError(f"TFLM cannot load the model: {str(e).strip() or type(e).__name__}")
        inp = self._interp.get_input_details(0)
        out = self._interp.get_output_details(0)
        if inp["dtype"] is not np.int8 or out["dtype"] is not np.int8:
            raise UserError(
                f"model is not int8 in/out (input {inp['dtype'].__name__}, "
                f"output {out['dtype'].__name__}); quantize it with `trainer quantize`"
            )
        self.input_shape = tuple(int(d) for d in inp["shape"])
        self.output_shape = tuple(int(d) for d in out["shape"])
        if self.input_shape != (1, 28, 28, 1):
            raise UserError(f"model input shape {self.input_shape} is not (1, 28, 28, 1)")
        iq, oq = inp["quantization_parameters"], out["quantization_parameters"]
        self.input_scale = float(iq["scales"][0])
        self.input_zero_point = int(iq["zero_points"][0])
        self.output_scale = float(oq["scales"][0])
        self.output_zero_point = int(oq["zero_points"][0])
        self.output_size = int(np.prod(self.output_shape))
        self.lut = input_lut(self.input_scale, self.input_zero_point)
        self._arena_bytes: int | None = None

    def invoke_int8(self, x: np.ndarray) -> np.ndarray:
        """One inference on an already quantized input int8 (28,28) -> int8 (output_size,)."""
        self._interp.set_input(np.ascontiguousarray(x, dtype=np.int8).reshape(self.input_shape), 0)
        self._interp.invoke()
        return np.array(self._interp.get_output(0), dtype=np.int8).reshape(self.output_size)

    def run(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        """Run uint8 images (N,28,28) (or one (28,28)) through TFLM; returns int8 (N,10)."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise UserError(f"images must be uint8 pixels, got {images.dtype}")
        if images.ndim == 2:
            images = images[None]
        if images.shape[1:] not in ((28, 28), (28, 28, 1)):
            raise UserError(f"images must be (N,28,28), got {images.shape}")
        q = self.lut[images.reshape(len(images), 28, 28)]
        out = np.empty((len(images), self.output_size), dtype=np.int8)
        it = range(len(images))
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc="tflm int8", unit="img", mininterval=0.5, leave=False)
        for i in it:
            out[i] = self.invoke_int8(q[i])
        return out

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """int8 outputs -> float32 logits: (q - output_zero_point) * output_scale."""
        return (q.astype(np.float32) - self.output_zero_point) * np.float32(self.output_scale)

    @property
    def arena_bytes(self) -> int:
        """Arena bytes TFLM allocated for this model (RecordingMicroAllocator total, host build).

        Measured on a fresh interpreter after one invoke. The host is 64-bit, so pointer-sized
        bookkeeping makes this a little larger than on a 32-bit Cortex-M4.
        """
        if self._arena_bytes is None:
            interp = runtime.Interpreter.from_bytes(self.tflite, arena_size=self._arena_size)
            interp.set_input(np.zeros(self.input_shape, np.int8), 0)
            interp.invoke()
            with _capture_fd2() as text:
                interp.print_allocations()
            m = _ARENA_RE.search(text[0])
            if m is None:
                raise RuntimeError(f"no arena total in TFLM's allocation report: {text[0][:200]!r}")
            self._arena_bytes = int(m.group(1))
        return self._arena_bytes


# Outputs of the reference on a whole image set, kept between runs: `make demo` evaluates the
# model on the 10,000 test images and then benches it against the same outputs (about 12-20 s
# of TFLM each time for the default model).
CACHE_DIR = build_dir("reference")


def _cache_key(tflite: bytes, images: np.ndarray) -> str:
    h = hashlib.sha256()
    try:
        version = importlib.metadata.version("tflite-micro")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    for part in (version.encode(), tflite, str(images.shape).encode(), images.tobytes()):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:32]


def run_cached(tflite: bytes, images: np.ndarray, progress: bool = False,
               cache_dir: Path | None = None) -> np.ndarray:
    """Reference(tflite).run(images), read from `cache_dir` (default build/reference/) when the
    same model bytes, images and tflite-micro version ran before; written there otherwise. A
    cache file that does not read back as int8 (N, outputs) is ignored and replaced."""
    images = np.ascontiguousarray(images)  # (Reference.run refuses what is not uint8)
    folder = Path(cache_dir) if cache_dir is not None else CACHE_DIR
    path = folder / f"{_cache_key(bytes(tflite), images)}.npy"
    try:
        out = np.load(path, allow_pickle=False)
        if out.dtype == np.int8 and out.ndim == 2 and len(out) == len(images):
            log.info("TFLM reference outputs from %s", path)
            return out
    except (OSError, ValueError, EOFError):
        pass
    out = Reference(tflite).run(images, progress=progress)
    buf = io.BytesIO()
    np.save(buf, out, allow_pickle=False)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, buf.getvalue())
    except OSError as e:  # a cache that cannot be written costs time, not results
        log.warning("cannot keep the reference outputs in %s: %s", folder, e)
    return out
