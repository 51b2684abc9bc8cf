"""The lowered program (steps, constants, aliases, arena plan) and the checks every lowering
shares: int8 operands, TFLM padding and activation ranges, bias folding, shift and accumulator
bounds. The one-line refusals for what the AOT backend cannot reproduce exactly live here."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nanocore.errors import UserError
from trainer.aot import quant
from trainer.aot.graph import Graph, Op, Tensor

ALIGN = 16  # arena offsets: 16 bytes, like TFLM's arena (and enough for word/SIMD loads)


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
    param_defs: list[str] = field(default_factory=list)  # static const kernel parameters (emit)
    tensor_consts: dict[int, str] = field(default_factory=dict)  # constant tensor -> array name

    def const(self, stem: str, ctype: str, values, align: int = 4) -> str:
        name = f"k_{stem}_{len(self.consts)}"
        self.consts.append(Const(name, ctype, np.asarray(values).reshape(-1), align))
        return name

    def const_for_tensor(self, t: int) -> str:
        """The flash array holding constant tensor `t` (an operand read as a buffer), emitted
        once however many steps read it."""
        if t not in self.tensor_consts:
            self.tensor_consts[t] = self.const("tensor", "int8_t",
                                               self.graph.tensors[t].data.view(np.int8), 16)
        return self.tensor_consts[t]

    def root(self, t: int) -> int:
        while t in self.alias:
            t = self.alias[t]
        return t


def tensor(g: Graph, i: int) -> Tensor:
    return g.tensors[i]


def consumers(g: Graph, t: int) -> list[Op]:
    """The ops that read tensor `t`."""
    return [o for o in g.ops if t in o.inputs]


def zero_point(t: Tensor) -> int:
    return int(t.zero_point[0]) if len(t.zero_point) else 0


def scale(t: Tensor) -> float:
    return float(t.scale[0]) if len(t.scale) else 0.0


def require_int8(op: Op, g: Graph, tensors: list[int]) -> None:
    for i in tensors:
        if i >= 0 and tensor(g, i).dtype != "int8":
            raise refuse(op, f"has a {tensor(g, i).dtype} tensor '{tensor(g, i).name}' (int8 only)")
        if i >= 0 and len(tensor(g, i).scale) > 1 and not tensor(g, i).is_constant:
            raise refuse(op, "has a per-channel quantized activation")


def act_range(op: Op, out: Tensor) -> tuple[int, int]:
    act = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
    try:
        return quant.activation_range(act, scale(out), zero_point(out))
    except ValueError:
        raise refuse(op, f"has fused activation {act}") from None


def tflm_padding(stride: int, dil: int, in_size: int, k: int, out_size: int) -> int:
    # TFLM ComputePaddingHeightWidth: the smaller half goes before (offset goes after).
    eff = (k - 1) * dil + 1
    total = max(0, (out_size - 1) * stride + eff - in_size)
    return total // 2


def c_int(v: int) -> str:
    return str(int(v)) if v != -(1 << 31) else "INT32_MIN"


def c_struct(ctype: str, fields: dict[str, object]) -> str:
    body = ", ".join(f".{k} = {v}" for k, v in fields.items())
    return f"{ctype}){{{body}}}"


def fold_bias(op: Op, g: Graph, bias_idx: int, w: np.ndarray, in_zp: int, n: int) -> np.ndarray:
    """bias - in_zp * sum(w over each output channel) (see kernels.h); w is (n, k)."""
    bias = np.zeros(n, dtype=np.int64)
    if bias_idx >= 0:
        bt = tensor(g, bias_idx)
        if bt.dtype != "int32" or bt.data is None:
            raise refuse(op, f"has a {bt.dtype} bias (int32 constant only)")
        bias = bt.data.reshape(-1).astype(np.int64)
    folded = bias - in_zp * w.astype(np.int64).sum(axis=1)
    if np.any(np.abs(folded) >= (1 << 31)):
        raise refuse(op, "has a bias that overflows int32 after folding the input zero point")
    check_accumulator(op, w, bias, folded)
    return folded


def check_shifts(op: Op, shifts) -> None:
    """Refuse requantization shifts outside what TFLM and the kernels compute without undefined
    behaviour (a model whose output scale is tiny next to its input * weight scales)."""
    bad = [int(s) for s in np.asarray(shifts).reshape(-1) if not quant.shift_ok(int(s))]
    if bad:
        raise refuse(op, f"needs a requantization shift of {max(bad, key=abs):+d} bits "
                     f"(only {quant.MIN_SHIFT}..{quant.MAX_SHIFT} are defined in TFLM's "
                     "integer arithmetic)")


def check_accumulator(op: Op, w: np.ndarray, bias: np.ndarray, folded: np.ndarray) -> None:
    """Refuse when an int32 accumulator could overflow for some input (signed overflow is
    undefined in C; TFLM's and our partial sums would differ). w is (n, taps); ours starts at
    the folded bias and adds raw x * w (|x| <= 128, padding taps add in_zp * w), TFLM sums
    (x - in_zp) * w (|x - in_zp| <= 255) and adds the bias last."""
    absw = np.abs(w.astype(np.int64)).sum(axis=1)
    ours = np.abs(folded.astype(np.int64)) + 128 * absw
    tflm = np.abs(bias.astype(np.int64)) + 255 * absw
    if np.any(ours >= (1 << 31)) or np.any(tflm >= (1 << 31)):
        raise refuse(op, "has weights and bias large enough to overflow the int32 accumulator")


def weights(op: Op, g: Graph, i: int) -> Tensor:
    w = tensor(g, i)
    if w.data is None or w.dtype != "int8":
        raise refuse(op, "has non-constant or non-int8 weights")
    if np.any(w.zero_point != 0):
        raise refuse(op, "has asymmetric weights")
    return w



def no_tflm_kernel(op: Op) -> UserError:
    """Neither backend can run it: TFLM itself has no kernel for the op in this form."""
    return UserError(f"op {op.name} (operator {op.index}) has no int8 kernel in TFLM: neither "
                     "the aot nor the tflm backend can run this model; choose another "
                     "activation or layer")
