"""Ahead-of-time C generator: int8 .tflite -> model_aot.{h,c} calling the kernels in
firmware/lib/backend_aot/kernels.h, bit-exact with the TFLM reference interpreter.

Entry point: `generate(tflite_bytes, out_dir) -> AotResult`.
"""

from pathlib import Path

from trainer.aot.codegen import AotResult, generate

__all__ = ["KERNELS_DIR", "AotResult", "generate"]

# The C kernels the generated code links against (kernels.h, kernels_c99.c, kernels_dsp.c).
KERNELS_DIR = Path(__file__).resolve().parents[2] / "firmware" / "lib" / "backend_aot"
