"""What the generator checks its plan against, rather than restating: the kernel headers'
scratch-size formulas (NT_*_SCRATCH_BYTES, the one definition, read here and evaluated for each
kernel call the lowering plans) and the TFLM reference interpreter's arena (the bound the AOT
arena must stay within)."""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

import numpy as np

from nanocore.paths import REPO_ROOT

log = logging.getLogger(__name__)

# The C kernels the generated code links against (kernels.h and one .c file per op and variant).
KERNELS_DIR = REPO_ROOT / "firmware" / "lib" / "backend_aot"
# Headers whose NT_*_SCRATCH_BYTES macros size the scratch the generator plans for a call.
SCRATCH_HEADERS = ("kernels.h", "kernels_sparse.h")

_DEFINE = re.compile(r"^#define\s+(NT_\w+_SCRATCH_BYTES)\(([^)]*)\)\s+(.+?)\s*$", re.MULTILINE)
_EXPR_OK = re.compile(r"^[\w\s()*+]*$")  # what a scratch formula may use once cast-free


@functools.cache
def scratch_formulas(kernels_dir: Path = KERNELS_DIR) -> dict[str, tuple[tuple[str, ...], str]]:
    """{macro name: (parameter names, Python expression)} from the headers in SCRATCH_HEADERS.
    The C text is kept as is but for `(size_t)` casts and `u` suffixes (sizes are non-negative
    ints, so the Python value equals C's size_t value). Raises ValueError on a formula that uses
    anything else, so a new kind of macro is noticed rather than misread."""
    out: dict[str, tuple[tuple[str, ...], str]] = {}
    for name in SCRATCH_HEADERS:
        text = (Path(kernels_dir) / name).read_text()
        for macro, params, body in _DEFINE.findall(text):
            expr = re.sub(r"\(size_t\)", "", body)
            expr = re.sub(r"\b(\d+)[uU]\b", r"\1", expr)
            args = tuple(a.strip() for a in params.split(",") if a.strip())
            words = set(re.findall(r"[A-Za-z_]\w*", expr))
            if not _EXPR_OK.match(expr) or not words <= set(args):
                raise ValueError(f"{name}: {macro} is not a sum of products of its "
                                 f"arguments: {body}")
            out[macro] = (args, expr)
    return out


def scratch_bytes(macro: str, *args: int) -> int:
    """Bytes of scratch macro `macro` (e.g. "NT_CONV_SCRATCH_BYTES") for integer `args`, by the
    formula in the kernel header."""
    params, expr = scratch_formulas()[macro]
    if len(args) != len(params):
        raise TypeError(f"{macro} takes {len(params)} arguments, got {len(args)}")
    env = {p: int(a) for p, a in zip(params, args)}
    return int(eval(expr, {"__builtins__": {}}, env))  # checked: ints, + * ( )


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
