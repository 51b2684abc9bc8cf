"""Study files: the TOML schema of a sweep, parsed and checked before anything trains.

A study is one TOML file (built-in ones live in ``nanolab/studies/``)::

    [study]
    name = "seed"
    seeds = 3                       # or a list of seeds, e.g. [0, 1, 2]
    train_images = 60000            # optional: train on the first N training images
    test_images = 10000             # optional: evaluate on the first N test images
    jobs = 1                        # optional: worker processes when -j is not given

    [base]                          # options shared by every point
    model = "seed_initial"
    epochs = 5

    [[group]]                       # a group of points, reported together
    name = "activation"
    options = { dropout = 0.2 }     # merged over [base]
    grid = { activation = ["elu", "relu"] }   # cartesian product of the listed values
    [[group.point]]                 # and/or explicit points
    label = "tanh"
    options = { activation = "tanh" }
    [[group.check]]                 # optional: an acceptance check on every point of the group
    kind = "int8_accuracy"
    min = 0.98

An option is any field of the trainer's config dataclasses (:mod:`nanolab.sweep.options`). A
point is identified by a hash of its resolved options, so two groups naming the same
configuration share one set of runs. What a report concludes lives in the study too: a group's
``[[group.check]]`` thresholds, a compression group's ``[group.conclusions]`` (text with
``{placeholders}`` the report fills with this sweep's figures), the ``[report]`` headings and
an optional ``[select]`` rule naming the point the report picks (:mod:`nanolab.sweep.select`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from nanocore import checks
from nanocore.errors import UserError
from nanolab.sweep.options import config_option_names, make_configs, normalize_options
from nanolab.sweep.select import SelectRule, parse_select
from nanolab.sweep.study_report import (
    Check,
    Conclusions,
    ReportText,
    check_keys,
    parse_check,
    parse_conclusions,
    parse_report_text,
)

_STUDY_KEYS = {"name", "description", "seeds", "train_images", "test_images", "latency_images",
               "jobs"}
_GROUP_KEYS = {"name", "title", "report", "options", "grid", "point", "baseline", "seed_baseline",
               "note", "check", "conclusions"}
_POINT_KEYS = {"label", "options", "seed", "ref"}
REPORT_KINDS = ("seed", "compression", "zoo", "plain")


@dataclass
class Point:
    """One configuration of the grid: resolved options (base + group + point) and its hash."""

    key: str
    options: dict[str, Any]
    labels: list[str] = field(default_factory=list)  # "group/label", one per group naming it


@dataclass
class GroupPoint:
    """A point as a group lists it: its label, its key, and the seed study's figures for it."""

    label: str
    key: str
    seed: dict[str, float] = field(default_factory=dict)
    ref: str | None = None  # label of the point its size ratios compare with


@dataclass
class Group:
    """Points reported together (one table). ``report``: "seed", "compression", "zoo" or "plain"."""

    name: str
    title: str
    report: str
    points: list[GroupPoint]
    baseline: str | None = None
    seed_baseline: dict[str, float] = field(default_factory=dict)
    note: str = ""
    checks: list[Check] = field(default_factory=list)
    conclusions: Conclusions | None = None


@dataclass
class Study:
    """A parsed study: its points (ordered, deduplicated by key), groups and run settings."""

    name: str
    description: str
    seeds: tuple[int, ...]
    train_images: int | None
    test_images: int | None
    points: dict[str, Point]
    groups: list[Group]
    summary: list[dict[str, Any]]
    source: str
    latency_images: int = 200
    report: ReportText = field(default_factory=ReportText)
    select: SelectRule | None = None  # the study's [select] rule (nanolab.sweep.select)
    # Worker processes when the command line gives none (None: the usable cores). 1 trains in the
    # sweep's own process with TensorFlow's default threads, as `make demo` does, so that a
    # point's seed-0 model is the one the demo trains from the same configuration.
    jobs: int | None = None

    def runs(self) -> list[tuple[Point, int]]:
        """Every (point, seed) pair, points in study order, seeds inner."""
        return [(p, s) for p in self.points.values() for s in self.seeds]


def builtin_studies() -> list[str]:
    """Names of the studies shipped in ``nanolab/studies/``."""
    root = resources.files("nanolab") / "studies"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def builtin_study_path(name: str) -> Path:
    """Path of a built-in study TOML; UserError listing the choices when there is none."""
    path = Path(str(resources.files("nanolab") / "studies" / f"{name}.toml"))
    if not path.is_file():
        raise UserError(f"no built-in study {name!r}; choose one of {', '.join(builtin_studies())}"
                        " or give a study TOML file")
    return path


