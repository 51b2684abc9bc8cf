"""Lower a Graph to kernel calls: one lowering function per op, looked up in LOWERINGS."""

from __future__ import annotations

from collections.abc import Callable

from nanocore.errors import UserError
from trainer.aot.graph import Graph, Op
from trainer.aot.ir import Program, refuse, require_int8, tensor
from trainer.aot.lower_nn import fusable_pool, lower_conv, lower_fc, lower_mean, lower_pool
from trainer.aot.lower_tensor import (
    float_chain,
    lower_add,
    lower_chain,
    lower_concat,
    lower_lut,
    lower_move,
    lower_mul,
    lower_pad,
    lower_softmax,
)

# Ops whose int8 output depends only on the input value: lowered to a 256-entry table.
ELEMENTWISE_OPS = ("LOGISTIC", "TANH", "ELU", "EXP", "RELU", "RELU6", "RELU_N1_TO_1",
                   "LEAKY_RELU", "HARD_SWISH", "QUANTIZE", "ABS", "NEG", "GELU")
# Ops that only move bytes: lowered to strided gathers after probing TFLM.
MOVE_OPS = ("TRANSPOSE", "STRIDED_SLICE", "SLICE", "SPLIT", "SPLIT_V", "GATHER", "PACK",
            "UNPACK", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "BATCH_TO_SPACE_ND")
ALIAS_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
# Ops with a dedicated kernel in kernels.h.
KERNEL_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D",
              "AVERAGE_POOL_2D", "MEAN", "ADD", "MUL", "SOFTMAX", "CONCATENATION", "PAD",
              "PADV2")

# A lowering appends the op's steps (or aliases) to the program and returns the indices of the
# later ops it consumed (a fused pool, a float chain), which lower() then skips.
Lowering = Callable[[Program, Op, bool], tuple[int, ...]]


def _step(fn: Callable[[Program, Op], object]) -> Lowering:
    """A lowering that is one call of `fn(program, op) -> Step`."""
    def lowering(p: Program, op: Op, fuse: bool) -> tuple[int, ...]:
        p.steps.append(fn(p, op))
        return ()
    return lowering


def _dequantize(p: Program, op: Op, fuse: bool) -> tuple[int, ...]:
    chain = float_chain(p.graph, op)
    if chain is None:
        raise refuse(op, "produces a float tensor that does not return to int8 through "
                     "elementwise ops")
    p.steps.append(lower_chain(p, chain))
    return tuple(o.index for o in chain)


def _conv(p: Program, op: Op, fuse: bool) -> tuple[int, ...]:
    pool = fusable_pool(p.graph, op) if fuse else None
    step = lower_conv(p, op, False, pool)
    p.steps.append(step)
    return (pool.index,) if step.fused else ()


def _alias(p: Program, op: Op, fuse: bool) -> tuple[int, ...]:
    g = p.graph
    src, dst = op.inputs[0], op.outputs[0]
    require_int8(op, g, [src, dst])
    if tensor(g, src).is_constant:
        raise refuse(op, "reshapes a constant")
    p.alias[dst] = src
    return ()


LOWERINGS: dict[str, Lowering] = {
    "DEQUANTIZE": _dequantize,
    "FULLY_CONNECTED": _step(lower_fc),
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _step(lambda p, op: lower_conv(p, op, True)),
    "MAX_POOL_2D": _step(lambda p, op: lower_pool(p, op, "max")),
    "AVERAGE_POOL_2D": _step(lambda p, op: lower_pool(p, op, "avg")),
    "MEAN": _step(lower_mean),
    "ADD": _step(lower_add),
    "MUL": _step(lower_mul),
    "SOFTMAX": _step(lower_softmax),
    "CONCATENATION": _step(lower_concat),
    "PAD": _step(lower_pad),
    "PADV2": _step(lower_pad),
    **{name: _alias for name in ALIAS_OPS},
    **{name: _step(lower_lut) for name in ELEMENTWISE_OPS},
    **{name: _step(lower_move) for name in MOVE_OPS},
}


def lower(g: Graph, fuse: bool = True, sparse: bool = True) -> Program:
    """Lower every op to kernel calls (or buffer aliases) through LOWERINGS; with `fuse`,
    CONV_2D + MAX_POOL_2D pairs become one call (fusable_pool); with `sparse`, a fully connected
    layer whose NT_FC_BLOCK8X2 form is smaller than its dense weights takes it (lower_fc).
    Raises UserError naming the first op the AOT backend cannot reproduce exactly."""
    p = Program(g, sparse=sparse)
    for i in g.inputs + g.outputs:
        if tensor(g, i).dtype != "int8":
            raise UserError(f"model {'input' if i in g.inputs else 'output'} "
                            f"'{tensor(g, i).name}' is {tensor(g, i).dtype}; the AOT backend "
                            "needs int8 in and out (quantize with int8 I/O, or use the tflm "
                            "backend)")
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise UserError("the AOT backend supports one input and one output; "
                        "use the tflm backend")
    skip: set[int] = set()
    for op in g.ops:
        if op.index in skip:
            continue
        lowering = LOWERINGS.get(op.name)
        if lowering is None:
            raise refuse(op, "is not implemented")
        skip.update(lowering(p, op, fuse))
    return p
