"""Lowerings of the ops with a compute kernel: FULLY_CONNECTED (dense and NT_FC_BLOCK8X2),
CONV_2D (with a fused MAX_POOL_2D), DEPTHWISE_CONV_2D, MAX_POOL_2D / AVERAGE_POOL_2D, MEAN."""

from __future__ import annotations

import numpy as np

from trainer.aot import probe, quant
from trainer.aot.graph import Graph, Op
from trainer.aot.ir import (
    Program,
    Step,
    act_range,
    c_struct,
    check_shifts,
    consumers,
    fold_bias,
    refuse,
    require_int8,
    scale,
    tensor,
    tflm_padding,
    weights,
    zero_point,
)
from trainer.aot.verify import scratch_bytes


def fc_stacked(w: np.ndarray) -> np.ndarray:
    """(rows, depth) int8 weights in NT_LAYOUT_FC_STACKED order (kernels.h), as a flat array:
    row pairs; per block of 8 inputs the byte pairs (row 2j ^ 0x80, row 2j + 1) of inputs
    0, 2, 1, 3, 4, 6, 5, 7 (each 4-byte word then reads as two int16 lanes 256 w[2j+1][k] +
    w[2j][k] + 128); then the depth % 8 remaining inputs of each row as is; an odd last row as
    is. depth must be even."""
    rows, depth = w.shape
    body = depth // 8 * 8
    order = [0, 2, 1, 3, 4, 6, 5, 7]
    parts = []
    for j in range(rows // 2):
        even = (w[2 * j, :body].view(np.uint8) ^ 0x80).view(np.int8)
        pair = np.stack([even, w[2 * j + 1, :body]])  # (2, body)
        blocks = pair.reshape(2, -1, 8)[:, :, order]  # (2, blocks, 8)
        parts.append(blocks.transpose(1, 2, 0).reshape(-1))  # per block, per input: row pair
        parts.append(w[2 * j:2 * j + 2, body:].reshape(-1))
    if rows % 2:
        parts.append(w[-1])
    return np.concatenate(parts).astype(np.int8) if parts else w.reshape(-1)


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
    x, wt, out = tensor(g, op.inputs[0]), weights(op, g, op.inputs[1]), tensor(g, op.outputs[0])
    require_int8(op, g, [op.inputs[0], op.outputs[0]])
    n_out, k = wt.shape
    if x.elements % k:
        raise refuse(op, "has an input size that is not a multiple of the weights' depth")
    bias_idx = op.inputs[2] if len(op.inputs) > 2 else -1
    w = wt.data.reshape(n_out, k)
    in_zp = zero_point(x)
    folded = fold_bias(op, g, bias_idx, w, in_zp, n_out)
    per_channel = len(wt.scale) > 1
    if per_channel:
        mult, shift = quant.conv_multipliers(scale(x), wt.scale, scale(out), n_out)
    else:
        m, s = quant.fc_multiplier_per_tensor(scale(x), float(wt.scale[0]), scale(out))
        mult, shift = [m], [s]
    check_shifts(op, shift)
    lo, hi = act_range(op, out)
    batches = x.elements // k
    sparse = fc_block8x2(w) if p.sparse else None
    if sparse is not None and fc_block8x2_bytes(sparse) < w.size:
        return _lower_fc_sparse(p, op, sparse, folded, mult, shift, per_channel, lo, hi, batches)
    # Even depth: the rows in pairs, in the order the DSP loop reads them (same size).
    layout = "NT_LAYOUT_FC_STACKED" if k % 2 == 0 else "NT_LAYOUT_TFLITE"
    wn = p.const("fc_w", "int8_t", fc_stacked(w) if k % 2 == 0 else w, 16)
    bn = p.const("fc_b", "int32_t", folded)
    mn = p.const("fc_m", "int32_t", mult)
    sn = p.const("fc_s", "int32_t", shift)

    def emit(ctx) -> str:
        params = c_struct("nt_fc_params", {
            "batches": batches, "in_features": k, "out_features": n_out, "in_zp": in_zp,
            "out_zp": zero_point(out), "act_min": lo, "act_max": hi,
            "per_channel": int(per_channel),
            "weight_layout": layout, "weights": wn, "bias_folded": bn,
            "multiplier": mn, "shift": sn, "scratch": ctx.scratch})
        # With its scratch planned, no run-time dispatch (kernels.h: nt_fully_connected_fast).
        fast = not ctx.p.no_scratch and layout == "NT_LAYOUT_FC_STACKED"
        fn = "nt_fully_connected_fast" if fast else "nt_fully_connected"
        return ctx.call(fn, params, [ctx.buf(op.inputs[0])], ctx.buf(op.outputs[0]))

    scratch = scratch_bytes("NT_FC_SCRATCH_BYTES", k) if n_out else 0
    return Step(op, [op.inputs[0]], [op.outputs[0]], scratch, emit,
                macs=batches * k * n_out)


def _lower_fc_sparse(p: Program, op: Op, sparse, folded, mult, shift, per_channel: bool,
                     lo: int, hi: int, batches: int) -> Step:
    """FULLY_CONNECTED as nt_fully_connected_sparse (kernels_sparse.h): only the non-zero 2 x 8
    blocks are stored and multiplied. Bit-exact: the skipped products are all zero."""
    g = p.graph
    n_out, k = tensor(g, op.inputs[1]).shape
    wv, iv, cv = sparse
    wn = p.const("fcs_w", "int8_t", wv, 16)
    idn = p.const("fcs_i", "uint8_t", iv, 1)
    cn = p.const("fcs_n", "uint16_t", cv, 2)
    bn = p.const("fc_b", "int32_t", folded)
    mn = p.const("fc_m", "int32_t", mult)
    sn = p.const("fc_s", "int32_t", shift)
    p.includes.add("kernels_sparse.h")
    out = tensor(g, op.outputs[0])

    def emit(ctx) -> str:
        params = c_struct("nt_fc_sparse_params", {
            "batches": batches, "in_features": k, "out_features": n_out, "out_zp": zero_point(out),
            "act_min": lo, "act_max": hi, "per_channel": int(per_channel), "weights": wn,
            "block_index": idn, "block_count": cn, "bias_folded": bn, "multiplier": mn,
            "shift": sn, "scratch": ctx.scratch})
        return ctx.call("nt_fully_connected_sparse", params, [ctx.buf(op.inputs[0])],
                        ctx.buf(op.outputs[0]))

    scratch = scratch_bytes("NT_FC_SPARSE_SCRATCH_BYTES", k)
    return Step(op, [op.inputs[0]], [op.outputs[0]], scratch, emit,
                macs=batches * k * n_out)


def fusable_pool(g: Graph, op: Op) -> Op | None:
    """The MAX_POOL_2D that can be computed inside CONV_2D `op`, or None. Fused when the pool is
    the conv output's only consumer, its windows tile the conv output without overlap or padding
    (stride = filter, VALID or SAME without padding), and the two clamps compose into one. The
    kernel then takes the max over each window of the requantized conv outputs, so the
    full-resolution map never exists (bit-exact: the same max of the same values)."""
    t = op.outputs[0]
    users = consumers(g, t)
    if len(users) != 1 or users[0].name != "MAX_POOL_2D" or t in g.outputs:
        return None
    pool = users[0]
    o = pool.options
    x, out = tensor(g, t), tensor(g, pool.outputs[0])
    if len(x.shape) != 4 or len(out.shape) != 4 or x.dtype != "int8" or out.dtype != "int8":
        return None
    fh, fw, sh, sw = int(o.filterHeight), int(o.filterWidth), int(o.strideH), int(o.strideW)
    _, ih, iw, _ = x.shape
    _, oh, ow, _ = out.shape
    if fh != sh or fw != sw or fh < 1 or fw < 1 or oh != ih // fh or ow != iw // fw:
        return None
    if tflm_padding(sh, 1, ih, fh, oh) or tflm_padding(sw, 1, iw, fw, ow):
        return None
    if zero_point(x) != zero_point(out) or np.float32(scale(x)) != np.float32(scale(out)):
        return None
    return pool


def _clamp_meet(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int] | None:
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if lo <= hi else None


def lower_conv(p: Program, op: Op, depthwise: bool, pool: Op | None = None) -> Step:
    g = p.graph
    x, wt, out = tensor(g, op.inputs[0]), weights(op, g, op.inputs[1]), tensor(g, op.outputs[0])
    require_int8(op, g, [op.inputs[0], op.outputs[0]])
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
    pad_t = tflm_padding(sh, dh, ih, kh, oh)
    pad_l = tflm_padding(sw, dw, iw, kw, ow)
    if int(o.padding) == 1:  # VALID
        pad_t = pad_l = 0
    in_zp = zero_point(x)
    bias_idx = op.inputs[2] if len(op.inputs) > 2 else -1
    folded = fold_bias(op, g, bias_idx, w2, in_zp, oc)
    mult, shift = quant.conv_multipliers(scale(x), wt.scale, scale(out), oc)
    check_shifts(op, shift)
    lo, hi = act_range(op, out)
    pool_h = pool_w = 0
    dst = op.outputs[0]
    if pool is not None:
        meet = _clamp_meet((lo, hi), act_range(pool, tensor(g, pool.outputs[0])))
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
    # Sizes from the kernel header's formulas (verify.scratch_bytes): conv widens two im2col
    # columns, plus the running max of two pooled pixels when a pool is fused, plus the widened
    # weights on the 1-channel 5-tap path; the dsp depthwise kernel needs none.
    if depthwise:
        scratch = scratch_bytes("NT_DW_SCRATCH_BYTES")
    else:
        scratch = scratch_bytes("NT_CONV_SCRATCH_BYTES", kh, kw, ic)
    if pool_h:
        scratch += scratch_bytes("NT_CONV_POOL_SCRATCH_BYTES", oc)
    if not depthwise and ic == 1 and kw == 5:
        scratch += scratch_bytes("NT_CONV_C1_SCRATCH_BYTES", oc, kh)

    def emit(ctx) -> str:
        params = c_struct("nt_conv_params", {
            "batches": n, "in_h": ih, "in_w": iw, "in_c": ic, "out_h": oh, "out_w": ow,
            "out_c": oc, "k_h": kh, "k_w": kw, "stride_h": sh, "stride_w": sw, "dil_h": dh,
            "dil_w": dw, "pad_top": pad_t, "pad_left": pad_l, "depth_multiplier": dm,
            "in_zp": in_zp, "out_zp": zero_point(out), "act_min": lo, "act_max": hi,
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
    x, out = tensor(g, op.inputs[0]), tensor(g, op.outputs[0])
    require_int8(op, g, [op.inputs[0], op.outputs[0]])
    o = op.options
    n, ih, iw, c = x.shape
    _, oh, ow, _ = out.shape
    fh, fw, sh, sw = int(o.filterHeight), int(o.filterWidth), int(o.strideH), int(o.strideW)
    pad_t, pad_l = tflm_padding(sh, 1, ih, fh, oh), tflm_padding(sw, 1, iw, fw, ow)
    if int(o.padding) == 1:
        pad_t = pad_l = 0
    lo, hi = act_range(op, out)

    def emit(ctx) -> str:
        params = c_struct("nt_pool_params", {
            "batches": n, "in_h": ih, "in_w": iw, "channels": c, "out_h": oh, "out_w": ow,
            "filter_h": fh, "filter_w": fw, "stride_h": sh, "stride_w": sw, "pad_top": pad_t,
            "pad_left": pad_l, "act_min": lo, "act_max": hi})
        return ctx.call(f"nt_{kind}_pool", params, [ctx.buf(op.inputs[0])],
                        ctx.buf(op.outputs[0]))

    return Step(op, [op.inputs[0]], [op.outputs[0]], 0, emit)


def lower_mean(p: Program, op: Op) -> Step:
    g = p.graph
    x, ax = tensor(g, op.inputs[0]), tensor(g, op.inputs[1])
    require_int8(op, g, [op.inputs[0], op.outputs[0]])
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
        params = c_struct("nt_mean_params", {
            "outer": outer, "reduce": red, "inner": inner, "out_base": base,
            "n_thresholds": len(th), "thresholds": tn})
        return ctx.call("nt_mean", params, [ctx.buf(op.inputs[0])], ctx.buf(op.outputs[0]))

    return Step(op, [op.inputs[0]], [op.outputs[0]], 0, emit)

