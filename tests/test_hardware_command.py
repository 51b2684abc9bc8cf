"""The README's board check, `pytest -m hardware --port /dev/ttyACM0`, run exactly as written
against the host build of the firmware behind a pseudo-terminal (the only change: the pty's
path instead of /dev/ttyACM0). The path exists, as a plugged-in board's does, which is what
used to make pytest take it for a test path (nanobench/pytest_plugin.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tty
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCUMENTED = "pytest -m hardware --port /dev/ttyACM0"


def test_readme_documents_the_command():
    assert DOCUMENTED in README.read_text()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
@pytest.mark.skipif(not (ROOT / "firmware/lib/model/manifest.json").is_file(),
                    reason="no committed model")
def test_documented_hardware_command_passes_on_a_pty(tmp_path):
    from nanobench import firmware

    exe = firmware.build_host(sanitize=False)
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line editing: the pty carries frames byte for byte
    tty_path = os.ttyname(slave)
    stderr = (tmp_path / "firmware.stderr").open("wb")
    proc = subprocess.Popen([str(exe)], stdin=master, stdout=master, stderr=stderr)
    os.close(master)
    try:
        bin_dir = Path(sys.executable).parent
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.pop("PYTEST_ADDOPTS", None)
        cmd = DOCUMENTED.replace("/dev/ttyACM0", tty_path).split()
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=900, check=False)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.close(slave)
        stderr.close()
    out = r.stdout + r.stderr
    assert "unrecognized arguments" not in out, (
        out[-1500:] + "\n(is the package installed? `make venv` registers the pytest plugin)")
    assert r.returncode == 0, out[-3000:]
    assert f"rootdir: {ROOT}" in out and "configfile: pyproject.toml" in out
    assert " 1 passed" in out and "skipped" not in out
