"""PlatformIO pre-build script: keep firmware/lib/model/ in step with the selected .tflite.

platformio.ini runs it before every build (`extra_scripts = pre:...`). It

1. picks the model: the `NANO_TFLM_MODEL` environment variable, else the env's
   `custom_nano_tflm_model` option (default: the committed firmware/lib/model/model_int8.tflite);
2. compares the model's sha256 with `source.sha256` in firmware/lib/model/manifest.json and, only
   if they differ (or a generated file, model_aot.{h,c} included, is missing or no longer has the
   sha256 the manifest recorded for it), runs `python -m trainer export MODEL --out
   firmware/lib/model` with the project's Python (`.venv/bin/python`, or `NANO_TFLM_PYTHON`), so
   a user who trained a new model only rebuilds, and the committed default builds without Python;
3. tells the build which generated backend file to leave out: the TFLM envs do not compile
   model_aot.c (it needs backend_aot, which they do not link) and the AOT env does not compile
   model_data.cc.

A model the TFLM backend cannot run exactly is refused by the exporter with a one-line reason,
which stops the build.

The functions above the SCons part are plain Python, so test_platformio.py exercises them
without PlatformIO.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

MODEL_DIR = Path("firmware") / "lib" / "model"
DEFAULT_MODEL = MODEL_DIR / "model_int8.tflite"
OPTION = "custom_nano_tflm_model"
ENV_MODEL = "NANO_TFLM_MODEL"
ENV_PYTHON = "NANO_TFLM_PYTHON"
# Files every build needs from the model directory (both backends share the metadata; the TFLM
# envs compile model_data.cc, the AOT env model_aot.c).
GENERATED = ("model_meta.h", "model_selftest.h", "model_data.h", "model_data.cc", "model_aot.h",
             "model_aot.c")
REQUIRED = ("manifest.json", *GENERATED)


class ExportError(Exception):
    """The model could not be exported; the message is one line for the user."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def selected_model(project_dir: Path, option: str | None, environ: dict[str, str]) -> Path:
    """The .tflite to build: $NANO_TFLM_MODEL, else the ini option, else the committed default.

    Relative paths are taken from the project directory. Raises ExportError if it is missing.
    """
    raw = environ.get(ENV_MODEL) or option or str(DEFAULT_MODEL)
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = project_dir / path
    if not path.is_file():
        source = ENV_MODEL if environ.get(ENV_MODEL) else OPTION
        raise ExportError(f"model {path} (from {source}) not found; train and quantize one first, "
                          f"or point {ENV_MODEL} at an int8 .tflite")
    return path


def needs_export(model: Path, model_dir: Path) -> bool:
    """True unless model_dir holds every generated file, its manifest names model's sha256, and
    each generated file still has the sha256 the manifest recorded when it was written (a file
    edited, truncated or left from another export is stale)."""
    if any(not (model_dir / name).is_file() for name in REQUIRED):
        return True
    try:
        manifest = json.loads((model_dir / "manifest.json").read_text())
        recorded = manifest["source"]["sha256"]
        files = {name: manifest["files"][name]["sha256"] for name in GENERATED}
    except (OSError, ValueError, KeyError, TypeError):
        return True
    if recorded != sha256_file(model):
        return True
    return any(sha256_file(model_dir / name) != sha for name, sha in files.items())


def find_python(project_dir: Path, environ: dict[str, str]) -> str:
    """The interpreter that has the trainer package: $NANO_TFLM_PYTHON, the project's .venv,
    else python3 from PATH (PlatformIO's own Python has no TensorFlow)."""
    if environ.get(ENV_PYTHON):
        return environ[ENV_PYTHON]
    venv = project_dir / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else "python3"


def export_command(python: str, model: Path, model_dir: Path) -> list[str]:
    """The trainer CLI call that regenerates model_dir from model (all backends)."""
    return [python, "-m", "trainer", "export", str(model), "--out", str(model_dir)]


def ensure_model(project_dir: Path, option: str | None, environ: dict[str, str],
                 run=subprocess.run) -> bool:
    """Regenerate firmware/lib/model/ if the selected model changed. Returns True if it ran.

    Raises ExportError with the exporter's own one-line message when the export fails.
    """
    model = selected_model(project_dir, option, environ)
    model_dir = project_dir / MODEL_DIR
    if not needs_export(model, model_dir):
        return False
    cmd = export_command(find_python(project_dir, environ), model, model_dir)
    sys.stderr.write(f"nano-tflm: {model.name} changed, regenerating {MODEL_DIR}/\n")
    child_env = dict(environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    try:
        proc = run(cmd, cwd=str(project_dir), env=child_env, capture_output=True, text=True)
    except OSError as exc:
        raise ExportError(f"cannot run {cmd[0]} ({exc.strerror}); set {ENV_PYTHON} to the "
                          "Python that has nano-tflm installed (make setup)") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit code {proc.returncode}"
        raise ExportError(f"export of {model} failed: {reason}")
    if needs_export(model, model_dir):
        raise ExportError(f"export of {model} did not update {model_dir / 'manifest.json'}")
    return True


def skipped_model_source(cppdefines) -> str:
    """The generated source this env must not compile: model_data.cc for the AOT backend
    (NANO_TFLM_BACKEND_AOT defined), else model_aot.c."""
    names = set()
    for item in cppdefines or ():
        names.add(item[0] if isinstance(item, (tuple, list)) else str(item).split("=")[0])
    return "model_data.cc" if "NANO_TFLM_BACKEND_AOT" in names else "model_aot.c"


def middleware(env, node):  # pragma: no cover - called by PlatformIO's CollectBuildFiles
    """Drops the generated model source this env's backend does not use. Runs when each
    library's files are collected, when CPPDEFINES already holds the env's build_flags."""
    if os.path.basename(node.srcnode().get_path()) == skipped_model_source(env.get("CPPDEFINES")):
        return None
    return node


def _scons_main(env) -> None:  # pragma: no cover - runs inside PlatformIO only
    project_dir = Path(env.subst("$PROJECT_DIR"))
    try:
        option = env.GetProjectOption(OPTION, None)
        ensure_model(project_dir, option, dict(os.environ))
    except ExportError as exc:
        sys.stderr.write(f"error: {exc}\n")
        env.Exit(2)
    env.AddBuildMiddleware(middleware, "*model*model_*")


try:  # SCons provides Import() when PlatformIO runs this file; plain imports (tests) do not.
    Import("env")  # type: ignore[name-defined]
except NameError:
    pass
else:
    _scons_main(env)  # type: ignore[name-defined]  # noqa: F821
