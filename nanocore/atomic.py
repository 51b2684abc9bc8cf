"""Atomic file writes: a temporary file in the same folder, then ``os.replace``.

A reader (a resumed sweep, a second test process, the demo's cache check) sees either the old
file or the whole new one, never half of it. The temporary name carries the process id and a
random part, so concurrent writers of the same path do not clobber each other's temp file.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from nanocore import checks


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def write_bytes_atomic(path: str | Path, data: bytes, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` (parents created) via a temp file and a rename; returns path.

    ``fsync``: flush to disk before the rename (for records that must survive a power cut)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str, fsync: bool = False) -> Path:
    """``write_bytes_atomic`` of ``text`` encoded as UTF-8."""
    return write_bytes_atomic(path, text.encode(), fsync=fsync)


def write_json_atomic(path: str | Path, obj: Any, indent: int = 2, sort_keys: bool = True,
                      fsync: bool = False) -> Path:
    """Write ``obj`` as JSON (NaN/Infinity as null, a final newline) atomically."""
    return write_text_atomic(path, checks.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n",
                             fsync=fsync)
