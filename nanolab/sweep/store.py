"""Run storage: one JSON record per finished (point, seed), written atomically, keyed.

``<out>/runs/<key>-s<seed>.json`` is the record (``key``: the hash of the point's options), with
``.tflite`` (the int8 model, written before its record), ``.latency.json`` (on-device latency),
``.aot.json`` (AOT flash and instructions) and ``.error.txt`` (a failed run's traceback) beside
it. Every file is written to a temporary name in the same folder and renamed, so a reader (or a
resumed sweep) never sees a half-written file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nanocore import atomic
from nanocore.checks import dumps as json_dumps_finite
from nanolab.sweep.study import Point

RECORD_VERSION = 1


def run_path(out_dir: Path, key: str, seed: int, suffix: str = ".json") -> Path:
    """Where the record (or, with ``suffix=".tflite"``, the int8 model) of a run lives."""
    return Path(out_dir) / "runs" / f"{key}-s{seed}{suffix}"


def write_bytes_atomic(path: Path, blob: bytes) -> None:
    """Write bytes via a temporary file, fsync and a rename (nanocore.atomic)."""
    atomic.write_bytes_atomic(path, blob, fsync=True)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` via a temporary file in the same directory, fsync and a rename, so
    a reader (or a resumed sweep) never sees a half-written file."""
    # NaN/Infinity as null; no final newline (the records' bytes as before).
    atomic.write_text_atomic(path, json_dumps_finite(obj, indent=1, sort_keys=True), fsync=True)


def load_record(out_dir: Path, point: Point, seed: int) -> dict[str, Any] | None:
    """The stored record of a finished run, or None (missing, unreadable or other options)."""
    path = run_path(out_dir, point.key, seed)
    try:
        rec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if rec.get("version") != RECORD_VERSION or rec.get("options") != point.options:
        return None
    return rec


def read_json(path: Path) -> Any:
    """A stored side file (``.latency.json``, ``.aot.json``), or None when missing or broken."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
