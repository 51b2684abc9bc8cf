"""The AOT generator's entry: .tflite bytes -> lower (lower.py) -> plan (plan.py) -> emit
(emit.py) -> model_aot.{h,c}, checked against the kernel headers and TFLM (verify.py)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from nanocore.errors import UserError
from trainer.aot import probe
from trainer.aot.emit import emit_c
from trainer.aot.plan import build_program
from trainer.aot.verify import tflm_arena_bytes

log = logging.getLogger(__name__)


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
        arena_limit = partial(tflm_arena_bytes, tflite_bytes)  # asked once the model lowered
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
    return AotResult(hp, cp, p.arena_bytes, const_bytes,
                     tuple(sorted({s.op.name for s in p.steps})),
                     sum(s.macs for s in p.steps), sha, tuple(s.fused for s in p.steps if s.fused),
                     limit)
