"""Kernel scratch sizes: defined once, as the NT_*_SCRATCH_BYTES macros of the kernel headers.

The generator reads and evaluates those macros (trainer.aot.verify) when it plans the arena.
These tests tie the two sides with the C compiler as the judge: the Python evaluation of every
macro equals what gcc computes from the header, and the scratch planned for each kernel call
of real models equals the macros gcc evaluates on that call's emitted parameters.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from trainer.aot.emit import emit_c
from trainer.aot.graph import load
from trainer.aot.plan import build_program
from trainer.aot.verify import KERNELS_DIR, scratch_bytes, scratch_formulas

ROOT = Path(__file__).resolve().parents[1]
MODELS = [ROOT / "firmware" / "lib" / "model" / "model_int8.tflite",
          ROOT / "tests" / "data" / "aot_counterexamples" / "seed142.tflite",
          ROOT / "tests" / "data" / "aot_counterexamples" / "seed146.tflite"]

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def _c_values(exprs: list[str], tmp: Path) -> list[int]:
    """Each C expression (over the kernel headers' macros) as gcc computes it, as size_t."""
    body = "".join(f'    printf("%zu\\n", (size_t)({e}));\n' for e in exprs)
    src = tmp / "scratch_values.c"
    src.write_text('#include <stdio.h>\n#include "kernels.h"\n#include "kernels_sparse.h"\n\n'
                   f"int main(void) {{\n{body}    return 0;\n}}\n")
    exe = tmp / "scratch_values"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", f"-I{KERNELS_DIR}", str(src), "-o",
                    str(exe)], check=True, capture_output=True, text=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return [int(v) for v in out.split()]


def test_every_scratch_macro_evaluates_as_in_c(tmp_path: Path) -> None:
    formulas = scratch_formulas()
    # The five the kernels use today (a renamed or dropped one must be noticed here).
    assert {"NT_FC_SCRATCH_BYTES", "NT_FC_SPARSE_SCRATCH_BYTES", "NT_CONV_SCRATCH_BYTES",
            "NT_CONV_POOL_SCRATCH_BYTES", "NT_CONV_C1_SCRATCH_BYTES",
            "NT_DW_SCRATCH_BYTES"} <= set(formulas)
    rng = np.random.default_rng(7)
    cases = []
    for name, (params, _) in sorted(formulas.items()):
        for _ in range(6):
            cases.append((name, tuple(int(v) for v in rng.integers(0, 600, len(params)))))
        cases.append((name, (1,) * len(params)))
    want = _c_values([f"{n}({', '.join(map(str, a))})" for n, a in cases], tmp_path)
    got = [scratch_bytes(n, *a) for n, a in cases]
    bad = [(c, g, w) for c, g, w in zip(cases, got, want) if g != w]
    assert not bad, f"Python evaluation differs from gcc's (case, python, c): {bad[:5]}"


def _fields(param_def: str) -> dict[str, str]:
    return dict(re.findall(r"\.(\w+) = ([^,}]+)", param_def))


def _kernel_contract(op: str, ptype: str, f: dict[str, str]) -> str:
    """The scratch a kernel call may use, as a C expression over the headers' macros: the sum
    of the terms for the paths the kernel can take with these parameters (kernels.h)."""
    if ptype == "nt_fc_params":
        return f"NT_FC_SCRATCH_BYTES({f['in_features']})"
    if ptype == "nt_fc_sparse_params":
        return f"NT_FC_SPARSE_SCRATCH_BYTES({f['in_features']})"
    if ptype == "nt_conv_params" and op == "DEPTHWISE_CONV_2D":
        return "NT_DW_SCRATCH_BYTES()"
    if ptype == "nt_conv_params":
        pool = int(f.get("pool_h", 0))
        c1 = int(f["in_c"]) == 1 and int(f["k_w"]) == 5
        return (f"NT_CONV_SCRATCH_BYTES({f['k_h']}, {f['k_w']}, {f['in_c']})"
                + (f" + NT_CONV_POOL_SCRATCH_BYTES({f['out_c']})" if pool else "")
                + (f" + NT_CONV_C1_SCRATCH_BYTES({f['out_c']}, {f['k_h']})" if c1 else ""))
    return "0"


def _programs():
    """Lowered programs of the default model and the counterexample models (dense and with the
    default model's first FC made block-sparse), emitted so each call's parameters exist."""
    for path in MODELS:
        for sparse in (False, True):
            g = load(path.read_bytes())
            if sparse and path == MODELS[0]:
                fc = next(op for op in g.ops if op.name == "FULLY_CONNECTED")
                t = g.tensors[fc.inputs[1]]
                t.data = t.data.copy()
                t.data[:, : t.data.shape[1] // 2] = 0  # half the blocks empty: block-sparse wins
            p, _ = build_program(g, None, sparse)  # fused, with scratch: every term
            emit_c(p, "0" * 64)
            yield f"{path.name} sparse={sparse}", p


def test_planned_scratch_is_the_kernel_header_formula(tmp_path: Path) -> None:
    rows = []
    for label, p in _programs():
        for s, st in enumerate(p.steps):
            defs = [d for d in p.param_defs if f" k_p{s}_" in d]
            ptype = defs[0].split()[2] if defs else ""
            expr = _kernel_contract(st.op.name, ptype, _fields(defs[0]) if defs else {})
            rows.append((label, s, st.op.name, ptype, expr, st.scratch))
    assert any(r[3] == "nt_fc_sparse_params" for r in rows)  # every kind of call is covered
    assert any(r[2] == "DEPTHWISE_CONV_2D" for r in rows)
    assert any("POOL" in r[4] for r in rows) and any("C1" in r[4] for r in rows)
    want = _c_values([r[4] for r in rows], tmp_path)
    bad = [(r[0], r[1], r[2], r[5], w) for r, w in zip(rows, want) if r[5] != w]
    assert not bad, f"planned scratch differs from the header's (model, step, op, plan, C): {bad}"
