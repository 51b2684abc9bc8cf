"""The PlatformIO pre-build script (firmware/scripts/pio_export_model.py) and the committed model
folder: the script's decisions (export only when the .tflite or a generated file changed, which
generated file each backend leaves out), with a fake exporter and with the real one, and a full
regeneration of firmware/lib/model/ compared byte for byte with what is committed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "firmware" / "lib" / "model"
SCRIPT = ROOT / "firmware" / "scripts" / "pio_export_model.py"
needs_model = pytest.mark.skipif(
    not (MODEL_DIR / "manifest.json").is_file(),
    reason="no committed model in firmware/lib/model (python -m trainer export writes it)")


# ------------------------------------------------------------------------ pre-build script

@pytest.fixture(scope="module")
def prebuild():
    spec = importlib.util.spec_from_file_location("pio_export_model", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # outside SCons: defines the functions, runs nothing
    return mod


def _write_manifest(prebuild, model_dir: Path, sha: str) -> None:
    """A manifest as the exporter writes it: the source's sha256 and each generated file's."""
    files = {name: {"sha256": hashlib.sha256((model_dir / name).read_bytes()).hexdigest()}
             for name in prebuild.GENERATED}
    (model_dir / "manifest.json").write_text(json.dumps({"source": {"sha256": sha},
                                                         "files": files}))


def _project(tmp_path: Path, prebuild, sha: str | None) -> tuple[Path, Path]:
    """A project dir with a .tflite and a generated model dir whose manifest records sha."""
    model_dir = tmp_path / prebuild.MODEL_DIR
    model_dir.mkdir(parents=True)
    tflite = model_dir / "model_int8.tflite"
    tflite.write_bytes(b"\x1c\x00\x00\x00TFL3 model bytes")
    for name in prebuild.GENERATED:
        (model_dir / name).write_text(f"// generated {name}\n")
    if sha is not None:
        _write_manifest(prebuild, model_dir, sha)
    return tmp_path, tflite


class FakeExport:
    """Stands in for subprocess.run of `python -m trainer export`; records calls and writes
    the manifest like the real exporter (or fails with a one-line error)."""

    def __init__(self, prebuild, fail: str | None = None):
        self.prebuild = prebuild
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, cmd, cwd, env, capture_output, text):
        self.calls.append(cmd)
        assert env["TF_USE_LEGACY_KERAS"] == "1"
        if self.fail:
            return subprocess.CompletedProcess(cmd, 2, "", f"warning\nerror: {self.fail}\n")
        model, out = Path(cmd[4]), Path(cmd[6])
        sha = hashlib.sha256(model.read_bytes()).hexdigest()
        for name in self.prebuild.GENERATED:
            (out / name).write_text(f"// exported {name} from {sha}\n")
        _write_manifest(self.prebuild, out, sha)
        return subprocess.CompletedProcess(cmd, 0, "", "")


def test_prebuild_skips_export_when_model_unchanged(tmp_path, prebuild):
    project, tflite = _project(tmp_path, prebuild, sha=None)
    sha = hashlib.sha256(tflite.read_bytes()).hexdigest()
    _write_manifest(prebuild, project / prebuild.MODEL_DIR, sha)
    fake = FakeExport(prebuild)
    assert prebuild.ensure_model(project, None, {}, run=fake) is False
    assert fake.calls == []


def test_prebuild_exports_a_changed_model_once(tmp_path, prebuild):
    project, tflite = _project(tmp_path, prebuild, sha="0" * 64)
    fake = FakeExport(prebuild)
    env = {"NANO_TFLM_PYTHON": "/opt/py/bin/python"}
    assert prebuild.ensure_model(project, None, env, run=fake) is True
    assert fake.calls == [["/opt/py/bin/python", "-m", "trainer", "export", str(tflite),
                           "--out", str(project / prebuild.MODEL_DIR)]]
    assert prebuild.ensure_model(project, None, env, run=fake) is False  # now up to date
    assert len(fake.calls) == 1


def test_prebuild_selects_env_var_then_option(tmp_path, prebuild):
    project, _ = _project(tmp_path, prebuild, sha="0" * 64)
    other = tmp_path / "mine.tflite"
    other.write_bytes(b"\x1c\x00\x00\x00TFL3 another model")
    assert prebuild.selected_model(project, "mine.tflite", {}) == other
    assert prebuild.selected_model(project, None, {"NANO_TFLM_MODEL": str(other)}) == other
    with pytest.raises(prebuild.ExportError, match="NANO_TFLM_MODEL"):
        prebuild.selected_model(project, None, {"NANO_TFLM_MODEL": str(tmp_path / "no.tflite")})
    # A missing generated file forces an export even when the manifest matches.
    (project / prebuild.MODEL_DIR / "model_meta.h").unlink()
    assert prebuild.needs_export(other, project / prebuild.MODEL_DIR)


@pytest.mark.parametrize("name", ["model_aot.c", "model_aot.h", "model_meta.h"])
def test_prebuild_reexports_a_missing_or_stale_generated_file(tmp_path, prebuild, name):
    """model_aot.{h,c} are required like the other generated files, and a file whose bytes no
    longer match the sha256 the manifest recorded (edited, or left from an older export) makes
    the script export again, although the .tflite did not change."""
    project, tflite = _project(tmp_path, prebuild, sha=None)
    model_dir = project / prebuild.MODEL_DIR
    _write_manifest(prebuild, model_dir, hashlib.sha256(tflite.read_bytes()).hexdigest())
    assert not prebuild.needs_export(tflite, model_dir)
    (model_dir / name).write_text("// edited by hand\n")
    assert prebuild.needs_export(tflite, model_dir)
    fake = FakeExport(prebuild)
    assert prebuild.ensure_model(project, None, {}, run=fake) is True
    assert not prebuild.needs_export(tflite, model_dir)
    (model_dir / name).unlink()
    assert prebuild.needs_export(tflite, model_dir)


def test_prebuild_reports_exporter_refusal_in_one_line(tmp_path, prebuild):
    project, _ = _project(tmp_path, prebuild, sha="0" * 64)
    fake = FakeExport(prebuild, fail="FULLY_CONNECTED weights are per-channel")
    with pytest.raises(prebuild.ExportError) as info:
        prebuild.ensure_model(project, None, {}, run=fake)
    assert "\n" not in str(info.value)
    assert str(info.value).endswith("error: FULLY_CONNECTED weights are per-channel")


def test_prebuild_export_command_matches_trainer_cli(prebuild):
    """The CLI call the script makes is one `python -m trainer export` accepts."""
    from click.testing import CliRunner

    from nanolab import cli

    if "export" not in cli.main.commands:
        pytest.skip("trainer CLI has no export command in this checkout")
    cmd = prebuild.export_command("python", Path("m.tflite"), Path("out"))
    result = CliRunner().invoke(cli.main, [*cmd[3:], "--help"])
    assert result.exit_code == 0, result.output
    assert "--out" in result.output


def test_prebuild_leaves_out_the_other_backends_source(prebuild):
    assert prebuild.skipped_model_source([("F_CPU", "64000000L"), "NANO_TFLM_SERIAL1"]) == \
        "model_aot.c"
    assert prebuild.skipped_model_source(["NANO_TFLM_BACKEND_AOT"]) == "model_data.cc"
    assert prebuild.skipped_model_source(None) == "model_aot.c"


@needs_model
def test_prebuild_with_the_real_exporter_reproduces_the_committed_files(tmp_path, prebuild):
    """End to end: the script runs `python -m trainer export` on the committed .tflite in a
    fresh project; every file it generates (model_aot.{h,c} included) is byte-identical to the
    committed one, and a second build does not export again."""
    (tmp_path / prebuild.MODEL_DIR).mkdir(parents=True)
    shutil.copyfile(MODEL_DIR / "model_int8.tflite", tmp_path / "mine.tflite")
    env = {"NANO_TFLM_PYTHON": sys.executable, "PATH": "/usr/bin:/bin",
           "HOME": str(Path.home())}
    assert prebuild.ensure_model(tmp_path, "mine.tflite", env) is True
    out = tmp_path / prebuild.MODEL_DIR
    for name in prebuild.GENERATED:
        assert (out / name).read_bytes() == (MODEL_DIR / name).read_bytes(), name
    assert prebuild.ensure_model(tmp_path, "mine.tflite", env) is False


@needs_model
def test_export_regenerates_every_committed_model_file(tmp_path):
    """Every committed file in firmware/lib/model/ comes out of the normal export of the
    committed model_int8.tflite (all backends, the default self-test images), byte for byte:
    the generated C, model_aot.{h,c} included, and manifest.json. Only the manifest's recorded
    inputs (metrics and calibration facts, which the .tflite does not hold) are passed back in."""
    from trainer.export import export

    committed = json.loads((MODEL_DIR / "manifest.json").read_text())
    assert committed["selftest"]["source"].startswith("MNIST test images")  # the default
    shutil.copyfile(MODEL_DIR / "model_int8.tflite", tmp_path / "model_int8.tflite")
    out = tmp_path / "model"
    export(tmp_path / "model_int8.tflite", out, metrics=committed["metrics"],
           calibration=committed["calibration"])
    names = sorted(p.name for p in MODEL_DIR.iterdir())  # a stray file would be built too
    assert {"model_aot.c", "model_aot.h", "manifest.json", "model_selftest.h"} <= set(names)
    assert sorted(p.name for p in out.iterdir()) == names
    for name in names:
        assert (out / name).read_bytes() == (MODEL_DIR / name).read_bytes(), name


