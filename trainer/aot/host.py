"""Build generated AOT code for the host with gcc (sanitizers on) and run it on many inputs."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from nanocore.errors import UserError
from nanocore.paths import REPO_ROOT, build_dir

# The host runner `check` and the tests build around model_aot.c (reads inputs, writes outputs).
RUNNER_C = REPO_ROOT / "firmware" / "ports" / "aot_runner" / "aot_runner.c"
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")


def portable_kernel_sources() -> list[Path]:
    """The kernel .c files every target compiles: all of firmware/lib/backend_aot/ except the
    Cortex-M DSP variants (*_dsp.c) and the backend.h glue (backend_aot.c)."""
    from trainer.aot import KERNELS_DIR

    return sorted(p for p in KERNELS_DIR.glob("*.c")
                  if not p.name.endswith("_dsp.c") and p.name != "backend_aot.c")


def _kernel_objects(cc: str, flags: list[str]) -> list[Path]:
    """The portable kernels compiled with `flags`, once per content: object files cached under
    build/aot-host-objs/<sha256 of the sources, kernels.h and flags>/ (the kernels dominate the
    build time of a small model; the generated file compiles in a fraction of it)."""
    from trainer.aot import KERNELS_DIR

    srcs = portable_kernel_sources()
    h = hashlib.sha256(" ".join([cc, *flags]).encode())
    for f in [*srcs, *sorted(KERNELS_DIR.glob("*.h"))]:
        h.update(f.name.encode() + f.read_bytes())
    cache = build_dir("aot-host-objs", h.hexdigest()[:16])
    objs = [cache / (src.stem + ".o") for src in srcs]
    if all(o.is_file() for o in objs):
        return objs
    cache.mkdir(parents=True, exist_ok=True)
    for src, obj in zip(srcs, objs, strict=True):
        tmp = obj.with_suffix(f".{os.getpid()}.tmp")
        cmd = [cc, *flags, f"-I{KERNELS_DIR}", "-c", str(src), "-o", str(tmp)]
        r = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"AOT kernel build failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")
        os.replace(tmp, obj)  # atomic: concurrent builds never see half an object
    return objs


def build_runner(model_dir: Path, runner_c: Path, exe: Path | None = None, sanitize: bool = True,
                 extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile model_dir/model_aot.c + the portable kernels + `runner_c` into an executable.
    Returns its path. Warnings are errors: generated code must compile cleanly."""
    from trainer.aot import KERNELS_DIR

    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise UserError("no C compiler (gcc) found; install gcc to build the AOT host runner")
    exe = exe or Path(model_dir) / "aot_runner"
    flags = ["-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
             *(SANITIZE if sanitize else ()), *extra_flags]
    objs = _kernel_objects(cc, flags)
    cmd = [cc, *flags, f"-I{model_dir}", f"-I{KERNELS_DIR}",
           str(Path(model_dir) / "model_aot.c"), *map(str, objs), str(runner_c), "-o", str(exe)]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"AOT host build failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")
    return exe


def run_runner(exe: Path, inputs: np.ndarray, out_bytes: int) -> np.ndarray:
    """Run the runner on int8 inputs (N, in_bytes); returns int8 outputs (N, out_bytes)."""
    inputs = np.ascontiguousarray(inputs, dtype=np.int8)
    n = inputs.shape[0]
    with tempfile.TemporaryDirectory() as td:
        fi, fo = Path(td) / "in.bin", Path(td) / "out.bin"
        fi.write_bytes(inputs.tobytes())
        r = subprocess.run([str(exe), str(fi), str(fo)], check=False, capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise RuntimeError(f"AOT runner failed ({r.returncode}): {r.stderr[-4000:]}")
        out = np.frombuffer(fo.read_bytes(), dtype=np.int8)
    if out.size != n * out_bytes:
        raise RuntimeError(f"AOT runner wrote {out.size} bytes, expected {n * out_bytes}")
    return out.reshape(n, out_bytes)
