"""pytest plugin (entry point ``pytest11`` in pyproject.toml) that makes the README's board check,
``pytest -m hardware --port /dev/ttyACM0``, work as written.

pytest reads the command line before it loads any conftest. With ``--port`` declared only in
the conftest.py, a device path that exists (``/dev/ttyACM0`` with the board plugged in) is
taken for a test path: ``/dev`` becomes the rootdir, the project's settings in pyproject.toml
(markers, testpaths) are not found, the conftest never loads and ``--port`` is an unknown
argument. An installed plugin declares the option before the full parse; but pytest has already
chosen the rootdir by then (from the same misread path), so ``pytest_load_initial_conftests``
chooses it again without the port's value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: Any) -> None:
    """``--port URL``: the board for the ``hardware`` tests (default: none, they skip)."""
    parser.addoption("--port", default=None,
                     help="pyserial URL of a board flashed with the default firmware "
                          "(for -m hardware), e.g. /dev/ttyACM0")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: Any, args: list[str], parser: Any) -> None:
    """Redo the rootdir/config-file choice when it came from ``--port``'s value alone."""
    ns = early_config.known_args_namespace
    port = getattr(ns, "port", None)
    if not port or early_config.inipath is not None or ns.inifilename or ns.rootdir:
        return
    if not Path(port).exists():
        return  # a URL or an absent device never misleads pytest
    try:  # pytest internals (pinned pytest 9.2): if they change, keep pytest's own choice
        from _pytest.config.findpaths import determine_setup

        rootpath, inipath, inicfg, _ = determine_setup(
            inifile=None, override_ini=ns.override_ini, args=ns.file_or_dir,
            rootdir_cmd_arg=None, invocation_dir=early_config.invocation_params.dir)
        if inipath is None:
            return
        early_config._rootpath = rootpath
        early_config._inipath = inipath
        early_config._inicfg = inicfg
        early_config._inicache.clear()
    except (ImportError, AttributeError, TypeError):
        return
    parser.extra_info["rootdir"] = str(rootpath)
    parser.extra_info["inifile"] = str(inipath)
    if ns.confcutdir == str(Path(port).parent):  # pytest's default, derived from the port
        ns.confcutdir = str(inipath.parent)
