"""Exact behaviour of value-wise and data-movement ops, read off the TFLM reference itself.

Some int8 ops are pure functions of a small domain: an elementwise op (LOGISTIC, TANH, ELU, EXP,
LEAKY_RELU, QUANTIZE int8->int8, ...) maps each of the 256 input values to one output value,
and a MEAN maps an integer sum to one output value. For those the generator builds a one-op
model with the same options and quantization, runs it once in the TFLM reference interpreter on
every possible input, and stores the answer as a table: the table is TFLM's arithmetic,
whatever rounding its kernel uses. Ops that only move bytes (TRANSPOSE, STRIDED_SLICE, SPLIT,
...) are probed with inputs that encode element indices, and accepted only when the mapping is a
strided gather, which is then verified on random data.
"""

from __future__ import annotations

import re

import numpy as np

from trainer.aot.graph import Graph, Op, single_op_model, sub_model


def _run(model: bytes, inputs: list[np.ndarray], n_outputs: int) -> list[np.ndarray]:
    from tflite_micro.python.tflite_micro import runtime

    need = sum(a.nbytes for a in inputs) * 3 + 256 * 1024
    interp = runtime.Interpreter.from_bytes(model, arena_size=need)
    for i, a in enumerate(inputs):
        interp.set_input(a, i)
    interp.invoke()
    return [np.array(interp.get_output(i)) for i in range(n_outputs)]


def elementwise_table(graph: Graph, op: Op) -> np.ndarray:
    """int8[256]: TFLM's output for each input value, indexed by (uint8)input."""
    src = next(i for i in op.inputs if i >= 0 and not graph.tensors[i].is_constant)
    dst = op.outputs[0]
    model = single_op_model(graph, op, {src: (1, 256), dst: (1, 256)})
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    y = _run(model, [x], 1)[0].reshape(256).astype(np.int8)
    table = np.zeros(256, dtype=np.int8)
    table[x.reshape(256).view(np.uint8)] = y
    return table


def chain_table(graph: Graph, ops: list[Op]) -> np.ndarray:
    """int8[256] for an elementwise chain int8 -> ... -> int8 (e.g. DEQUANTIZE, ELU in float,
    QUANTIZE): TFLM's output for each input value, every tensor of the chain resized to 256."""
    shapes = {t: (1, 256) for o in ops for t in list(o.inputs) + list(o.outputs)
              if t >= 0 and not graph.tensors[t].is_constant}
    model = sub_model(graph, ops, shapes)
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    y = _run(model, [x], 1)[0].reshape(256).astype(np.int8)
    table = np.zeros(256, dtype=np.int8)
    table[x.reshape(256).view(np.uint8)] = y
    return table


def mean_thresholds(graph: Graph, op: Op, reduce_axes: list[int]) -> tuple[int, np.ndarray]:
    """For MEAN over `reduce_axes` (sorted, contiguous): TFLM's output as a function of the
    int32 sum of the raw int8 inputs over the reduced elements. Returns (base, thresholds):
    output = base + number of thresholds <= sum. Raises ValueError if TFLM's function is not
    monotone in the sum (then a table would not reproduce it)."""
    src, dst = op.inputs[0], op.outputs[0]
    shape = list(graph.tensors[src].shape)
    n = int(np.prod([shape[a] for a in reduce_axes]))
    sums = np.arange(-128 * n, 127 * n + 1, dtype=np.int64)
    k = len(sums)
    # Probe tensor: outer dims 1, reduced dims as in the model, inner dims collapsed into the
    # last one (one column per possible sum), so TFLM takes the same code path (same rank,
    # same axes) as in the model.
    last = len(shape) - 1
    if last in reduce_axes:
        raise ValueError("mean over the last axis")
    keep = bool(getattr(op.options, "keepDims", False))
    # Columns per probe run: keeps one probe tensor under ~4 M elements for large reductions.
    chunk = max(1, (4 << 20) // n)
    ys = []
    for c0 in range(0, k, chunk):
        part = sums[c0:c0 + chunk]
        kc = len(part)
        pshape = [1] * len(shape)
        for a in reduce_axes:
            pshape[a] = shape[a]
        pshape[last] = kc
        base = np.floor_divide(part, n)
        rem = part - base * n
        cols = np.stack([base + (r < rem) for r in range(n)])  # (n, kc): column sums == part
        x = cols.reshape([shape[a] for a in reduce_axes] + [kc]).astype(np.int8).reshape(pshape)
        oshape = [1 if i in reduce_axes else pshape[i] for i in range(len(pshape))]
        if not keep:
            oshape = [d for i, d in enumerate(oshape) if i not in reduce_axes]
        model = single_op_model(graph, op, {src: tuple(pshape), dst: tuple(oshape)})
        ys.append(_run(model, [x], 1)[0].reshape(kc).astype(np.int32))
    y = np.concatenate(ys)
    if np.any(np.diff(y) < 0):
        raise ValueError("not monotone")
    lo = int(y[0])
    thresholds = [int(sums[np.argmax(y >= q)]) for q in range(lo + 1, int(y[-1]) + 1)]
    return lo, np.asarray(thresholds, dtype=np.int64)


def gather_maps(graph: Graph, op: Op) -> list[tuple[list[int], list[int], int]] | None:
    """For a byte-moving op with one activation input: per output, (out_shape, in_strides,
    offset) in elements such that out[i...] = in[offset + sum i_d * stride_d]; None if some
    output is not such a strided gather of the input (or TFLM changes the values)."""
    src = [i for i in op.inputs if i >= 0 and not graph.tensors[i].is_constant]
    if len(src) != 1:
        return None
    src = src[0]
    shape = graph.tensors[src].shape
    n = int(np.prod(shape)) if shape else 1
    if n >= 1 << 24:
        return None
    model = single_op_model(graph, op, {})
    idx = np.arange(n, dtype=np.int64)
    digits = []
    for b in range(3):
        x = (((idx >> (8 * b)) & 0xFF).astype(np.uint8).view(np.int8)).reshape(shape)
        digits.append(_run(model, [x], len(op.outputs)))
    maps = []
    for o, out in enumerate(op.outputs):
        oshape = list(graph.tensors[out].shape) or [1]
        got = np.zeros(int(np.prod(oshape)), dtype=np.int64)
        for b in range(3):
            got |= digits[b][o].reshape(-1).view(np.uint8).astype(np.int64) << (8 * b)
        if got.size == 0 or np.any(got >= n):
            return None
        g = got.reshape(oshape)
        offset = int(g.reshape(-1)[0])
        strides = []
        for d in range(len(oshape)):
            if oshape[d] > 1:
                at = [0] * len(oshape)
                at[d] = 1
                strides.append(int(g[tuple(at)]) - offset)
            else:
                strides.append(0)
        grid = np.indices(oshape).reshape(len(oshape), -1)
        pred = offset + np.tensordot(np.asarray(strides), grid, axes=1)
        if not np.array_equal(pred, got):
            return None
        maps.append((oshape, strides, offset))
    # The digit probes only used values 0..255 in each byte; confirm on random data that TFLM
    # really copies values unchanged (a requantizing op would fail here).
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=shape if shape else (1,), dtype=np.int8)
    outs = _run(model, [x], len(op.outputs))
    flat = x.reshape(-1)
    for (oshape, strides, offset), y in zip(maps, outs):
        grid = np.indices(oshape).reshape(len(oshape), -1)
        pred = flat[offset + np.tensordot(np.asarray(strides), grid, axes=1)]
        if not np.array_equal(pred, y.reshape(-1)):
            return None
    return maps


