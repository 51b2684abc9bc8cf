"""Plan the arena: in-place element-wise steps, buffer lifetimes, offsets (several greedy
orders, first and best fit, the smallest wins), and the fallbacks that fit TFLM's arena."""

from __future__ import annotations

import logging

from trainer.aot.graph import Graph
from trainer.aot.ir import ALIGN, Program, tensor
from trainer.aot.lower import lower

log = logging.getLogger(__name__)



# Element-wise kernels that may write their output over an input they read at the same index
# (each output byte depends only on the input bytes at its own index, read before it is written).
INPLACE_FNS = ("nt_lut", "nt_add", "nt_mul")


def inplace(p: Program) -> None:
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
                    and tensor(g, r).nbytes == tensor(g, out).nbytes and out not in p.alias
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
            size[r] = tensor(g, r).nbytes
        for t in st.reads:
            r = p.root(t)
            if r == model_in:
                continue  # read straight from the caller's input buffer
            live.setdefault(r, [s, s])[1] = s
            size[r] = tensor(g, r).nbytes
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
        sz = (size + ALIGN - 1) // ALIGN * ALIGN
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
    p.arena_bytes = total or ALIGN


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
        inplace(p)
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