def point_key(options: dict[str, Any]) -> str:
    """Content hash (12 hex) of a point's resolved options; equal configurations share it."""
    blob = json.dumps(options, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _value_label(v: Any) -> str:
    if isinstance(v, list | tuple):
        return "-".join(map(str, v)) or "none"
    return str(v)


def _label_for(combo: dict[str, Any]) -> str:
    """Label of a grid point: the value for one axis ("80-60"), else "k=v,k=v"."""
    if len(combo) == 1:
        return _value_label(next(iter(combo.values())))
    return ",".join(f"{k}={_value_label(v)}" for k, v in combo.items())




def parse_study(doc: dict[str, Any], source: str = "<dict>",
                option_names: Iterable[str] | None = None) -> Study:
    """Build a :class:`Study` from a parsed TOML document.

    ``option_names``: the options a point may set (default: the config dataclasses' fields);
    an unknown option is a UserError naming it, before anything trains.
    """
    meta = doc.get("study", {})
    check_keys(meta, _STUDY_KEYS, f"{source} [study]")
    check_keys(doc, {"study", "base", "group", "summary", "report", "select"}, source)
    seeds_raw = meta.get("seeds", 3)
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        if seeds_raw < 1:
            raise UserError(f"{source}: seeds must be >= 1, got {seeds_raw}")
        seeds = tuple(range(seeds_raw))
    elif isinstance(seeds_raw, list) and seeds_raw and all(isinstance(s, int) for s in seeds_raw):
        seeds = tuple(seeds_raw)
    else:
        raise UserError(f"{source}: seeds must be a count or a list of integers")
    jobs = meta.get("jobs")
    if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1):
        raise UserError(f"{source}: jobs must be an integer >= 1, got {jobs!r}")
    validate = option_names is None
    allowed = set(config_option_names()) if validate else set(option_names)
    base = dict(doc.get("base", {}))

    def resolve(*layers: dict[str, Any], where: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for layer in layers:
            merged.update(normalize_options(layer))
        bad = sorted(set(merged) - allowed)
        if bad:
            raise UserError(f"{where}: unknown option(s) {', '.join(bad)}; "
                            f"options are: {', '.join(sorted(allowed))}")
        if validate:
            make_configs(merged, 0, where)  # type errors now, not after an hour of training
        return dict(sorted(merged.items()))

    points: dict[str, Point] = {}
    groups: list[Group] = []
    raw_groups = doc.get("group", [])
    if not raw_groups:
        raise UserError(f"{source}: a study needs at least one [[group]]")
    for gi, g in enumerate(raw_groups):
        gname = g.get("name") or f"group{gi + 1}"
        where = f"{source} group {gname!r}"
        check_keys(g, _GROUP_KEYS, where)
        report = g.get("report", "plain")
        if report not in REPORT_KINDS:
            raise UserError(f"{where}: report must be seed, compression, zoo or plain")
        gopts = dict(g.get("options", {}))
        entries: list[tuple[str, dict[str, Any], dict[str, float], str | None]] = []
        grid = g.get("grid", {})
        if grid:
            axes = list(grid.items())
            for k, vals in axes:
                if not isinstance(vals, list) or not vals:
                    raise UserError(f"{where}: grid.{k} must be a non-empty list")
            for combo in itertools.product(*(v for _, v in axes)):
                c = dict(zip((k for k, _ in axes), combo))
                entries.append((_label_for(c), c, {}, None))
        for p in g.get("point", []):
            check_keys(p, _POINT_KEYS, where)
            popts = dict(p.get("options", {}))
            label = p.get("label") or _label_for(popts) or "base"
            entries.append((label, popts, dict(p.get("seed", {})), p.get("ref")))
        if not entries:
            raise UserError(f"{where}: no points (give grid = {{...}} or [[group.point]])")
        gpoints: list[GroupPoint] = []
        seen_labels: set[str] = set()
        for label, popts, seedfig, ref in entries:
            if label in seen_labels:
                raise UserError(f"{where}: duplicate point label {label!r}")
            seen_labels.add(label)
            opts = resolve(base, gopts, popts, where=f"{where} point {label!r}")
            key = point_key(opts)
            pt = points.setdefault(key, Point(key=key, options=opts))
            pt.labels.append(f"{gname}/{label}")
            gpoints.append(GroupPoint(label=label, key=key, seed=seedfig, ref=ref))
        baseline = g.get("baseline")
        if baseline is not None and baseline not in seen_labels:
            raise UserError(f"{where}: baseline {baseline!r} is not one of its points")
        for gp in gpoints:
            if gp.ref is not None and gp.ref not in seen_labels:
                raise UserError(f"{where}: point {gp.label!r} ref {gp.ref!r} is not in the group")
        raw_checks = g.get("check", [])
        if not isinstance(raw_checks, list):
            raise UserError(f"{where}: checks are [[group.check]] tables")
        conclusions = g.get("conclusions")
        groups.append(Group(name=gname, title=g.get("title", gname), report=report,
                            points=gpoints, baseline=baseline,
                            seed_baseline=dict(g.get("seed_baseline", {})),
                            note=g.get("note", ""),
                            checks=[parse_check(c, where) for c in raw_checks],
                            conclusions=None if conclusions is None
                            else parse_conclusions(conclusions, report, where)))
    labels = {f"{g.name}/{p.label}" for g in groups for p in g.points}
    summary = list(doc.get("summary", []))
    for s in summary:
        if s.get("point") and s["point"] not in labels:
            raise UserError(f"{source} [[summary]]: point {s['point']!r} is not a group/label")
    return Study(name=meta.get("name", Path(source).stem), description=meta.get("description", ""),
                 seeds=seeds, train_images=meta.get("train_images"),
                 test_images=meta.get("test_images"), points=points, groups=groups,
                 summary=summary, source=source,
                 latency_images=int(meta.get("latency_images", 200)),
                 report=parse_report_text(doc.get("report", {}), source),
                 select=parse_select(doc["select"], source) if "select" in doc else None,
                 jobs=jobs)


def load_study(path: str | os.PathLike, option_names: Iterable[str] | None = None) -> Study:
    """Read and parse a study TOML file; UserError on a missing file or bad TOML."""
    return parse_study(checks.read_toml(path, "study"), str(path), option_names)


def with_seeds(study: Study, count: int) -> Study:
    """The same study with seeds 0..count-1 (the CLI's ``--seeds``)."""
    if count < 1:
        raise UserError(f"--seeds must be >= 1, got {count}")
    return dataclasses.replace(study, seeds=tuple(range(count)))


def describe_run(point: Point, seed: int, done: bool = False) -> str:
    """One line for ``--dry-run``: key, seed, status, labels and the resolved options."""
    opts = " ".join(f"{k}={json.dumps(v)}" for k, v in point.options.items())
    status = "done" if done else "todo"
    return f"{point.key} seed={seed} {status} [{'; '.join(point.labels)}] {opts}"
