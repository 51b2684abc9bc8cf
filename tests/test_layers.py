"""The Python packages import downward only, and product files do not reach into tests/.

Layers (docs/DEVELOPING.md draws them)::

    tools/, */__main__.py     entry points
    nanolab                   orchestration (bench of a model, sweep, the CLI)
    trainer | nanobench       side by side, neither imports the other
    nanocore                  errors, checks, exits, paths, atomic writes, C text

The graph is read with ``ast`` from every .py file, including imports inside functions (the
ones that hid a circle before), so a lazy import cannot slip through.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nanocore", "trainer", "nanobench", "nanolab")
SCANNED = (*PACKAGES, "tools", "firmware")
CLI = "nanolab.cli"

# Product files: tracked files outside tests/ and docs/ with these suffixes (or named Makefile);
# README/markdown and CI yaml are documentation, not product.
PRODUCT_SUFFIXES = (".py", ".c", ".h", ".cpp", ".mk", ".ini", ".toml")


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    return [line for line in out.splitlines() if (ROOT / line).is_file()]


def _module_name(rel: str) -> str:
    """'trainer/aot/__init__.py' -> 'trainer.aot'; 'tools/demo.py' -> 'tools.demo'."""
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, anywhere in the file, as absolute dotted names.

    ``from a import b`` yields ``a`` and ``a.b`` (b may be a submodule); relative imports are
    resolved against ``module``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_pkg else anchor[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph(files: list[str]) -> dict[str, set[str]]:
    """Relative path -> imported modules, for every scanned .py file."""
    graph = {}
    for rel in files:
        if rel.endswith(".py") and rel.split("/")[0] in SCANNED:
            graph[rel] = _imports(ROOT / rel, _module_name(rel))
    return graph


def _top(name: str) -> str:
    return name.split(".")[0]


def _is_entry_point(rel: str) -> bool:
    return rel.endswith("/__main__.py") or rel.startswith("tools/")


def layer_violations(graph: dict[str, set[str]], tool_names: set[str]) -> set[tuple[str, str]]:
    """(file, forbidden package) pairs that break the layering rules; an import of the CLI from
    anywhere but an entry point is reported as (file, "nanolab.cli")."""
    forbidden = {
        "nanocore": {"trainer", "nanobench", "nanolab", "tools", *tool_names},
        "trainer": {"nanobench", "nanolab", "tools", *tool_names},
        "nanobench": {"trainer", "nanolab", "tools", *tool_names},
        "nanolab": {"tools", *tool_names},
    }
    bad = set()
    for rel, mods in graph.items():
        pkg = rel.split("/")[0]
        for mod in mods:
            if mod == CLI or mod.startswith(CLI + "."):
                if not rel.endswith("/__main__.py"):
                    bad.add((rel, CLI))
                continue
            if _is_entry_point(rel):
                continue  # the top layer may import anything below it
            if _top(mod) in forbidden.get(pkg, ()):
                bad.add((rel, _top(mod)))
    return bad


def _mentions_tests(rel: str, text: str) -> bool:
    """Whether product file ``rel`` with content ``text`` mentions the tests/ folder: as text,
    or (Python) a string literal that is the folder's name or a path under it
    (``ROOT / "tests" / ...``)."""
    if "tests/" in text:
        return True
    if not rel.endswith(".py"):
        return False
    return any(isinstance(node, ast.Constant) and isinstance(node.value, str)
               and (node.value == "tests" or node.value.startswith("tests/"))
               for node in ast.walk(ast.parse(text, filename=rel)))


def mentions_of_tests(files: list[str]) -> set[str]:
    """Product files (tracked, outside tests/ and docs/) that mention the tests/ folder."""
    found = set()
    for rel in files:
        if rel.startswith(("tests/", "docs/")):
            continue
        if not (rel.endswith(PRODUCT_SUFFIXES) or Path(rel).name == "Makefile"):
            continue
        if _mentions_tests(rel, (ROOT / rel).read_text(errors="replace")):
            found.add(rel)
    return found


@pytest.fixture(scope="module")
def files() -> list[str]:
    return _tracked()


def test_the_graph_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The reader itself: a lazy import in a function body and a relative import count."""
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from nanobench.client import Client\n"
                   "from . import sibling\nfrom ..core import x\n")
    got = _imports(src, "trainer.sub.m")
    assert {"nanobench.client", "nanobench.client.Client", "trainer.sub.sibling",
            "trainer.core", "trainer.core.x"} <= got
    bad = layer_violations({"trainer/sub/m.py": got}, set())
    assert ("trainer/sub/m.py", "nanobench") in bad
    assert layer_violations({"nanobench/x.py": {"nanolab.cli"}}, set()) == {
        ("nanobench/x.py", "nanolab.cli")}
    assert not layer_violations({"trainer/__main__.py": {"nanolab.cli"}}, set())


