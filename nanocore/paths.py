"""Where things live in a checkout: the repository root, the committed default model, build/.

Every package finds the tree from here instead of counting ``parents[N]`` of its own file, so
moving a module does not move the folders it reads or writes.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# The committed default model and its generated firmware files (python -m trainer export).
DEFAULT_MODEL_DIR = REPO_ROOT / "firmware" / "lib" / "model"
# Build outputs, caches and scratch folders: never committed.
BUILD_DIR = REPO_ROOT / "build"


def build_dir(*parts: str) -> Path:
    """``build/<parts...>`` under the repository root (not created)."""
    return BUILD_DIR.joinpath(*parts)
