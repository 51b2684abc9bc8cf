"""Ahead-of-time C generator: int8 .tflite -> model_aot.{h,c} calling the kernels in
firmware/lib/backend_aot/kernels.h, bit-exact with the TFLM reference interpreter.

Entry point: `generate(tflite_bytes, out_dir) -> AotResult`.
"""

from pathlib import Path

from trainer.aot.codegen import (
    ALIAS_OPS,
    ELEMENTWISE_OPS,
    KERNEL_OPS,
    MOVE_OPS,
    AotResult,
    generate,
)

__all__ = ["KERNELS_DIR", "SUPPORTED_OPS", "AotResult", "generate"]

# Ops the generator lowers (trainer.export checks a model's ops against this list first).
# Elementwise and data-movement ops are accepted when TFLM has an int8 kernel for them;
# generate() still refuses an op whose options it cannot reproduce exactly.
SUPPORTED_OPS = frozenset((*KERNEL_OPS, *ALIAS_OPS, *ELEMENTWISE_OPS, *MOVE_OPS, "DEQUANTIZE"))

# The C kernels the generated code links against (kernels.h, kernels_c99.c, kernels_dsp.c).
KERNELS_DIR = Path(__file__).resolve().parents[2] / "firmware" / "lib" / "backend_aot"
