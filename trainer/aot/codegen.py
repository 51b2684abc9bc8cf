"""Lower a Graph to kernel calls, plan the arena, and write model_aot.{h,c}."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanocore.errors import UserError
from trainer.aot import probe, quant
from trainer.aot.graph import Graph, Op, Tensor

log = logging.getLogger(__name__)

kAlign = 16  # arena offsets: 16 bytes, like TFLM's arena (and enough for word/SIMD loads)

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


def refuse(op: Op, why: str) -> UserError:
    """The one-line error for an op the AOT backend cannot reproduce exactly."""
    return UserError(f"op {op.name} (operator {op.index}) {why}: the AOT backend cannot run it "
                     f"bit-exactly; export with the tflm backend (trainer export --backend tflm)")


@dataclass
class Step:
    """One kernel call. `reads`/`writes` are activation tensor indices; `emit(ctx)` returns the
    C statement (with `ctx.buf(t)` for buffers and `ctx.scratch` for its scratch area)."""

    op: Op
    reads: list[int]
    writes: list[int]
    scratch: int
    emit: object
    macs: int = 0
    inplace: bool = False  # the kernel may write its output over a same-size input
    fused: str = ""  # e.g. "CONV_2D+MAX_POOL_2D (operators 0, 1)" when ops were fused


@dataclass
class Const:
    """A constant array in flash."""

    name: str
    ctype: str
    values: np.ndarray
    align: int = 4


@dataclass
class Program:
    """The lowered model: steps, constants, buffer aliases and the arena plan."""

    graph: Graph
    steps: list[Step] = field(default_factory=list)
    consts: list[Const] = field(default_factory=list)
    alias: dict[int, int] = field(default_factory=dict)
    offsets: dict[object, int] = field(default_factory=dict)
    arena_bytes: int = 0
    plan_strategy: str = ""
    no_scratch: bool = False  # kernels run without scratch (their plain paths) to fit a budget
    sparse: bool = True  # fully connected layers may take NT_FC_BLOCK8X2 when it is smaller
    includes: set[str] = field(default_factory=set)  # extra kernel headers the C file needs

    def const(self, stem: str, ctype: str, values, align: int = 4) -> str:
        name = f"k_{stem}_{len(self.consts)}"
        self.consts.append(Const(name, ctype, np.asarray(values).reshape(-1), align))
        return name

    def root(self, t: int) -> int:
        while t in self.alias:
            t = self.alias[t]
        return t


def _t(g: Graph, i: int) -> Tensor:
    return g.tensors[i]


def _zp(t: Tensor) -> int:
    return int(t.zero_point[0]) if len(t.zero_point) else 0


def _scale(t: Tensor) -> float:
    return float(t.scale[0]) if len(t.scale) else 0.0


def _require_int8(op: Op, g: Graph, tensors: list[int]) -> None:
    for i in tensors:
        if i >= 0 and _t(g, i).dtype != "int8":
            raise refuse(op, f"has a {_t(g, i).dtype} tensor '{_t(g, i).name}' (int8 only)")
        if i >= 0 and len(_t(g, i).scale) > 1 and not _t(g, i).is_constant:
            raise refuse(op, "has a per-channel quantized activation")


def _act(op: Op, out: Tensor) -> tuple[int, int]:
    act = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
    try:
        return quant.activation_range(act, _scale(out), _zp(out))
    except ValueError:
        raise refuse(op, f"has fused activation {act}") from None


def _padding(stride: int, dil: int, in_size: int, k: int, out_size: int) -> int:
    # TFLM ComputePaddingHeightWidth: the smaller half goes before (offset goes after).
    eff = (k - 1) * dil + 1
    total = max(0, (out_size - 1) * stride + eff - in_size)
    return total // 2


def _c_int(v: int) -> str:
    return str(int(v)) if v != -(1 << 31) else "INT32_MIN"


def _struct(ctype: str, fields: dict[str, object]) -> str:
    body = ", ".join(f".{k} = {v}" for k, v in fields.items())
    return f"{ctype}){{{body}}}"


def _fold_bias(op: Op, g: Graph, bias_idx: int, w: np.ndarray, in_zp: int, n: int) -> np.ndarray:
    """bias - in_zp * sum(w over each output channel) (see kernels.h); w is (n, k)."""
    bias = np.zeros(n, dtype=np.int64)
    if bias_idx >= 0:
        bt = _t(g, bias_idx)
        if bt.dtype != "int32" or bt.data is None:
            raise refuse(op, f"has a {bt.dtype} bias (int32 constant only)")
        bias = bt.data.reshape(-1).astype(np.int64)
    folded = bias - in_zp * w.astype(np.int64).sum(axis=1)
    if np.any(np.abs(folded) >= (1 << 31)):
        raise refuse(op, "has a bias that overflows int32 after folding the input zero point")
    _check_accumulator(op, w, bias, folded)
    return folded


def _check_shifts(op: Op, shifts) -> None:
    """Refuse requantization shifts outside what TFLM and the kernels compute without undefined
    behaviour (a model whose output scale is tiny next to its input * weight scales)."""
    bad = [int(s) for s in np.asarray(shifts).reshape(-1) if not quant.shift_ok(int(s))]
    if bad:
        raise refuse(op, f"needs a requantization shift of {max(bad, key=abs):+d} bits "
                     f"(only {quant.kMinShift}..{quant.kMaxShift} are defined in TFLM's "
                     "integer arithmetic)")


def _check_accumulator(op: Op, w: np.ndarray, bias: np.ndarray, folded: np.ndarray) -> None:
    """Refuse when an int32 accumulator could overflow for some input (signed overflow is
    undefined in C; TFLM's and our partial sums would differ). w is (n, taps); ours starts at
    the folded bias and adds raw x * w (|x| <= 128, padding taps add in_zp * w), TFLM sums
    (x - in_zp) * w (|x - in_zp| <= 255) and adds the bias last."""
    absw = np.abs(w.astype(np.int64)).sum(axis=1)
    ours = np.abs(folded.astype(np.int64)) + 128 * absw
    tflm = np.abs(bias.astype(np.int64)) + 255 * absw
    if np.any(ours >= (1 << 31)) or np.any(tflm >= (1 << 31)):
        raise refuse(op, "has weights and bias large enough to overflow the int32 accumulator")


def _weights(op: Op, g: Graph, i: int) -> Tensor:
    w = _t(g, i)
    if w.data is None or w.dtype != "int8":
        raise refuse(op, "has non-constant or non-int8 weights")
    if np.any(w.zero_point != 0):
        raise refuse(op, "has asymmetric weights")
    return w


def fc_pairs8(w: np.ndarray) -> np.ndarray:
    """(rows, depth) int8 weights in NT_LAYOUT_FC_PAIRS8 order (kernels.h), as a flat array:
    row pairs, per block of 8 inputs row 2j's bytes then row 2j + 1's, then the depth % 8
    remaining inputs of each row; an odd last row as is. depth must be even."""
    rows, depth = w.shape
    body = depth // 8 * 8
    parts = []
    for j in range(rows // 2):
        pair = w[2 * j:2 * j + 2]
        parts.append(pair[:, :body].reshape(2, -1, 8).transpose(1, 0, 2).reshape(-1))
        parts.append(pair[:, body:].reshape(-1))
    if rows % 2:
        parts.append(w[-1])
    return np.concatenate(parts) if parts else w.reshape(-1)


def fc_block8x2(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(rows, depth) int8 weights in kernels_sparse.h's NT_FC_BLOCK8X2 format: (weights int8,
    block_index uint8, block_count uint16), or None when the shape does not allow it (odd rows
    or depth, depth / 8 > 256). Stores the 2 x 8 blocks of each row pair that hold a non-zero
    weight, then the pair's depth % 8 remaining inputs densely."""
    rows, depth = w.shape
    if rows % 2 or depth % 2 or rows == 0 or depth // 8 > 256:
        return None
    body = depth // 8 * 8
    # (pairs, blocks, 2, 8): pair j, block b, row 2j + r, input 8b + i
    blocks = w[:, :body].reshape(rows // 2, 2, body // 8, 8).transpose(0, 2, 1, 3)
    keep = np.any(blocks != 0, axis=(2, 3))  # (pairs, blocks)
    parts, index = [], []
    for j in range(rows // 2):
        b = np.flatnonzero(keep[j])
        parts.append(blocks[j, b].reshape(-1))
        parts.append(w[2 * j:2 * j + 2, body:].reshape(-1))
        index.append(b)
    return (np.concatenate(parts).astype(np.int8), np.concatenate(index).astype(np.uint8),
            keep.sum(axis=1).astype(np.uint16))


def fc_block8x2_bytes(sparse: tuple[np.ndarray, np.ndarray, np.ndarray]) -> int:
    """Flash bytes of the three NT_FC_BLOCK8X2 arrays."""
    return sum(a.size * a.itemsize for a in sparse)


def lower_fc(p: Program, op: Op) -> Step:
    g = p.graph
    x, wt, out = _t(g, op.inputs[0]), _weights(op, g, op.inputs[1]), _t(g, op.outputs[0])
    _require_int8(op, g, [op.inputs[0], op.outputs[0]])
    n_out, k = wt.shape
    if x.elements % k:
        raise refuse(op, "has an input size that is not a multiple of the weights' depth")
    bias_idx = op.inputs[2] if len(op.inputs) > 2 else -1
    w = wt.data.reshape(n_out, k)
    in_zp = _zp(x)
    folded = _fold_bias(op, g, bias_idx, w, in_zp, n_out)
    per_channel = len(wt.scale) > 1
    if per_channel:
        mult, shift = quant.conv_multipliers(_scale(x), wt.scale, _scale(out), n_out)
    else:
        m, s = quant.fc_multiplier_per_tensor(_scale(x), float(wt.scale[0]), _scale(out))
        mult, shift = [m], [s]
    _check_shifts(op, shift)
    lo, hi = _act(op, out)
    batches = x.elements // k
    sparse = fc_block8x2(w) if p.sparse else None
    if sparse is not None and fc_block8x2_bytes(sparse) < w.size:
        return _lower_fc_sparse(p, op, sparse, folded, mult, shift, per_channel, lo, hi, batches)
    # Even depth: the rows in pairs, in the order the DSP loop reads them (same bytes).
    layout = "NT_LAYOUT_FC_PAIRS8" if k % 2 == 0 else "NT_LAYOUT_TFLITE"
    wn = p.const("fc_w", "int8_t", fc_pairs8(w) if k % 2 == 0 else w, 16)
    bn = p.const("fc_b", "int32_t", folded)
    mn = p.const("fc_m", "int32_t", mult)
    sn = p.const("fc_s", "int32_t", shift)

    def emit(ctx) -> str:
        params = _struct("nt_fc_params", {
            "batches": batches, "in_features": k, "out_features": n_out, "in_zp": in_zp,
            "out_zp": _zp(out), "act_min": lo, "act_max": hi, "per_channel": int(per_channel),
            "weight_layout": layout, "weights": wn, "bias_folded": bn,
            "multiplier": mn, "shift": sn, "scratch": ctx.scratch})
        # With its scratch planned, no run-time dispatch (kernels.h: nt_fully_connected_fast).
        fast = not ctx.p.no_scratch and layout == "NT_LAYOUT_FC_PAIRS8"
        fn = "nt_fully_connected_fast" if fast else "nt_fully_connected"
        return ctx.call(fn, params, [ctx.buf(op.inputs[0])], ctx.buf(op.outputs[0]))

    return Step(op, [op.inputs[0]], [op.outputs[0]], int(n_out and k * 2), emit,
                macs=batches * k * n_out)


def _lower_fc_sparse(p: Program, op: Op, sparse, folded, mult, shift, per_channel: bool,
                     lo: int, hi: int, batches: int) -> Step:
    """FULLY_CONNECTED as nt_fully_connected_sparse (kernels_sparse.h): only the non-zero 2 x 8
    blocks are stored and multiplied. Bit-exact: the skipped products are all zero."""
    g = p.graph
    n_out, k = _t(g, op.inputs[1]).shape
    wv, iv, cv = sparse
    wn = p.const("fcs_w", "int8_t", wv, 16)
    idn = p.const("fcs_i", "uint8_t", iv, 1)
    cn = p.const("fcs_n", "uint16_t", cv, 2)
    bn = p.const("fc_b", "int32_t", folded)
    mn = p.const("fc_m", "int32_t", mult)
    sn = p.const("fc_s", "int32_t", shift)
    p.includes.add("kernels_sparse.h")
    out = _t(g, op.outputs[0])

    def emit(ctx) -> str:
        params = _struct("nt_fc_sparse_params", {
            "batches": batches, "in_features": k, "out_features": n_out, "out_zp": _zp(out),
            "act_min": lo, "act_max": hi, "per_channel": int(per_channel), "weights": wn,
            "block_index": idn, "block_count": cn, "bias_folded": bn, "multiplier": mn,
            "shift": sn, "scratch": ctx.scratch})
        return ctx.call("nt_fully_connected_sparse", params, [ctx.buf(op.inputs[0])],
                        ctx.buf(op.outputs[0]))

    return Step(op, [op.inputs[0]], [op.outputs[0]], k * 2, emit,
                macs=batches * k * n_out)


def fusable_pool(g: Graph, op: Op) -> Op | None:
    """The MAX_POOL_2D that can be computed inside CONV_2D `op`, or None. Fused when the pool is
    the conv output's only consumer, its windows tile the conv output without overlap or padding
    (stride = filter, VALID or SAME without padding), and the two clamps compose into one. The
    kernel then takes the max over each window of the requantized conv outputs, so the
    full-resolution map never exists (bit-exact: the same max of the same values)."""
    t = op.outputs[0]
    users = _consumers(g, t)
    if len(users) != 1 or users[0].name != "MAX_POOL_2D" or t in g.outputs:
        return None
    pool = users[0]
    o = pool.options
    x, out = _t(g, t), _t(g, pool.outputs[0])
    if len(x.shape) != 4 or len(out.shape) != 4 or x.dtype != "int8" or out.dtype != "int8":
        return None
    fh, fw, sh, sw = int(o.filterHeight), int(o.filterWidth), int(o.strideH), int(o.strideW)
    _, ih, iw, _ = x.shape
    _, oh, ow, _ = out.shape
    if fh != sh or fw != sw or fh < 1 or fw < 1 or oh != ih // fh or ow != iw // fw:
        return None
    if _padding(sh, 1, ih, fh, oh) or _padding(sw, 1, iw, fw, ow):
        return None
    if _zp(x) != _zp(out) or np.float32(_scale(x)) != np.float32(_scale(out)):
        return None
    return pool


def _clamp_meet(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int] | None:
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if lo <= hi else None


def lower_conv(p: Program, op: Op, depthwise: bool, pool: Op | None = None) -> Step:
    g = p.graph
    x, wt, out = _t(g, op.inputs[0]), _weights(op, g, op.inputs[1]), _t(g, op.outputs[0])
    _require_int8(op, g, [op.inputs[0], op.outputs[0]])
    o = op.options
    n, ih, iw, ic = x.shape
    _, oh, ow, oc = out.shape
    if depthwise:
        _, kh, kw, wc = wt.shape
        if wc != oc or oc % ic:
            raise refuse(op, "has inconsistent depthwise shapes")
        dm = oc // ic
        w2 = wt.data.reshape(kh * kw, oc).T  # (oc, taps) for folding
    else:
        wo, kh, kw, wi = wt.shape
        if wi != ic:
            raise refuse(op, "is a grouped convolution")
        dm = 1
        w2 = wt.data.reshape(wo, kh * kw * wi)
    sh, sw = int(o.strideH), int(o.strideW)
    dh, dw = int(o.dilationHFactor or 1), int(o.dilationWFactor or 1)
    pad_t = _padding(sh, dh, ih, kh, oh)
    pad_l = _padding(sw, dw, iw, kw, ow)
    if int(o.padding) == 1:  # VALID
        pad_t = pad_l = 0
    in_zp = _zp(x)
    bias_idx = op.inputs[2] if len(op.inputs) > 2 else -1
    folded = _fold_bias(op, g, bias_idx, w2, in_zp, oc)
    mult, shift = quant.conv_multipliers(_scale(x), wt.scale, _scale(out), oc)
    _check_shifts(op, shift)
    lo, hi = _act(op, out)
    pool_h = pool_w = 0
    dst = op.outputs[0]
    if pool is not None:
        meet = _clamp_meet((lo, hi), _act(pool, _t(g, pool.outputs[0])))
        if meet is not None:
            # max(clamp(v)) over a window, then the pool's clamp = max over the window of v
            # clamped to the intersection (clamps are monotone and commute with max).
            lo, hi = meet
            pool_h, pool_w = int(pool.options.filterHeight), int(pool.options.filterWidth)
            dst = pool.outputs[0]
    stem = "dw" if depthwise else "conv"
    wn = p.const(f"{stem}_w", "int8_t", wt.data, 16)
    bn = p.const(f"{stem}_b", "int32_t", folded)
    mn = p.const(f"{stem}_m", "int32_t", mult)
    sn = p.const(f"{stem}_s", "int32_t", shift)
    # kernels.h nt_conv2d_fast: the DSP fast path's preconditions, checked here once.
    taps = kh * kw * ic
    max_off = ((kh - 1) * dh * iw + (kw - 1) * dw) * ic + ic - 1
    fast = (not depthwise and 4 <= taps <= 256 and max_off < 65536 and oc <= 128
            and all(m == 0 or m >= (1 << 30) for m in mult)
            and (not pool_h or all(sh <= 0 for sh in shift)))
    # The dsp depthwise kernel needs no scratch; conv widens two im2col columns.
    scratch = 0 if depthwise else kh * kw * ic * 4
    if pool_h:
        scratch += oc * 2 * 4  # NT_CONV_POOL_SCRATCH_BYTES: running max of two pooled pixels
    if not depthwise and ic == 1 and kw == 5:
        scratch += oc * kh * 3 * 4  # NT_CONV_C1_SCRATCH_BYTES: the widened weights

    def emit(ctx) -> str:
        params = _struct("nt_conv_params", {
            "batches": n, "in_h": ih, "in_w": iw, "in_c": ic, "out_h": oh, "out_w": ow,
            "out_c": oc, "k_h": kh, "k_w": kw, "stride_h": sh, "stride_w": sw, "dil_h": dh,
            "dil_w": dw, "pad_top": pad_t, "pad_left": pad_l, "depth_multiplier": dm,
            "in_zp": in_zp, "out_zp": _zp(out), "act_min": lo, "act_max": hi,
            "per_channel": 1, "weight_layout": "NT_LAYOUT_TFLITE", "weights": wn,
            "bias_folded": bn, "multiplier": mn, "shift": sn, "scratch": ctx.scratch,
            **({"pool_h": pool_h, "pool_w": pool_w} if pool_h else {})})
        fn = "nt_depthwise_conv2d" if depthwise else "nt_conv2d"
        if fast and not ctx.p.no_scratch:
            fn = "nt_conv2d_fast"
        return ctx.call(fn, params, [ctx.buf(op.inputs[0])], ctx.buf(dst))

    macs = n * oh * ow * oc * kh * kw * (1 if depthwise else ic)  # the model's, fused or not
    fused = (f"{op.name}+MAX_POOL_2D (operators {op.index}, {pool.index})" if pool_h else "")
    return Step(op, [op.inputs[0]], [dst], scratch, emit, macs=macs, fused=fused)


def lower_pool(p: Program, op: Op, kind: str) -> Step:
    g = p.graph
    x, out = _t(g, op.inputs[0]), _t(g, op.outputs[0])
    _require_int8(op, g, [op.inputs[0], op.outputs[0]])
    o = op.options
    n, ih, iw, c = x.shape
    _, oh, ow, _ = out.shape
    fh, fw, sh, sw = int(o.filterHeight), int(o.filterWidth), int(o.strideH), int(o.strideW)
    pad_t, pad_l = _padding(sh, 1, ih, fh, oh), _padding(sw, 1, iw, fw, ow)
    if int(o.padding) == 1:
        pad_t = pad_l = 0
    lo, hi = _act(op, out)

    def emit(ctx) -> str:
        params = _struct("nt_pool_params", {
            "batches": n, "in_h": ih, "in_w": iw, "channels": c, "out_h": oh, "out_w": ow,
            "filter_h": fh, "filter_w": fw, "stride_h": sh, "stride_w": sw, "pad_top": pad_t,
            "pad_left": pad_l, "act_min": lo, "act_max": hi})
        return ctx.call(f"nt_{kind}_pool", params, [ctx.buf(op.inputs[0])],
                        ctx.buf(op.outputs[0]))

    return Step(op, [op.inputs[0]], [op.outputs[0]], 0, emit)


def lower_mean(p: Program, op: Op) -> Step:
    g = p.graph
    x, ax = _t(g, op.inputs[0]), _t(g, op.inputs[1])
    _require_int8(op, g, [op.inputs[0], op.outputs[0]])
    if ax.data is None:
        raise refuse(op, "has a non-constant axis")
    rank = len(x.shape)
    axes = sorted({int(a) % rank for a in ax.data.reshape(-1)})
    if axes != list(range(axes[0], axes[-1] + 1)) or axes[-1] == rank - 1:
        raise refuse(op, "reduces axes that are not contiguous or include the last axis")
    outer = int(np.prod(x.shape[: axes[0]]))
    red = int(np.prod([x.shape[a] for a in axes]))
    inner = int(np.prod(x.shape[axes[-1] + 1:]))
    try:
        base, th = probe.mean_thresholds(g, op, axes)
    except RuntimeError:
        raise refuse(op, "has no int8 kernel in the TFLM reference") from None
    except ValueError:
        raise refuse(op, "has an output that is not a monotone function of the sum") from None
    tn = p.const("mean_t", "int32_t", th if len(th) else np.zeros(1, np.int64))

    def emit(ctx) -> str:
        params = _struct("nt_mean_params", {
            "outer": outer, "reduce": red, "inner": inner, "out_base": base,
            "n_thresholds": len(th), "thresholds": tn})
        return ctx.call("nt_mean", params, [ctx.buf(op.inputs[0])], ctx.buf(op.outputs[0]))

    return Step(op, [op.inputs[0]], [op.outputs[0]], 0, emit)


def _binary_operands(op: Op, g: Graph) -> tuple[int, int, int] | None:
    """(first, second, in2_stride): same-size operands, or tensor and scalar; None if the op
    needs a general broadcast (see _broadcast_index)."""
    a, b, out = _t(g, op.inputs[0]), _t(g, op.inputs[1]), _t(g, op.outputs[0])
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


def lower_mul(p: Program, op: Op) -> Step:
    g = p.graph
    out = _t(g, op.outputs[0])
    _require_int8(op, g, [op.inputs[0], op.inputs[1], op.outputs[0]])
    ops = _binary_operands(op, g)
    first, second, stride = ops if ops else (op.inputs[0], op.inputs[1], 1)
    t1, t2 = _t(g, first), _t(g, second)
    ix = None if ops else [_broadcast_index(op, t.shape, out.shape) for t in (t1, t2)]
    # TFLM mul_common.cc: double(s1) * double(s2) / double(so).
    m, sh = quant.quantize_multiplier(float(t1.scale[0]) * float(t2.scale[0])
                                      / float(out.scale[0]))
    _check_shifts(op, [sh])
    lo, hi = _act(op, out)
    reads = [i for i in (first, second) if not _t(g, i).is_constant]

    def emit(ctx) -> str:
        params = _struct("nt_mul_params", {
            "count": out.elements, "in1_offset": -_zp(t1), "in2_offset": -_zp(t2),
            "out_offset": _zp(out), "out_multiplier": m, "out_shift": sh, "act_min": lo,
            "act_max": hi, "in2_stride": stride})
        if ix:
            idx = [f"&{ctx.static(_struct('nt_bcast_index', i))}" for i in ix]
            return ctx.call("nt_mul_broadcast", params, idx + [ctx.buf(first), ctx.buf(second)],
                            ctx.buf(op.outputs[0]))
        return ctx.call("nt_mul", params, [ctx.buf(first), ctx.buf(second)],
                        ctx.buf(op.outputs[0]))

    return Step(op, reads, [op.outputs[0]], 0, emit, inplace=True)


def lower_add(p: Program, op: Op) -> Step:
    g = p.graph
    out = _t(g, op.outputs[0])
    _require_int8(op, g, [op.inputs[0], op.inputs[1], op.outputs[0]])
    ops = _binary_operands(op, g)
    first, second, stride = ops if ops else (op.inputs[0], op.inputs[1], 1)
    t1, t2 = _t(g, first), _t(g, second)
    ix = None if ops else [_broadcast_index(op, t.shape, out.shape) for t in (t1, t2)]
    q = quant.add_params(_scale(t1), _scale(t2), _scale(out))
    if max(q["in1_shift"], q["in2_shift"], q["out_shift"]) > 0:
        # TFLM's int8 ADD only handles multipliers < 1 (it aborts otherwise); happens when the
        # output range is tiny compared with the inputs' (e.g. a dead ReLU in calibration).
        raise refuse(op, "needs a rescale factor >= 1 (output scale too small for its inputs)")
    lo, hi = _act(op, out)
    reads = [i for i in (first, second) if not _t(g, i).is_constant]

    def emit(ctx) -> str:
        params = _struct("nt_add_params", {
            "count": out.elements, "in1_offset": -_zp(t1), "in2_offset": -_zp(t2),
            "out_offset": _zp(out), **q, "act_min": lo, "act_max": hi, "in2_stride": stride})
        if ix:
            idx = [f"&{ctx.static(_struct('nt_bcast_index', i))}" for i in ix]
            return ctx.call("nt_add_broadcast", params, idx + [ctx.buf(first), ctx.buf(second)],
                            ctx.buf(op.outputs[0]))
        return ctx.call("nt_add", params, [ctx.buf(first), ctx.buf(second)],
                        ctx.buf(op.outputs[0]))

    return Step(op, reads, [op.outputs[0]], 0, emit, inplace=True)


def lower_softmax(p: Program, op: Op) -> Step:
    g = p.graph
    x, out = _t(g, op.inputs[0]), _t(g, op.outputs[0])
    _require_int8(op, g, [op.inputs[0], op.outputs[0]])
    if _zp(out) != -128 or np.float32(_scale(out)) != np.float32(1.0 / 256):
        raise refuse(op, "has an output quantization other than scale 1/256, zero point -128")
    depth = x.shape[-1]
    try:
        mult, shift, diff_min = quant.softmax_params(float(op.options.beta), _scale(x))
    except ValueError:
        raise refuse(op, "has a beta * input scale too small") from None
    _check_shifts(op, [shift])

    def emit(ctx) -> str:
        params = _struct("nt_softmax_params", {
            "rows": x.elements // depth, "depth": depth, "input_multiplier": mult,
            "input_left_shift": shift, "diff_min": diff_min})
        return ctx.call("nt_softmax", params, [ctx.buf(op.inputs[0])], ctx.buf(op.outputs[0]))

    return Step(op, [op.inputs[0]], [op.outputs[0]], 0, emit)


def lower_concat(p: Program, op: Op) -> Step:
    g = p.graph
    out = _t(g, op.outputs[0])
    _require_int8(op, g, op.inputs + op.outputs)
    if int(getattr(op.options, "fusedActivationFunction", 0) or 0):
        raise refuse(op, "has a fused activation")
    rank = len(out.shape)
    axis = int(op.options.axis) % rank
    for i in op.inputs:
        t = _t(g, i)
        if np.float32(_scale(t)) != np.float32(_scale(out)) or _zp(t) != _zp(out):
            raise refuse(op, "concatenates inputs whose quantization differs from the output")
    outer = int(np.prod(out.shape[:axis]))
    sizes = [int(np.prod(_t(g, i).shape[axis:])) for i in op.inputs]
    sn = p.const("cat_n", "int32_t", sizes)
    reads = [i for i in op.inputs if not _t(g, i).is_constant]

    def emit(ctx) -> str:
        ptrs = ", ".join(ctx.buf(i) for i in op.inputs)
        return (f"{{ const int8_t *const ins[] = {{{ptrs}}}; "
                f"NT_CHECK(nt_concat(ins, {sn}, {len(op.inputs)}, {outer}, "
                f"{ctx.buf(op.outputs[0])})); }}")

    return Step(op, reads, [op.outputs[0]], 0, emit)


def lower_lut(p: Program, op: Op) -> Step:
    g = p.graph
    acts = [i for i in op.inputs if i >= 0 and not _t(g, i).is_constant]
    _require_int8(op, g, acts + op.outputs)
    if len(acts) != 1 or len(op.outputs) != 1 or \
            _t(g, acts[0]).elements != _t(g, op.outputs[0]).elements:
        raise refuse(op, "is not a one-input elementwise op")
    try:
        table = probe.elementwise_table(g, op)
    except RuntimeError:
        raise no_tflm_kernel(op) from None
    tn = p.const("lut", "int8_t", table)
    n = _t(g, op.outputs[0]).elements

    def emit(ctx) -> str:
        return f"NT_CHECK(nt_lut({tn}, {ctx.buf(acts[0])}, {ctx.buf(op.outputs[0])}, {n}));"

    return Step(op, acts, list(op.outputs), 0, emit, inplace=True)


def lower_move(p: Program, op: Op) -> Step:
    g = p.graph
    acts = [i for i in op.inputs if i >= 0 and not _t(g, i).is_constant]
    _require_int8(op, g, acts + op.outputs)
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
            params = _struct("nt_gather_params", {
                "dims": dims, "out_shape": "{" + ", ".join(map(str, oshape)) + "}",
                "in_stride": "{" + ", ".join(map(str, strides)) + "}", "offset": offset})
            lines.append(ctx.call("nt_gather", params, [ctx.buf(acts[0])], ctx.buf(out)))
        return "\n    ".join(lines)

    return Step(op, acts, list(op.outputs), 0, emit)


def lower_pad(p: Program, op: Op) -> Step:
    """PAD / PADV2 (ZeroPadding2D, and explicit padding converters emit before a convolution):
    a fill with the pad value and a copy, checked against the TFLM reference on random data."""
    g = p.graph
    x, out = _t(g, op.inputs[0]), _t(g, op.outputs[0])
    _require_int8(op, g, [op.inputs[0], op.outputs[0]])
    pads = _t(g, op.inputs[1])
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
        cv = _t(g, op.inputs[2])
        if cv.data is None or cv.dtype != "int8":
            raise refuse(op, "has a non-constant or non-int8 pad value")
        value = int(cv.data.reshape(-1)[0])
    else:
        value = _zp(out)
    try:
        ok = probe.pad_matches(g, op, before, after, value)
    except RuntimeError:
        raise refuse(op, "has no int8 kernel in the TFLM reference") from None
    if not ok:
        raise refuse(op, "changes values (its output quantization differs from its input's)")

    def emit(ctx) -> str:
        params = _struct("nt_pad_params", {
            "dims": rank, "in_shape": "{" + ", ".join(map(str, x.shape)) + "}",
            "pad_before": "{" + ", ".join(map(str, before)) + "}",
            "out_shape": "{" + ", ".join(map(str, out.shape)) + "}", "value": value})
        return ctx.call("nt_pad", params, [ctx.buf(op.inputs[0])], ctx.buf(op.outputs[0]))

    return Step(op, [op.inputs[0]], [op.outputs[0]], 0, emit)


def _consumers(g: Graph, t: int) -> list[Op]:
    return [o for o in g.ops if t in o.inputs]


def float_chain(g: Graph, start: Op) -> list[Op] | None:
    """DEQUANTIZE (int8 -> float) followed by single-input float elementwise ops and a QUANTIZE
    back to int8, each tensor consumed only by the next op: an int8 -> int8 function of one
    value (the converter emits this for activations it has no int8 kernel for, e.g. ELU)."""
    chain = [start]
    n = _t(g, start.outputs[0]).elements
    while True:
        last = chain[-1]
        out = last.outputs[0]
        if len(last.outputs) != 1 or out in g.outputs or _t(g, out).elements != n:
            return None
        if last is not start and last.name == "QUANTIZE" and _t(g, out).dtype == "int8":
            return chain
        users = _consumers(g, out)
        if len(users) != 1 or len(chain) > 8:
            return None
        nxt = users[0]
        acts = [i for i in nxt.inputs if i >= 0 and not _t(g, i).is_constant]
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
    n = _t(g, dst).elements
    first = chain[0]

    def emit(ctx) -> str:
        return (f"/* {names} */ NT_CHECK(nt_lut({tn}, {ctx.buf(src)}, {ctx.buf(dst)}, {n}));")

    return Step(first, [src], [dst], 0, emit, inplace=True)


def no_tflm_kernel(op: Op) -> UserError:
    """Neither backend can run it: TFLM itself has no kernel for the op in this form."""
    return UserError(f"op {op.name} (operator {op.index}) has no int8 kernel in TFLM: neither "
                     "the aot nor the tflm backend can run this model; choose another "
                     "activation or layer")


def lower(g: Graph, fuse: bool = True, sparse: bool = True) -> Program:
    """Lower every op to kernel calls (or buffer aliases); with `fuse`, CONV_2D + MAX_POOL_2D
    pairs become one call (fusable_pool); with `sparse`, a fully connected layer whose
    NT_FC_BLOCK8X2 form is smaller than its dense weights takes it (lower_fc). Raises UserError
    naming the first op the AOT backend cannot reproduce exactly."""
    p = Program(g, sparse=sparse)
    for i in g.inputs + g.outputs:
        if _t(g, i).dtype != "int8":
            raise UserError(f"model {'input' if i in g.inputs else 'output'} "
                            f"'{_t(g, i).name}' is {_t(g, i).dtype}; the AOT backend needs int8 "
                            "in and out (quantize with int8 I/O, or use the tflm backend)")
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise UserError("the AOT backend supports one input and one output; "
                        "use the tflm backend")
    skip: set[int] = set()
    for op in g.ops:
        name = op.name
        if op.index in skip:
            continue
        if name == "DEQUANTIZE":
            chain = float_chain(g, op)
            if chain is None:
                raise refuse(op, "produces a float tensor that does not return to int8 through "
                             "elementwise ops")
            skip.update(o.index for o in chain)
            p.steps.append(lower_chain(p, chain))
        elif name == "FULLY_CONNECTED":
            p.steps.append(lower_fc(p, op))
        elif name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            pool = fusable_pool(g, op) if fuse and name == "CONV_2D" else None
            step = lower_conv(p, op, name == "DEPTHWISE_CONV_2D", pool)
            if step.fused:
                skip.add(pool.index)
            p.steps.append(step)
        elif name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            p.steps.append(lower_pool(p, op, "max" if name == "MAX_POOL_2D" else "avg"))
        elif name == "MEAN":
            p.steps.append(lower_mean(p, op))
        elif name == "ADD":
            p.steps.append(lower_add(p, op))
        elif name == "MUL":
            p.steps.append(lower_mul(p, op))
        elif name == "SOFTMAX":
            p.steps.append(lower_softmax(p, op))
        elif name == "CONCATENATION":
            p.steps.append(lower_concat(p, op))
        elif name in ("PAD", "PADV2"):
            p.steps.append(lower_pad(p, op))
        elif name in ALIAS_OPS:
            src, dst = op.inputs[0], op.outputs[0]
            _require_int8(op, g, [src, dst])
            if _t(g, src).is_constant:
                raise refuse(op, "reshapes a constant")
            p.alias[dst] = src
        elif name in ELEMENTWISE_OPS:
            p.steps.append(lower_lut(p, op))
        elif name in MOVE_OPS:
            p.steps.append(lower_move(p, op))
        else:
            raise refuse(op, "is not implemented")
    return p


# Element-wise kernels that may write their output over an input they read at the same index
# (each output byte depends only on the input bytes at its own index, read before it is written).
INPLACE_FNS = ("nt_lut", "nt_add", "nt_mul")


def _inplace(p: Program) -> None:
    """Make an element-wise step write over its (same-size) input when that input dies there."""
    g = p.graph
    last: dict[int, int] = {}
    for s, st in enumerate(p.steps):
        for t in st.reads:
            last[p.root(t)] = s
    model_in, model_out = p.root(g.inputs[0]), p.root(g.outputs[0])
    for s, st in enumerate(p.steps):
        if not st.inplace or len(st.writes) != 1:
            continue
        out = st.writes[0]
        for t in st.reads:
            r = p.root(t)
            if (r != model_in and r != model_out and last.get(r) == s
                    and _t(g, r).nbytes == _t(g, out).nbytes and out not in p.alias
                    and p.root(out) == out):
                p.alias[out] = r
                break


def _lifetimes(p: Program) -> dict[object, tuple[int, int, int]]:
    """Buffer key (alias root or ("scratch", step)) -> (bytes, first step, last step). A buffer
    lives from the step that writes it to the last step that reads it; the model output to the
    end (it is copied out after the last step); the model input is the caller's buffer."""
    g = p.graph
    n = len(p.steps)
    live: dict[object, list[int]] = {}
    size: dict[object, int] = {}
    model_in = p.root(g.inputs[0])
    for s, st in enumerate(p.steps):
        for t in st.writes:
            r = p.root(t)
            live.setdefault(r, [s, s])
            size[r] = _t(g, r).nbytes
        for t in st.reads:
            r = p.root(t)
            if r == model_in:
                continue  # read straight from the caller's input buffer
            live.setdefault(r, [s, s])[1] = s
            size[r] = _t(g, r).nbytes
        if st.scratch and not p.no_scratch:
            live[("scratch", s)] = [s, s]
            size[("scratch", s)] = st.scratch
    out_root = p.root(g.outputs[0])
    if out_root in live:
        live[out_root][1] = n
    return {k: (size[k], v[0], v[1]) for k, v in live.items()}


def _place(order: list[object], bufs: dict[object, tuple[int, int, int]],
           best_fit: bool) -> tuple[dict[object, int], int]:
    """Offsets for the buffers taken in `order`: each at the lowest offset (first fit) or in the
    smallest gap that holds it (best fit) among the buffers already placed that are alive at the
    same time. Returns (offsets, arena bytes)."""
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    offsets: dict[object, int] = {}
    for key in order:
        size, first, last = bufs[key]
        sz = (size + kAlign - 1) // kAlign * kAlign
        busy = sorted((o, o + z) for o, z, f, l_ in placed if not (l_ < first or f > last))
        gaps: list[tuple[int, int]] = []  # (start, end); the last one is open-ended
        off = 0
        for lo_, hi_ in busy:
            if lo_ > off:
                gaps.append((off, lo_))
            off = max(off, hi_)
        fits = [(e - b, b) for b, e in gaps if e - b >= sz]
        if not fits:
            choice = off
        elif best_fit:
            choice = min(fits)[1]
        else:
            choice = min(b for _, b in fits)
        placed.append((choice, sz, first, last))
        offsets[key] = choice
    return offsets, max((o + z for o, z, _, _ in placed), default=0)


# Orders tried by plan(); the smallest arena wins (ties: the first listed). "size" is TFLM's
# GreedyMemoryPlanner order (largest first, first fit).
PLAN_ORDERS = {
    "size": lambda b, k: (-b[k][0], b[k][1], str(k)),
    "first-use": lambda b, k: (b[k][1], -b[k][0], str(k)),
    "area": lambda b, k: (-b[k][0] * (b[k][2] - b[k][1] + 1), -b[k][0], str(k)),
    "lifetime": lambda b, k: (-(b[k][2] - b[k][1]), -b[k][0], str(k)),
}


def plan(p: Program) -> None:
    """Assign arena offsets (16-byte aligned) to every buffer from its lifetime, trying several
    placement orders (TFLM's largest-first greedy among them) with first and best fit, and keep
    the smallest arena."""
    bufs = _lifetimes(p)
    best: tuple[int, str, dict[object, int]] | None = None
    for name, key in PLAN_ORDERS.items():
        order = sorted(bufs, key=lambda k, key=key: key(bufs, k))
        for best_fit in (False, True):
            offsets, total = _place(order, bufs, best_fit)
            label = f"{name}, {'best' if best_fit else 'first'} fit"
            if best is None or total < best[0]:
                best = (total, label, offsets)
    total, p.plan_strategy, p.offsets = best
    p.arena_bytes = total or kAlign


class _Ctx:
    def __init__(self, p: Program, step_index: int):
        self.p, self.s = p, step_index
        key = ("scratch", step_index)
        self.scratch = f"(void *)(g_arena + {p.offsets[key]})" if key in p.offsets else "NULL"

    def buf(self, t: int) -> str:
        g = self.p.graph
        r = self.p.root(t)
        if _t(g, r).is_constant:
            name = self.p.const_for_tensor(r)
            return name
        if r == self.p.root(g.inputs[0]):
            return "in"
        return f"(g_arena + {self.p.offsets[r]})"

    def static(self, params: str) -> str:
        """Define a `_struct(...)` value as a static const (flash, no stack copy); its name."""
        ptype = params.split(")", 1)[0]
        body = params.split(")", 1)[1]
        name = f"k_p{self.s}_{len(self.p.param_defs)}"
        self.p.param_defs.append(f"static const {ptype} {name} = {body};")
        return name

    def call(self, fn: str, params: str, ins: list[str], out: str) -> str:
        args = ", ".join([f"&{self.static(params)}"] + ins + [out])
        return f"NT_CHECK({fn}({args}));"


def _const_for_tensor(self: Program, t: int) -> str:
    cache = self.__dict__.setdefault("_tensor_consts", {})
    if t not in cache:
        cache[t] = self.const("tensor", "int8_t", self.graph.tensors[t].data.view(np.int8), 16)
    return cache[t]


Program.const_for_tensor = _const_for_tensor


def _array(c: Const) -> str:
    vals = c.values.astype(np.int64).tolist()
    lines = []
    for i in range(0, len(vals), 24):
        lines.append("    " + ", ".join(_c_int(v) for v in vals[i:i + 24]) + ",")
    align = f"NT_ALIGN({c.align}) " if c.align > 4 else ""
    return (f"static const {c.ctype} {align}{c.name}[{len(vals)}] = {{\n" + "\n".join(lines)
            + "\n};")


def emit_c(p: Program, sha256: str) -> tuple[str, str]:
    """(model_aot.h, model_aot.c) text."""
    g = p.graph
    p.param_defs = []
    calls = []
    for s, st in enumerate(p.steps):
        ctx = _Ctx(p, s)
        calls.append(f"    /* {s}: {st.op.name} (operator {st.op.index}) */\n    "
                     + st.emit(ctx))
    in_bytes = _t(g, g.inputs[0]).nbytes
    out_t = _t(g, g.outputs[0])
    out_root = p.root(g.outputs[0])
    if out_root == p.root(g.inputs[0]):
        copy_out = "memcpy(out, in, MODEL_AOT_OUTPUT_BYTES);"
    else:
        copy_out = f"memcpy(out, g_arena + {p.offsets[out_root]}, MODEL_AOT_OUTPUT_BYTES);"
    banner = ("/* generated by nano-tflm (trainer.aot), do not edit.\n"
              f" * source .tflite sha256: {sha256}\n"
              " * regenerate with: python -m trainer export --backend aot */\n")
    ops = sorted({st.op.name for st in p.steps})
    h = (banner + "#ifndef MODEL_AOT_H\n#define MODEL_AOT_H\n\n#include <stdint.h>\n\n"
         "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
         f"#define MODEL_AOT_SHA256 \"{sha256}\"\n"
         f"#define MODEL_AOT_INPUT_BYTES {in_bytes}\n"
         f"#define MODEL_AOT_OUTPUT_BYTES {out_t.nbytes}\n"
         f"/* planned offline from tensor lifetimes ({p.plan_strategy}, {kAlign}-byte aligned"
         f"{'; kernels without scratch' if p.no_scratch else ''}) */\n"
         f"#define MODEL_AOT_ARENA_BYTES {p.arena_bytes}\n"
         f"#define MODEL_AOT_OPS \"{' '.join(ops)}\"\n\n"
         "/* Runs one inference: in holds MODEL_AOT_INPUT_BYTES int8 values (the model's\n"
         " * quantized input), out receives MODEL_AOT_OUTPUT_BYTES. 0 on success, else the\n"
         " * failing kernel's NT_ERR_* code. Not reentrant (one static arena). */\n"
         "int model_aot_invoke(const int8_t *in, int8_t *out);\n\n"
         "#ifdef __cplusplus\n}\n#endif\n\n#endif /* MODEL_AOT_H */\n")
    c = [banner, ('#include "model_aot.h"\n\n#include <stddef.h>\n#include <string.h>\n\n'
         '#include "kernels.h"\n'
         + "".join(f'#include "{h}"\n' for h in sorted(p.includes)) + "\n"
         "#if defined(__GNUC__)\n#define NT_ALIGN(n) __attribute__((aligned(n)))\n#else\n"
         "#define NT_ALIGN(n)\n#endif\n"
         "#define NT_CHECK(call) do { int rc_ = (call); if (rc_ != 0) return rc_; } while (0)\n\n"
         "/* Activations and kernel scratch; offsets planned offline. */\n"
         "static int8_t NT_ALIGN(16) g_arena[MODEL_AOT_ARENA_BYTES];\n\n")]
    c += [_array(k) + "\n" for k in p.consts]
    c.append("\n" + "\n".join(p.param_defs) + "\n\n")
    c.append("int model_aot_invoke(const int8_t *in, int8_t *out) {\n")
    c.append("\n".join(calls) + "\n")
    c.append(f"    {copy_out}\n    return 0;\n}}\n")
    return h, "".join(c)


@dataclass(frozen=True)
class AotResult:
    """What generate() wrote: file paths, arena bytes, constant bytes (flash), ops, MACs."""

    header: Path
    source: Path
    arena_bytes: int
    const_bytes: int
    ops: tuple[str, ...]
    macs: int
    sha256: str
    fused: tuple[str, ...] = ()  # the fusions applied, e.g. "CONV_2D+MAX_POOL_2D (operators 0, 1)"
    arena_limit: int | None = None  # the TFLM reference arena the plan had to stay within


def tflm_arena_bytes(tflite_bytes: bytes) -> int | None:
    """Arena bytes the TFLM reference interpreter allocates for the model, measured like
    trainer.reference.Reference.arena_bytes (one invoke on a zero input, then TFLM's allocation
    report) but for any input shape; None if TFLM cannot run the model here."""
    try:
        from tflite_micro.python.tflite_micro import runtime

        from trainer.reference import _ARENA_RE, _MIN_ARENA, _capture_fd2

        interp = runtime.Interpreter.from_bytes(
            bytes(tflite_bytes), arena_size=max(10 * len(tflite_bytes), _MIN_ARENA))
        d = interp.get_input_details(0)
        interp.set_input(np.zeros(d["shape"], dtype=d["dtype"]), 0)
        interp.invoke()
        with _capture_fd2() as text:
            interp.print_allocations()
        m = _ARENA_RE.search(text[0])
        return int(m.group(1)) if m else None
    except Exception as e:  # noqa: BLE001  (the wheel raises RuntimeError/ValueError/...)
        log.debug("aot: no TFLM arena to plan against: %s", e)
        return None


def build_program(g: Graph, arena_limit, sparse: bool = True) -> tuple[Program, int | None]:
    """Lower and plan `g`. Fused, with kernel scratch, is the fast program; when its arena exceeds
    `arena_limit` (TFLM's, so that the AOT arena never needs more than TFLM), the variants without
    scratch (kernels take their plain paths) and without fusion are planned too, and the first
    that fits, else the smallest, is kept. `arena_limit` is an int, None, or a function
    returning one (called once the model has lowered). Returns (program, limit)."""
    best: Program | None = None
    for fuse, no_scratch in ((True, False), (True, True), (False, False), (False, True)):
        p = lower(g, fuse=fuse, sparse=sparse)
        p.no_scratch = no_scratch
        _inplace(p)
        plan(p)
        if callable(arena_limit):
            arena_limit = arena_limit()
        if arena_limit is None or p.arena_bytes <= arena_limit:
            return p, arena_limit
        if best is None or p.arena_bytes < best.arena_bytes:
            best = p
    log.warning("aot: arena %d B exceeds the TFLM reference's %d B", best.arena_bytes,
                arena_limit)
    return best, arena_limit


def generate(tflite_bytes: bytes, out_dir, variant: str = "any",
             arena_limit: int | None | str = "tflm", sparse: bool = True) -> AotResult:
    """Write model_aot.h and model_aot.c for `tflite_bytes` into `out_dir`.

    The generated file calls the dispatching kernel names (nt_fully_connected, ...); the C99
    or DSP kernels are chosen when it is compiled (kernels.h), so `variant` only accepts "any",
    "c99" or "dsp" for forward compatibility (all produce the same file today). Raises UserError
    naming the first op that cannot be reproduced bit-exactly. `arena_limit` bounds the planned
    arena (build_program): "tflm" (default) measures the TFLM reference's arena for this model,
    None plans without a bound. `sparse=False` keeps every fully connected layer dense (to
    measure what the sparse format saves).
    """
    from trainer.aot.graph import load

    if variant not in ("any", "c99", "dsp"):
        raise UserError(f"unknown AOT kernel variant '{variant}' (any, c99, dsp)")
    sha = hashlib.sha256(tflite_bytes).hexdigest()
    g = load(tflite_bytes)
    probe.require_tflm_prepares(tflite_bytes, g)
    if arena_limit == "tflm":
        arena_limit = lambda: tflm_arena_bytes(tflite_bytes)  # asked once the model lowered
    p, limit = build_program(g, arena_limit, sparse)
    h, c = emit_c(p, sha)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hp, cp = out / "model_aot.h", out / "model_aot.c"
    hp.write_text(h)
    cp.write_text(c)
    const_bytes = sum(k.values.size * np.dtype(k.ctype.replace("_t", "")).itemsize
                      for k in p.consts)
    log.info("aot: %d kernel calls, arena %d bytes (%s), constants %d bytes", len(p.steps),
             p.arena_bytes, p.plan_strategy, const_bytes)
    return AotResult(hp, cp, p.arena_bytes, const_bytes, tuple(sorted({s.op.name for s in p.steps})),
                     sum(s.macs for s in p.steps), sha, tuple(s.fused for s in p.steps if s.fused),
                     limit)
