"""Ahead-of-time C generator: int8 .tflite -> model_aot.{h,c} calling the kernels in
firmware/lib/backend_aot/kernels.h, bit-exact with the TFLM reference interpreter.

Entry point: `generate(tflite_bytes, out_dir) -> AotResult`. Stages: lower.py (one lowering per
op, the LOWERINGS table; lower_nn.py, lower_tensor.py), plan.py (arena), emit.py (C text),
verify.py (scratch formulas from the kernel headers, TFLM's arena); ir.py is the program they
share. KERNELS_DIR is the C kernels the generated code links against.
"""

from trainer.aot.codegen import AotResult, generate
from trainer.aot.lower import ALIAS_OPS, ELEMENTWISE_OPS, KERNEL_OPS, MOVE_OPS
from trainer.aot.verify import KERNELS_DIR

__all__ = ["KERNELS_DIR", "SUPPORTED_OPS", "AotResult", "generate"]

# Ops the generator lowers (trainer.export checks a model's ops against this list first).
# Elementwise and data-movement ops are accepted when TFLM has an int8 kernel for them;
# generate() still refuses an op whose options it cannot reproduce exactly.
SUPPORTED_OPS = frozenset((*KERNEL_OPS, *ALIAS_OPS, *ELEMENTWISE_OPS, *MOVE_OPS, "DEQUANTIZE"))
