"""Build entry points for the benchmark firmware: host (POSIX, sanitizers) and QEMU images.

Each function runs ``make`` into ``build/`` and returns the path of the built executable or
ELF. ``make`` re-uses an up-to-date build, so calling these before every run costs a fraction
of a second. Builds of different model folders go to different output folders (the default
model's to ``build/host/`` and ``build/qemu/``), so switching models never mixes objects.

A model folder is what ``python -m trainer export`` writes: ``model_meta.h``,
``model_selftest.h``, ``model_aot.h`` and ``model_aot.c`` (the committed default model lives in
``firmware/lib/model/``).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import shutil
import subprocess
from pathlib import Path

from nanocore.errors import UserError
from nanocore.paths import BUILD_DIR, DEFAULT_MODEL_DIR, REPO_ROOT

log = logging.getLogger(__name__)

REPO = REPO_ROOT
HOST_DIR = REPO / "firmware" / "ports" / "host"
QEMU_DIR = REPO / "firmware" / "ports" / "qemu"
STANDIN_DIR = HOST_DIR / "standin"
MODEL_FILES = ("model_meta.h", "model_selftest.h", "model_aot.h", "model_aot.c")
_MAKE_TIMEOUT_S = 600


def _model_dir(model_dir: str | Path | None) -> Path:
    return DEFAULT_MODEL_DIR if model_dir is None else Path(model_dir).resolve()


def _out_dir(kind: str, model_dir: Path) -> Path:
    """build/<kind> for the default model, build/<kind>-<8 hex of the folder path> otherwise."""
    if model_dir == DEFAULT_MODEL_DIR:
        return BUILD_DIR / kind
    key = hashlib.sha256(str(model_dir).encode()).hexdigest()[:8]
    return BUILD_DIR / f"{kind}-{key}"


def check_model_dir(model_dir: str | Path | None = None, files: tuple[str, ...] = MODEL_FILES
                    ) -> Path:
    """Return the model folder (default: ``firmware/lib/model``) after checking it holds the
    exported files. Raises ``UserError`` naming the first missing file."""
    path = _model_dir(model_dir)
    for name in files:
        if not (path / name).is_file():
            raise UserError(f"{path / name} is missing: export the model first "
                            "(python -m trainer export MODEL.tflite --out DIR)")
    return path


def _require_tool(tool: str) -> None:
    if shutil.which(tool) is None:
        raise UserError(f"{tool} not found: run `make setup` (Debian packages gcc, "
                        "gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm)")


def _make(args: list[str], what: str, out: Path) -> Path:
    """Run make under a lock (parallel test sessions share build/); return ``out``."""
    _require_tool("make")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with open(BUILD_DIR / ".firmware-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            proc = subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, check=False,
                                  capture_output=True, text=True, timeout=_MAKE_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise UserError(f"building {what} took over {_MAKE_TIMEOUT_S} s: "
                            f"rerun make {' '.join(args)}") from e
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if proc.returncode != 0 or not out.is_file():
        log.error("make %s failed:\n%s\n%s", " ".join(args), proc.stdout, proc.stderr)
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower()]
        first = errors[0] if errors else (lines[-1] if lines else "no output")
        raise UserError(f"building {what} failed: {first[:300]} (rerun: make {' '.join(args)})")
    if "Nothing to be done" not in proc.stdout and "is up to date" not in proc.stdout:
        log.info("built %s", out)
    return out


def build_host(model_dir: str | Path | None = None, *, sanitize: bool = True,
               standin: bool = False, defines: tuple[str, ...] = ()) -> Path:
    """Build the host firmware (``nano_tflm_host``: frames on stdin/stdout, ``--tcp PORT`` to
    listen on 127.0.0.1) for a model folder (default: the committed model) and return the
    executable's path. ``sanitize`` builds with ``-fsanitize=address,undefined`` (the default;
    sanitizer reports go to stderr and end the process). ``standin=True`` builds the TEST-ONLY
    stand-in backend of ``firmware/ports/host/standin`` instead of a model (``model_dir`` is
    ignored). ``defines`` are extra C macros (``NAME`` or ``NAME=VALUE``), e.g.
    ``("NANO_TFLM_SELFTEST_AT_BOOT",)``; each set builds into its own folder."""
    _require_tool("gcc")
    if standin:
        mdir = STANDIN_DIR
        out_dir = BUILD_DIR / "host-standin"
        backend = "standin"
    else:
        mdir = check_model_dir(model_dir)
        out_dir = _out_dir("host", mdir)
        backend = "aot"
    if not sanitize:
        out_dir = out_dir.with_name(out_dir.name + "-nosan")
    if defines:
        key = hashlib.sha256(" ".join(sorted(defines)).encode()).hexdigest()[:8]
        out_dir = out_dir.with_name(f"{out_dir.name}-d{key}")
    args = ["-C", str(HOST_DIR), f"BACKEND={backend}", f"MODEL_DIR={mdir}", f"BUILD={out_dir}",
            f"SANITIZE={'address,undefined' if sanitize else ''}", "CC=gcc",
            "EXTRA_CFLAGS=" + " ".join(f"-D{d}" for d in defines)]
    return _make(args, "the host firmware", out_dir / "nano_tflm_host")


def build_protocol_test() -> Path:
    """Build the C protocol test program (``test_protocol``, ASan/UBSan) and return its path."""
    _require_tool("gcc")
    out_dir = BUILD_DIR / "host"
    return _make(["-C", str(HOST_DIR), "test_protocol", f"BUILD={out_dir}", "CC=gcc"],
                 "the protocol test program", out_dir / "test_protocol")


def build_qemu(model_dir: str | Path | None = None, *, selftest: bool = False,
               force_c99: bool = False) -> Path:
    """Build the benchmark image for QEMU ``mps2-an386`` (Cortex-M4F; core + AOT backend +
    the model) and return the ELF path, e.g. ``build/qemu/nano_tflm.elf``.

    ``selftest`` adds the self-test at boot (``selftest: pass N/N`` after the boot line);
    ``force_c99`` uses the portable C99 kernels instead of the DSP ones. Run it with
    ``qemu-system-arm -M mps2-an386 -nographic -monitor none -icount shift=0 -serial stdio
    -kernel ELF`` (``nanobench.emulate`` does)."""
    _require_tool("arm-none-eabi-gcc")
    mdir = check_model_dir(model_dir)
    name = "nano_tflm" + ("_selftest" if selftest else "") + ("_c99" if force_c99 else "")
    out = _out_dir("qemu", mdir) / f"{name}.elf"
    args = ["-f", str(QEMU_DIR / "firmware.mk"), f"MODEL_DIR={mdir}", f"OUT={out}",
            f"SELFTEST={int(selftest)}", f"FORCE_C99={int(force_c99)}"]
    return _make(args, "the QEMU image", out)


def clang() -> str:
    """The clang for libFuzzer builds, or a UserError saying how to get it."""
    exe = shutil.which("clang")
    if exe is None:
        raise UserError("clang not found: the libFuzzer harness needs Debian's clang "
                        "(sudo apt-get install clang)")
    return exe


def build_fuzzer(model_dir: str | Path | None = None) -> Path:
    """Build ``fuzz_core``, the libFuzzer harness of ``firmware/ports/host/fuzz_core.c``
    (libFuzzer + ASan + UBSan, clang; coverage only in core.c and protocol.c) for the model
    folder (default: the committed model); returns its path."""
    cc = clang()
    mdir = check_model_dir(model_dir)
    out_dir = _out_dir("host-fuzz", mdir)
    out_dir.mkdir(parents=True, exist_ok=True)
    allow = out_dir / "coverage-allowlist.txt"
    # clang instruments a function only when its file (src:) and its name (fun:) both match.
    text = "src:*/benchcore/core.c\nsrc:*/benchcore/protocol.c\nfun:*\n"
    if not allow.is_file() or allow.read_text() != text:  # a new mtime would force a rebuild
        allow.write_text(text)
    return _make(["-C", str(HOST_DIR), "fuzz", f"MODEL_DIR={mdir}", f"BUILD={out_dir}",
                  f"FUZZ_CC={cc}", f"FUZZ_ALLOWLIST={allow}"],
                 "the libFuzzer harness", out_dir / "fuzz_core")