def test_the_tests_check_sees_paths_built_from_parts() -> None:
    assert _mentions_tests("a.py", 'RUNNER = ROOT / "tests" / "aot_harness" / "r.c"\n')
    assert _mentions_tests("a.c", "/* see tests/x.py */")
    assert not _mentions_tests("a.py", 'NAME = "my tests"\n')


def test_packages_import_downward_only(files: list[str]) -> None:
    graph = import_graph(files)
    assert {rel.split("/")[0] for rel in graph} >= set(PACKAGES), "no package scanned"
    tool_names = {Path(rel).stem for rel in graph if rel.startswith("tools/")}
    bad = layer_violations(graph, tool_names)
    assert not bad, "imports against the layers (docs/DEVELOPING.md):\n" + "\n".join(
        f"  {rel} imports {pkg}" for rel, pkg in sorted(bad))


def test_only_entry_points_import_the_cli(files: list[str]) -> None:
    graph = import_graph(files)
    users = sorted(rel for rel, mods in graph.items()
                   if any(m == CLI or m.startswith(CLI + ".") for m in mods))
    assert users and all(rel.endswith("/__main__.py") for rel in users), users
    assert not (ROOT / "trainer" / "cli.py").exists(), "the CLI lives in nanolab/cli.py"


def test_tensorflow_is_imported_only_through_trainer_tf(files: list[str]) -> None:
    """TensorFlow reads TF_USE_LEGACY_KERAS when first imported: one module sets it and imports
    it (trainer/tf.py); everything else, tests included, imports from there."""
    tf_modules = {"tensorflow", "tf_keras", "tensorflow_model_optimization"}
    direct = sorted(
        rel for rel in files
        if rel.endswith(".py") and rel.split("/")[0] in (*SCANNED, "tests")
        and rel != "trainer/tf.py"
        and any(_top(m) in tf_modules for m in _imports(ROOT / rel, _module_name(rel))))
    assert not direct, f"import TensorFlow from trainer.tf instead: {direct}"


def test_importing_trainer_sets_no_environment() -> None:
    code = ("import os, sys; before = dict(os.environ); import trainer, trainer.config; "
            "sys.exit(dict(os.environ) != before)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    r = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, env=env)
    assert r.returncode == 0, "importing trainer changed the environment"


def test_product_files_do_not_mention_tests(files: list[str]) -> None:
    found = mentions_of_tests(files)
    assert not found, "product files that mention tests/: " + ", ".join(sorted(found))


def test_no_module_outgrows_the_size_limits() -> None:
    """Issue 11's limits: no hand-written Python module over 600 lines, no C file over 500
    (the exporter's generated firmware/lib/model/ and the host stand-in's model headers aside)."""
    listed = subprocess.run(["git", "ls-files", "*.py", "*.c", "*.h", "*.cc", "*.cpp"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    too_long = []
    for name in listed.stdout.split():
        if name.startswith(("firmware/lib/model/", "firmware/ports/host/standin/model_")):
            continue
        path = ROOT / name
        if not path.is_file():
            continue
        limit = 600 if name.endswith(".py") else 500
        n = len(path.read_text(errors="replace").splitlines())
        if n > limit:
            too_long.append(f"{name}: {n} > {limit}")
    assert not too_long, too_long