def pad_matches(graph: Graph, op: Op, before: list[int], after: list[int], value: int) -> bool:
    """True if TFLM's PAD/PADV2 output equals numpy's constant pad (`before`/`after` per
    dimension, fill `value`) on random int8 inputs: then nt_pad reproduces it exactly."""
    src = op.inputs[0]
    shape = graph.tensors[src].shape
    model = single_op_model(graph, op, {})
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = rng.integers(-128, 128, size=shape, dtype=np.int8)
        want = np.pad(x, list(zip(before, after)), constant_values=np.int8(value))
        got = _run(model, [x], 1)[0].reshape(want.shape)
        if not np.array_equal(got.astype(np.int8), want):
            return False
    return True


_PREPARE_SCRIPT = """
import sys
from tflite_micro.python.tflite_micro import runtime
data = open(sys.argv[1], "rb").read()
try:
    runtime.Interpreter.from_bytes(data, arena_size=int(sys.argv[2]))
except Exception as e:
    print(str(e).strip() or type(e).__name__, file=sys.stderr)
    sys.exit(3)
"""


def _prepare_in_child(tflite: bytes) -> tuple[int, str]:
    """(exit status, stderr) of creating a TFLM interpreter for `tflite` in a child process
    (negative status: killed by that signal)."""
    import subprocess
    import sys
    import tempfile

    arena = max(10 * len(tflite), 16 << 20)
    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(tflite)
        f.flush()
        r = subprocess.run([sys.executable, "-c", _PREPARE_SCRIPT, f.name, str(arena)],
                           capture_output=True, text=True, check=False, timeout=600)
    return r.returncode, r.stderr


def require_tflm_prepares(tflite: bytes, graph: Graph | None = None) -> None:
    """Raise UserError (one line, TFLM's own reason) if the TFLM reference interpreter cannot
    prepare the model: then there is no reference to be bit-exact with, and the tflm backend
    could not run it either. Runs in a child process: some models make TFLM abort (a failed
    TFLITE_CHECK) instead of returning an error; then each op of `graph` is prepared alone to
    name the one that aborts."""
    from nanocore.errors import UserError

    rc, err = _prepare_in_child(tflite)
    if rc == 0:
        return
    lines = [ln.strip() for ln in err.splitlines()
             if ln.strip() and "TFLM failed to allocate tensors" not in ln]
    # "tensorflow/lite/micro/kernels/x.cc:478 cond was not true." -> "x.cc:478 cond ..."
    why = "; ".join(re.sub(r"^\S*/(?=\S+:\d+ )", "", ln).rstrip(".") for ln in lines[-2:])
    if rc < 0:
        why = f"it aborts with signal {-rc}" + (f": {why}" if why else "")
    why = why or f"exit status {rc}"
    node = re.search(r"Node (\S+) \(number (\d+)\) failed to prepare", err)
    missing = re.search(r"[Dd]idn't find op for builtin opcode '(\w+)'", err)
    what = "TFLM cannot prepare this model"
    if node:
        what = f"op {node.group(1)} (operator {node.group(2)}) fails to prepare in TFLM"
    elif missing:
        what = f"op {missing.group(1)} has no kernel in TFLM"
    elif graph is not None:
        for op in graph.ops:
            try:
                alone = single_op_model(graph, op, {})
            except Exception:  # noqa: BLE001,S112  (cannot cut this op out: generic text)
                continue
            if _prepare_in_child(alone)[0] != 0:
                what = f"op {op.name} (operator {op.index}) fails to prepare in TFLM"
                break
    raise UserError(f"{what} ({why}): there is no reference to be bit-exact with, and neither "
                    "the aot nor the tflm backend can run this model")
