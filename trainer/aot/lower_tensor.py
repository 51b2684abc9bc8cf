"""Lowerings of the element-wise, table and data-movement ops: ADD, MUL (with broadcasting),
SOFTMAX, CONCATENATION, one-input element-wise ops as 256-entry tables (and float
DEQUANTIZE...QUANTIZE chains), strided moves probed against TFLM, PAD / PADV2."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainer.aot import probe, quant
from trainer.aot.graph import Graph, Op, Tensor
from trainer.aot.ir import (
    Program,
    Step,
    act_range,
    c_struct,
    check_shifts,
    consumers,
    no_tflm_kernel,
    refuse,
    require_int8,
    scale,
    tensor,
    zero_point,
)


def _binary_operands(op: Op, g: Graph) -> tuple[int, int, int] | None:
    """(first, second, in2_stride): same-size operands, or tensor and scalar; None if the op
    needs a general broadcast (see _broadcast_index)."""
    a, b, out = tensor(g, op.inputs[0]), tensor(g, op.inputs[1]), tensor(g, op.outputs[0])
    if a.elements == out.elements and b.elements == out.elements:
        return op.inputs[0], op.inputs[1], 1
    if a.elements == out.elements and b.elements == 1:
        return op.inputs[0], op.inputs[1], 0
    if b.elements == out.elements and a.elements == 1:
        return op.inputs[1], op.inputs[0], 0
    return None


def _broadcast_index(op: Op, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> dict:
    """The (div, mod) read pattern of an input of `shape` broadcast to `out_shape`
    (nt_bcast_index): derived from the input's last non-1 dimension and checked element by
    element against numpy's broadcasting (which is TFLM's). Refuses other patterns."""
    n = int(np.prod(shape)) if shape else 1
    total = int(np.prod(out_shape)) if out_shape else 1
    if len(shape) > len(out_shape) or total >= (1 << 24):
        raise refuse(op, "broadcasts in a way the AOT kernels do not cover")
    full = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    non1 = [d for d, s in enumerate(full) if s != 1]
    div = int(np.prod(out_shape[non1[-1] + 1:])) if non1 else 1
    idx = np.broadcast_to(np.arange(n).reshape(full), out_shape).reshape(-1)
    if not np.array_equal(idx, (np.arange(total) // div) % n):
        raise refuse(op, f"broadcasts {tuple(shape)} to {tuple(out_shape)}, which is not one "
                     "run of repeated or tiled values")
    return {"div": div, "mod": n}


@dataclass(frozen=True)
class _Binary:
    """The two operands of an element-wise MUL or ADD as the kernels take them: a constant or
    per-channel second operand with its stride (``_binary_operands``), or general broadcasting
    through one ``nt_bcast_index`` per input (``ix``)."""

    out: Tensor
    first: int
    second: int
    stride: int
    t1: Tensor
    t2: Tensor
    ix: list[dict] | None


def _binary(op: Op, g: Graph) -> _Binary:
    out = tensor(g, op.outputs[0])
    require_int8(op, g, [op.inputs[0], op.inputs[1], op.outputs[0]])
    ops = _binary_operands(op, g)
    first, second, stride = ops if ops else (op.inputs[0], op.inputs[1], 1)
    t1, t2 = tensor(g, first), tensor(g, second)
    ix = None if ops else [_broadcast_index(op, t.shape, out.shape) for t in (t1, t2)]
    return _Binary(out, first, second, stride, t1, t2, ix)


def _binary_step(op: Op, g: Graph, b: _Binary, kernel: str, fields: dict) -> Step:
    """The in-place Step that calls ``nt_<kernel>`` (or ``nt_<kernel>_broadcast``) with
    ``nt_<kernel>_params`` built from ``fields`` plus the offsets, count and stride."""
    reads = [i for i in (b.first, b.second) if not tensor(g, i).is_constant]

    def emit(ctx) -> str:
        params = c_struct(f"nt_{kernel}_params", {
            "count": b.out.elements, "in1_offset": -zero_point(b.t1),
            "in2_offset": -zero_point(b.t2), "out_offset": zero_point(b.out), **fields,
            "in2_stride": b.stride})
        ins = [ctx.buf(b.first), ctx.buf(b.second)]
        if b.ix:
            idx = [f"&{ctx.static(c_struct('nt_bcast_index', i))}" for i in b.ix]
            return ctx.call(f"nt_{kernel}_broadcast", params, idx + ins, ctx.buf(op.outputs[0]))
        return ctx.call(f"nt_{kernel}", params, ins, ctx.buf(op.outputs[0]))

    return Step(op, reads, [op.outputs[0]], 0, emit, inplace=True)


def lower_mul(p: Program, op: Op) -> Step:
    g = p.graph
    b = _binary(op, g)
    # TFLM mul_common.cc: double(s1) * double(s2) / double(so).
    m, sh = quant.quantize_multiplier(float(b.t1.scale[0]) * float(b.t2.scale[0])
                                      / float(b.out.scale[0]))
    check_shifts(op, [sh])
    lo, hi = act_range(op, b.out)
    return _binary_step(op, g, b, "mul", {"out_multiplier": m, "out_shift": sh,
                                          "act_min": lo, "act_max": hi})


def lower_add(p: Program, op: Op) -> Step:
    g = p.graph
    b = _binary(op, g)
    q = quant.add_params(scale(b.t1), scale(b.t2), scale(b.out))
    if max(q["in1_shift"], q["in2_shift"], q["out_shift"]) > 0:
        # TFLM's int8 ADD only handles multipliers < 1 (it aborts otherwise); happens when the
        # output range is tiny compared with the inputs' (e.g. a dead ReLU in calibration).
        raise refuse(op, "needs a rescale factor >= 1 (output scale too small for its inputs)")
    lo, hi = act_range(op, b.out)
    return _binary_step(op, g, b, "add", {**q, "act_min": lo, "act_max": hi})


def lower_softmax(p: Program, op: Op) -> Step:
    g = p.graph
    x, out = tensor(g, op.inputs[0]), tensor(g, op.outputs[0])
    require_int8(op, g, [op.inputs[0], op.outputs[0]])
    if zero_point(out) != -128 or np.float32(scale(out)) != np.float32(1.0 / 256):
        raise refuse(op, "has an output quantization other than scale 1/256, zero point -128")
    depth = x.shape[-1]
    try:
        mult, shift, diff_min = quant.softmax_params(float(op.options.beta), scale(x))
    except ValueError:
        raise refuse(op, "has a beta * input scale too small") from None
    check_shifts(op, [shift])

    def emit(ctx) -> str:
        params = c_struct("nt_softmax_params", {
            "rows": x.elements // depth, "depth": depth, "input_multiplier": mult,
            "input_left_shift": shift, "diff_min": diff_min})
        return ctx.call("nt_softmax", params, [ctx.buf(op.inputs[0])], ctx.buf(op.outputs[0]))

    return Step(op, [op.inputs[0]], [op.outputs[0]], 0, emit)


def lower_concat(p: Program, op: Op) -> Step:
    g = p.graph
    out = tensor(g, op.outputs[0])
    require_int8(op, g, op.inputs + op.outputs)
    if int(getattr(op.options, "fusedActivationFunction", 0) or 0):
        raise refuse(op, "has a fused activation")
    rank = len(out.shape)
    axis = int(op.options.axis) % rank
    for i in op.inputs:
        t = tensor(g, i)
        if np.float32(scale(t)) != np.float32(scale(out)) or zero_point(t) != zero_point(out):
            raise refuse(op, "concatenates inputs whose quantization differs from the output")
    outer = int(np.prod(out.shape[:axis]))
    sizes = [int(np.prod(tensor(g, i).shape[axis:])) for i in op.inputs]
    sn = p.const("cat_n", "int32_t", sizes)
    reads = [i for i in op.inputs if not tensor(g, i).is_constant]

    def emit(ctx) -> str:
        ptrs = ", ".join(ctx.buf(i) for i in op.inputs)
        return (f"{{ const int8_t *const ins[] = {{{ptrs}}}; "
                f"NT_CHECK(nt_concat(ins, {sn}, {len(op.inputs)}, {outer}, "
                f"{ctx.buf(op.outputs[0])})); }}")

    return Step(op, reads, [op.outputs[0]], 0, emit)


def lower_lut(p: Program, op: Op) -> Step:
    g = p.graph
    acts = [i for i in op.inputs if i >= 0 and not tensor(g, i).is_constant]
    require_int8(op, g, acts + op.outputs)
    if len(acts) != 1 or len(op.outputs) != 1 or \
            tensor(g, acts[0]).elements != tensor(g, op.outputs[0]).elements:
        raise refuse(op, "is not a one-input elementwise op")
    try:
        table = probe.elementwise_table(g, op)
    except RuntimeError:
        raise no_tflm_kernel(op) from None
    tn = p.const("lut", "int8_t", table)
    n = tensor(g, op.outputs[0]).elements

    def emit(ctx) -> str:
        return f"NT_CHECK(nt_lut({tn}, {ctx.buf(acts[0])}, {ctx.buf(op.outputs[0])}, {n}));"

    return Step(op, acts, list(op.outputs), 0, emit, inplace=True)


def lower_move(p: Program, op: Op) -> Step:
    g = p.graph
    acts = [i for i in op.inputs if i >= 0 and not tensor(g, i).is_constant]
    require_int8(op, g, acts + op.outputs)
    try:
        maps = probe.gather_maps(g, op)
    except RuntimeError:
        raise refuse(op, "has no int8 kernel in the TFLM reference") from None
    if maps is None:
        raise refuse(op, "is not a strided copy of its input")
    calls = []
    for out, (oshape, strides, offset) in zip(op.outputs, maps):
        dims = len(oshape)
        if dims > 6:
            raise refuse(op, "has more than 6 dimensions")
        calls.append((out, oshape, strides, offset, dims))

    def emit(ctx) -> str:
        lines = []
        for out, oshape, strides, offset, dims in calls:
            params = c_struct("nt_gather_params", {
                "dims": dims, "out_shape": "{" + ", ".join(map(str, oshape)) + "}",
                "in_stride": "{" + ", ".join(map(str, strides)) + "}", "offset": offset})
            lines.append(ctx.call("nt_gather", params, [ctx.buf(acts[0])], ctx.buf(out)))
        return "\n    ".join(lines)

    return Step(op, acts, list(op.outputs), 0, emit)


def lower_pad(p: Program, op: Op) -> Step:
    """PAD / PADV2 (ZeroPadding2D, and explicit padding converters emit before a convolution):
    a fill with the pad value and a copy, checked against the TFLM reference on random data."""
    g = p.graph
    x, out = tensor(g, op.inputs[0]), tensor(g, op.outputs[0])
    require_int8(op, g, [op.inputs[0], op.outputs[0]])
    pads = tensor(g, op.inputs[1])
    if pads.data is None:
        raise refuse(op, "has non-constant paddings")
    rank = len(x.shape)
    if rank < 1 or rank > 6 or pads.data.shape != (rank, 2) or len(out.shape) != rank:
        raise refuse(op, "has paddings that do not match its input's rank (1 to 6)")
    before = [int(v) for v in pads.data[:, 0]]
    after = [int(v) for v in pads.data[:, 1]]
    if min(before + after) < 0 or any(x.shape[d] + before[d] + after[d] != out.shape[d]
                                      for d in range(rank)):
        raise refuse(op, "has negative paddings or an output shape that does not match them")
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        cv = tensor(g, op.inputs[2])
        if cv.data is None or cv.dtype != "int8":
            raise refuse(op, "has a non-constant or non-int8 pad value")
        value = int(cv.data.reshape(-1)[0])
    else:
        value = zero_point(out)
    try:
        ok = probe.pad_matches(g, op, before, after, value)
    except RuntimeError:
        raise refuse(op, "has no int8 kernel in the TFLM reference") from None
    if not ok:
        raise refuse(op, "changes values (its output quantization differs from its input's)")

    def emit(ctx) -> str:
        params = c_struct("nt_pad_params", {
            "dims": rank, "in_shape": "{" + ", ".join(map(str, x.shape)) + "}",
            "pad_before": "{" + ", ".join(map(str, before)) + "}",
            "out_shape": "{" + ", ".join(map(str, out.shape)) + "}", "value": value})
        return ctx.call("nt_pad", params, [ctx.buf(op.inputs[0])], ctx.buf(op.outputs[0]))

    return Step(op, [op.inputs[0]], [op.outputs[0]], 0, emit)


def float_chain(g: Graph, start: Op) -> list[Op] | None:
    """DEQUANTIZE (int8 -> float) followed by single-input float elementwise ops and a QUANTIZE
    back to int8, each tensor consumed only by the next op: an int8 -> int8 function of one
    value (the converter emits this for activations it has no int8 kernel for, e.g. ELU)."""
    chain = [start]
    n = tensor(g, start.outputs[0]).elements
    while True:
        last = chain[-1]
        out = last.outputs[0]
        if len(last.outputs) != 1 or out in g.outputs or tensor(g, out).elements != n:
            return None
        if last is not start and last.name == "QUANTIZE" and tensor(g, out).dtype == "int8":
            return chain
        users = consumers(g, out)
        if len(users) != 1 or len(chain) > 8:
            return None
        nxt = users[0]
        acts = [i for i in nxt.inputs if i >= 0 and not tensor(g, i).is_constant]
        if acts != [out]:
            return None
        chain.append(nxt)


def lower_chain(p: Program, chain: list[Op]) -> Step:
    g = p.graph
    src, dst = chain[0].inputs[0], chain[-1].outputs[0]
    names = "+".join(o.name for o in chain)
    try:
        table = probe.chain_table(g, chain)
    except RuntimeError:
        raise no_tflm_kernel(chain[1]) from None
    tn = p.const("lut", "int8_t", table)
    n = tensor(g, dst).elements
    first = chain[0]

    def emit(ctx) -> str:
        return (f"/* {names} */ NT_CHECK(nt_lut({tn}, {ctx.buf(src)}, {ctx.buf(dst)}, {n}));")

    return Step(first, [src], [dst], 0, emit, inplace=True)

