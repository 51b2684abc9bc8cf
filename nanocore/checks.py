"""Checks every command runs before its work starts: output paths that can be written, numeric
options that make sense, JSON without NaN. A failure is a one-line UserError (exit 2).

Output paths are probed, not created: a temporary file is made and removed in the nearest
folder that exists, so a command refused later (wrong model, no device) leaves nothing behind,
and a read-only folder is found before minutes of work instead of after.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import click

from nanocore.errors import UserError


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (a file or a folder)."""
    p = path.absolute()
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _probe_dir(folder: Path, what: str, path: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"cannot write {what} {path}: {folder} is not writable "
                        f"({exc.strerror or exc})") from None


def writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Check that folder ``path`` exists and can be written, or can be created; returns it.

    ``what`` names the option in the message (e.g. ``--out``)."""
    path = Path(path)
    base = _nearest_existing(path)
    if not base.is_dir():
        kind = "a file" if base.exists() else "a broken link"
        raise UserError(f"cannot write {what} {path}: {base} is {kind}, not a folder")
    _probe_dir(base, what, path)
    return path


def writable_file(path: str | Path, what: str = "output file") -> Path:
    """Check that file ``path`` can be written (created, or overwritten); returns it."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {what} {path}: it is a folder")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise UserError(f"cannot write {what} {path}: permission denied")
        _probe_dir(path.absolute().parent, what, path)
        return path
    writable_dir(path.absolute().parent, what)
    return path


def finite(value: Any) -> Any:
    """``value`` with every float NaN or +-Infinity (nested in dicts, lists, tuples) as None:
    JSON has no such numbers, and Python's ``json`` would write non-standard tokens."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps(data: Any, **kwargs: Any) -> str:
    """``json.dumps`` that never writes NaN or Infinity (they become null)."""
    return json.dumps(finite(data), allow_nan=False, **kwargs)


def write_text(path: str | Path, text: str) -> None:
    """Write a text file; a failure is a one-line UserError, not a traceback."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """Parse the TOML file ``path``; a missing or unreadable file (``cannot read <what> ...``) or
    bad TOML is a one-line UserError."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: bad TOML ({e})") from None


class _FiniteFloat(click.ParamType):
    """A finite float that ``accepts``; ``rule`` says which in the error message."""

    rule = ""

    def accepts(self, v: float) -> bool:
        raise NotImplementedError

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(v) or not self.accepts(v):
            self.fail(f"{value!r} must be {self.rule}", param, ctx)
        return v


class PositiveFloat(_FiniteFloat):
    """A finite float > 0 (click's FloatRange lets NaN through: NaN compares false). `name`
    is the option's metavar in --help (e.g. "seconds" for a timeout)."""

    def __init__(self, name: str = "number") -> None:
        self.name = name

    rule = "a finite number > 0"

    def accepts(self, v: float) -> bool:
        return v > 0


class Fraction(_FiniteFloat):
    """A finite float in [0, 1) (e.g. a pruning sparsity)."""

    name = "fraction"
    rule = "in 0 <= x < 1"

    def accepts(self, v: float) -> bool:
        return 0.0 <= v < 1.0
