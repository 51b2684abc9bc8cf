"""The model-size study: a declarative grid of training runs, several seeds per point.

A study is one TOML file (built-in ones live in ``trainer/studies/``)::

    [study]
    name = "seed"
    seeds = 3                       # or a list of seeds, e.g. [0, 1, 2]
    train_images = 60000            # optional: train on the first N training images
    test_images = 10000             # optional: evaluate on the first N test images

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

An option is any field of :class:`trainer.config.ModelConfig`, ``TrainConfig`` or
``QuantConfig`` (the run's ``seed`` is set by the sweep). A point is identified by a hash of its
resolved options, so two groups naming the same configuration share one set of runs.

Each finished (point, seed) is stored as ``<out>/runs/<key>-s<seed>.json`` (written to a temporary
file, then renamed), so a killed sweep resumes without retraining finished runs. Runs execute in
a local process pool (one TensorFlow thread per worker) or as Ray tasks (``ray_address``).
``write_report`` turns the stored runs into ``report.md``, ``summary.json`` and ``pareto.png``.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import itertools
import json
import logging
import math
import os
import socket
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from nanocore.checks import dumps as json_dumps_finite
from nanocore.errors import UserError

log = logging.getLogger(__name__)

RECORD_VERSION = 1
# A run's record carries its int8 flatbuffer under this key on the way back from the worker; the
# driver stores it beside the JSON as <key>-s<seed>.tflite (so Ray workers need no shared disk).
TFLITE_FIELD = "_int8_tflite"

# Nano 33 BLE (nRF52840) limits, bytes: the Pareto plot marks them.
NANO33_FLASH_BYTES = 1024 * 1024
NANO33_RAM_BYTES = 256 * 1024

# Options the sweep itself understands (not forwarded to the config dataclasses).
_STUDY_KEYS = {"name", "description", "seeds", "train_images", "test_images", "latency_images"}
_GROUP_KEYS = {"name", "title", "report", "options", "grid", "point", "baseline", "seed_baseline",
               "note"}
_POINT_KEYS = {"label", "options", "seed", "ref"}


# --------------------------------------------------------------------------------------------
# Study description


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

    def runs(self) -> list[tuple[Point, int]]:
        """Every (point, seed) pair, points in study order, seeds inner."""
        return [(p, s) for p in self.points.values() for s in self.seeds]


def builtin_studies() -> list[str]:
    """Names of the studies shipped in ``trainer/studies/``."""
    root = resources.files("trainer") / "studies"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def builtin_study_path(name: str) -> Path:
    """Path of a built-in study TOML; UserError listing the choices when there is none."""
    path = Path(str(resources.files("trainer") / "studies" / f"{name}.toml"))
    if not path.is_file():
        raise UserError(f"no built-in study {name!r}; choose one of {', '.join(builtin_studies())}"
                        " or give a study TOML file")
    return path


def point_key(options: dict[str, Any]) -> str:
    """Content hash (12 hex) of a point's resolved options; equal configurations share it."""
    blob = json.dumps(options, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                        f"allowed: {', '.join(sorted(allowed))}")


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
    _check_keys(meta, _STUDY_KEYS, f"{source} [study]")
    _check_keys(doc, {"study", "base", "group", "summary"}, source)
    seeds_raw = meta.get("seeds", 3)
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        if seeds_raw < 1:
            raise UserError(f"{source}: seeds must be >= 1, got {seeds_raw}")
        seeds = tuple(range(seeds_raw))
    elif isinstance(seeds_raw, list) and seeds_raw and all(isinstance(s, int) for s in seeds_raw):
        seeds = tuple(seeds_raw)
    else:
        raise UserError(f"{source}: seeds must be a count or a list of integers")
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
        _check_keys(g, _GROUP_KEYS, where)
        report = g.get("report", "plain")
        if report not in ("seed", "compression", "zoo", "plain"):
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
            _check_keys(p, _POINT_KEYS, where)
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
        groups.append(Group(name=gname, title=g.get("title", gname), report=report,
                            points=gpoints, baseline=baseline,
                            seed_baseline=dict(g.get("seed_baseline", {})),
                            note=g.get("note", "")))
    labels = {f"{g.name}/{p.label}" for g in groups for p in g.points}
    summary = list(doc.get("summary", []))
    for s in summary:
        if s.get("point") and s["point"] not in labels:
            raise UserError(f"{source} [[summary]]: point {s['point']!r} is not a group/label")
    return Study(name=meta.get("name", Path(source).stem), description=meta.get("description", ""),
                 seeds=seeds, train_images=meta.get("train_images"),
                 test_images=meta.get("test_images"), points=points, groups=groups,
                 summary=summary, source=source,
                 latency_images=int(meta.get("latency_images", 200)))


def load_study(path: str | os.PathLike, option_names: Iterable[str] | None = None) -> Study:
    """Read and parse a study TOML file; UserError on a missing file or bad TOML."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as e:
        raise UserError(f"cannot read study {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: bad TOML ({e})") from None
    return parse_study(doc, str(path), option_names)


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


# --------------------------------------------------------------------------------------------
# One run: train, convert, measure (executes in a worker process or a Ray task)


_DENSE_MODELS = ("seed_initial", "seed_final")

# A point may say ``model = "cnn"`` for the ModelConfig field ``name``.
_ALIASES = {"model": "name"}


def _config_tables() -> dict[str, set[str]]:
    from trainer import config

    return {table: {f.name for f in dataclasses.fields(cls)} - {"seed"}
            for table, cls in (("model", config.ModelConfig), ("train", config.TrainConfig),
                               ("quant", config.QuantConfig))}


def config_option_names() -> list[str]:
    """Options a point may set: the fields of the trainer's config dataclasses (minus ``seed``,
    which the sweep sets), plus ``model`` for the model's name."""
    names: set[str] = set(_ALIASES)
    for fields in _config_tables().values():
        names.update(fields)
    return sorted(names)


def normalize_options(options: dict[str, Any]) -> dict[str, Any]:
    """Aliases resolved (``model`` -> ``name``), keys sorted: the form that is hashed and stored."""
    out: dict[str, Any] = {}
    for k, v in options.items():
        out[_ALIASES.get(k, k)] = v
    return dict(sorted(out.items()))


def make_configs(options: dict[str, Any], seed: int, where: str = "sweep point"):
    """Split a point's flat options into (ModelConfig, TrainConfig, QuantConfig) with ``seed``.

    Uses ``trainer.config.from_dict``, so types are checked as for a config file (UserError).
    """
    from trainer import config

    tables: dict[str, dict[str, Any]] = {"model": {}, "train": {"seed": seed}, "quant": {}}
    fields = _config_tables()
    for k, v in normalize_options(options).items():
        owners = [t for t, names in fields.items() if k in names]
        if not owners:
            raise UserError(f"{where}: unknown option {k!r}; options are: "
                            f"{', '.join(config_option_names())}")
        for t in owners:
            tables[t][k] = v
    cfg = config.from_dict(tables, where)
    return cfg.model, cfg.train, cfg.quant


_DATA_CACHE: dict[tuple, Any] = {}


def _data(train_images: int | None, test_images: int | None):
    """MNIST, cut to the first N train/test images; cached per process."""
    key = (train_images, test_images)
    if key not in _DATA_CACHE:
        from trainer.data import Mnist, load_mnist

        d = load_mnist()
        if train_images or test_images:
            d = Mnist(x_train=d.x_train[:train_images], y_train=d.y_train[:train_images],
                      x_test=d.x_test[:test_images], y_test=d.y_test[:test_images],
                      source=d.source)
        _DATA_CACHE[key] = d
    return _DATA_CACHE[key]


def limit_threads() -> None:
    """One TensorFlow thread per process, so N workers use N cores without oversubscription."""
    import tensorflow as tf

    import trainer  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised in this process (a reused Ray worker): keep its setting


def gzip_bytes(blob: bytes) -> int:
    """Size of ``blob`` gzip-compressed at level 9, bytes (what a compressed download/OTA costs)."""
    return len(gzip.compress(blob, compresslevel=9, mtime=0))


def run_point(options: dict[str, Any], seed: int, train_images: int | None = None,
              test_images: int | None = None) -> dict[str, Any]:
    """Train one configuration with one seed and measure it. Returns the record (JSON-able but
    for the int8 flatbuffer under ``TFLITE_FIELD``, which the driver stores as a file).

    Float accuracy: Keras on the test images; int8 accuracy: the TFLM reference interpreter on
    the same images. Sizes in bytes; ``seed_metric`` = params + int8 flatbuffer KiB (the seed
    study's "weight"), ``seed_metric_float`` the same with the float flatbuffer. A model that
    trains but cannot be converted (e.g. NaN weights from an exploding activation) keeps its
    float accuracy; the int8 fields are None and ``int8_error`` says why.
    """
    import numpy as np

    from trainer import quantize, reference, tflite_info, train

    t0 = time.monotonic()
    data = _data(train_images, test_images)
    mcfg, tcfg, qcfg = make_configs(options, seed)
    result = train.train(mcfg, tcfg, data, progress=False)
    model = result.model
    rec: dict[str, Any] = {
        "version": RECORD_VERSION,
        "options": options,
        "seed": seed,
        "train_images": len(data.x_train),
        "test_images": len(data.y_test),
        "float_accuracy": train.keras_accuracy(model, data.x_test, data.y_test),
        "keras_params": int(model.count_params()),
        "sparsity": float(result.sparsity),
        "train_seconds": float(result.seconds),
        "worker": {"host": socket.gethostname(), "pid": os.getpid()},
    }
    for f in ("int8_accuracy", "params", "macs", "float_bytes", "int8_bytes", "float_gzip_bytes",
              "int8_gzip_bytes", "int8_sparsity", "arena_bytes", "seed_metric",
              "seed_metric_float", "quantize_seconds"):
        rec[f] = None
    try:
        float_tfl = quantize.to_float(model)
        rec.update(float_bytes=len(float_tfl), float_gzip_bytes=gzip_bytes(float_tfl))
        t_q = time.monotonic()
        int8_tfl = quantize.to_int8(model, data, qcfg)
        rec["quantize_seconds"] = time.monotonic() - t_q
        info = tflite_info.inspect(int8_tfl)
        ref = reference.Reference(int8_tfl)
        out = ref.run(data.x_test)
    except UserError as e:
        log.warning("%s seed %d: no int8 model: %s", options, seed, e)
        rec["int8_error"] = str(e)
        rec["seconds"] = time.monotonic() - t0
        return rec
    rec.update({
        "int8_accuracy": float(np.mean(np.argmax(out, axis=1) == data.y_test)),
        "params": int(info.params),
        "macs": int(info.macs),
        "int8_bytes": len(int8_tfl),
        "int8_gzip_bytes": gzip_bytes(int8_tfl),
        "int8_sparsity": int8_weight_sparsity(info, int8_tfl),
        "arena_bytes": int(ref.arena_bytes),
        "seed_metric": int(info.params) + len(int8_tfl) / 1024.0,
        "seed_metric_float": int(info.params) + len(float_tfl) / 1024.0,
        "seconds": time.monotonic() - t0,
        "ops": list(info.unique_ops),
        "int8_sha256": hashlib.sha256(int8_tfl).hexdigest(),
        TFLITE_FIELD: int8_tfl,
    })
    return rec


def int8_weight_sparsity(info, tflite_bytes: bytes) -> float:
    """Share of zero values among the int8 constant tensors (weights) of a flatbuffer."""
    import numpy as np
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(tflite_bytes, 0)
    sub = model.subgraphs[0]
    zeros = total = 0
    for t in sub.tensors:
        buf = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
        if buf is None or len(buf) == 0 or t.type != schema.TensorType.INT8:
            continue
        arr = np.asarray(buf, dtype=np.uint8)
        zeros += int(np.count_nonzero(arr == 0))
        total += int(arr.size)
    return zeros / total if total else 0.0


# --------------------------------------------------------------------------------------------
# Storage: one JSON per finished (point, seed), written atomically


def run_path(out_dir: Path, key: str, seed: int, suffix: str = ".json") -> Path:
    """Where the record (or, with ``suffix=".tflite"``, the int8 model) of a run lives."""
    return Path(out_dir) / "runs" / f"{key}-s{seed}{suffix}"


def write_bytes_atomic(path: Path, blob: bytes) -> None:
    """Write bytes via a temporary file and a rename (see :func:`write_json_atomic`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` via a temporary file in the same directory and a rename, so a
    reader (or a resumed sweep) never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w") as f:
        f.write(json_dumps_finite(obj, indent=1, sort_keys=True))  # NaN/Infinity as null
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


# --------------------------------------------------------------------------------------------
# Execution


@dataclass
class SweepResult:
    """What a sweep did: runs trained now, runs found finished, runs that failed (with reason)."""

    trained: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    failed: list[tuple[str, int, str]] = field(default_factory=list)
    seconds: float = 0.0


RunFn = Callable[..., dict[str, Any]]


def _pool_init() -> None:
    import trainer  # noqa: F401

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    limit_threads()
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _guarded(fn: RunFn, options: dict[str, Any], seed: int, train_images: int | None,
             test_images: int | None) -> dict[str, Any]:
    """Run ``fn`` in a worker; an exception comes back as a record with ``_failed`` (one line)
    and ``_traceback``, so the driver can log it and keep the traceback beside the records."""
    try:
        return fn(options, seed, train_images, test_images)
    except Exception as e:  # noqa: BLE001 (reported by the driver; the other runs go on)
        import traceback

        return {"_failed": f"{type(e).__name__}: {e}", "_traceback": traceback.format_exc()}


def _ray_run(fn: RunFn, options: dict[str, Any], seed: int, train_images: int | None,
             test_images: int | None) -> dict[str, Any]:
    _pool_init()
    return _guarded(fn, options, seed, train_images, test_images)


def default_jobs() -> int:
    """Worker processes by default: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover (not Linux)
        return max(1, os.cpu_count() or 1)


def run_sweep(study: Study, out_dir: str | os.PathLike, jobs: int | None = None,
              ray_address: str | None = None, run_fn: RunFn | None = None,
              progress: bool = True) -> SweepResult:
    """Run every (point, seed) of ``study`` not already stored under ``out_dir``.

    ``jobs``: local worker processes (default: usable cores; 1 runs in this process with TF's
    default threading). ``ray_address``: run as Ray tasks instead: ``"local"`` starts a new local
    instance, ``"auto"`` joins the running cluster or starts one, anything else is a cluster
    address. Records are written by this (driver) process as results arrive.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fn = run_fn or run_point
    res = SweepResult()
    t0 = time.monotonic()
    todo: list[tuple[Point, int]] = []
    for point, seed in study.runs():
        if load_record(out_dir, point, seed) is not None:
            res.skipped.append((point.key, seed))
        else:
            todo.append((point, seed))
    # Seed by seed, so an interrupted sweep already has every point with some seeds; within a
    # seed the convolutional zoo models (several times slower than the dense ones) go first so
    # the pool does not end waiting on one long run. The order changes no result.
    seed_rank = {s: i for i, s in enumerate(study.seeds)}
    todo.sort(key=lambda ps: (seed_rank[ps[1]], ps[0].options.get("name") in _DENSE_MODELS))
    log.info("sweep %s: %d runs, %d already finished, %d to train", study.name,
             len(study.runs()), len(res.skipped), len(todo))
    if not todo:
        res.seconds = time.monotonic() - t0
        return res
    sweep_id = uuid.uuid4().hex[:12]
    bar = _progress(len(todo), progress, study.name)

    def done(point: Point, seed: int, rec: dict[str, Any] | None, err: str | None) -> None:
        if rec is not None and "_failed" in rec:
            err = rec["_failed"]
            tb_path = run_path(out_dir, point.key, seed, ".error.txt")
            write_bytes_atomic(tb_path, rec.get("_traceback", err).encode())
            err = f"{err} (traceback: {tb_path})"
        if err is not None:
            log.error("run %s seed %d (%s) failed: %s", point.key, seed, point.labels[0], err)
            res.failed.append((point.key, seed, err))
        else:
            rec = dict(rec)
            blob = rec.pop(TFLITE_FIELD, None)
            if blob is not None:  # the model first: a record implies its model is stored
                write_bytes_atomic(run_path(out_dir, point.key, seed, ".tflite"), blob)
            rec.update(key=point.key, labels=point.labels, sweep_id=sweep_id,
                       finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            write_json_atomic(run_path(out_dir, point.key, seed), rec)
            run_path(out_dir, point.key, seed, ".error.txt").unlink(missing_ok=True)
            res.trained.append((point.key, seed))
        bar.update(1)

    args = (study.train_images, study.test_images)
    try:
        if ray_address:
            _run_ray(todo, fn, args, ray_address, done)
        elif (jobs or default_jobs()) <= 1:
            for point, seed in todo:
                done(point, seed, _guarded(fn, point.options, seed, *args), None)
        else:
            _run_pool(todo, fn, args, jobs or default_jobs(), done)
    finally:
        bar.close()
    res.seconds = time.monotonic() - t0
    return res


def _progress(total: int, enabled: bool, name: str):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=f"sweep {name}", unit="run")


def _run_pool(todo, fn, args, jobs, done) -> None:
    import multiprocessing as mp

    # spawn, not fork: TensorFlow's runtime is not fork-safe once initialised.
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx,
                             initializer=_pool_init) as pool:
        pending = {pool.submit(_guarded, fn, p.options, s, *args): (p, s) for p, s in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                point, seed = pending.pop(fut)
                try:
                    rec = fut.result()
                except Exception as e:  # noqa: BLE001 (one run failing must not stop the rest)
                    done(point, seed, None, f"{type(e).__name__}: {e}")
                else:
                    done(point, seed, rec, None)


def _run_ray(todo, fn, args, address: str, done) -> None:
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs the ray package: pip install ray") from None
    started_here = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "configure_logging": False}
        if address == "local":
            kw.update(address="local", num_cpus=default_jobs())
        elif address != "auto":
            kw["address"] = address
        try:
            ray.init(**kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UserError(f"cannot reach Ray cluster at {address!r}: {e}") from None
        started_here = True
    try:
        # Each task takes one CPU; the worker limits TensorFlow to one thread (as the pool does).
        remote = ray.remote(num_cpus=1, max_retries=1)(_ray_run)
        fn_ref = ray.put(fn)
        pending = {remote.remote(fn_ref, p.options, s, *args): (p, s) for p, s in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                point, seed = pending.pop(ref)
                try:
                    rec = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    cause = e.cause if getattr(e, "cause", None) else e
                    done(point, seed, None, f"{type(cause).__name__}: {cause}")
                except ray.exceptions.RayError as e:
                    done(point, seed, None, f"{type(e).__name__}: {e}")
                else:
                    done(point, seed, rec, None)
    finally:
        if started_here:
            ray.shutdown()


# --------------------------------------------------------------------------------------------
# Aggregation and report


_MEAN_FIELDS = ("float_accuracy", "int8_accuracy", "params", "macs", "float_bytes", "int8_bytes",
                "float_gzip_bytes", "int8_gzip_bytes", "sparsity", "int8_sparsity", "arena_bytes",
                "seed_metric", "seed_metric_float", "train_seconds", "seconds", "keras_params")


def _mean_std(vals: list[float]) -> tuple[float, float]:
    n = len(vals)
    if n == 0:
        return math.nan, math.nan
    m = sum(vals) / n
    if n < 2:
        return m, math.nan
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1))


def aggregate(study: Study, out_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Per point key: seeds found, and mean/std (sample std, ddof 1) of every measured field."""
    out_dir = Path(out_dir)
    agg: dict[str, dict[str, Any]] = {}
    for point in study.points.values():
        recs = [r for s in study.seeds if (r := load_record(out_dir, point, s)) is not None]
        a: dict[str, Any] = {"key": point.key, "labels": point.labels, "options": point.options,
                             "n": len(recs), "seeds": [r["seed"] for r in recs]}
        for f in _MEAN_FIELDS:
            vals = [float(r[f]) for r in recs if r.get(f) is not None]
            a[f], a[f + "_std"] = _mean_std(vals)
        int8 = [r["int8_accuracy"] for r in recs if r.get("int8_accuracy") is not None]
        a["int8_accuracy_min"] = min(int8) if int8 else math.nan
        a["int8_errors"] = sorted({r["int8_error"] for r in recs if r.get("int8_error")})
        for r in recs:
            lat = _read_json(run_path(out_dir, point.key, r["seed"], ".latency.json"))
            if lat:
                a["latency"] = lat
                break
        for r in recs:
            aot = _read_json(run_path(out_dir, point.key, r["seed"], ".aot.json"))
            if aot:
                a["aot"] = aot
                break
        if recs:
            a["ops"] = recs[0].get("ops", [])
            a["test_images"] = recs[0].get("test_images")
            a["train_images"] = recs[0].get("train_images")
        agg[point.key] = a
    return agg


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def pareto_keys(agg: dict[str, dict[str, Any]]) -> list[str]:
    """Keys of the points on either Pareto front: int8 accuracy vs int8 flatbuffer bytes, and
    vs arena bytes."""
    pts = [a for a in agg.values() if a["n"] and not math.isnan(a["int8_accuracy"])]
    keys: list[str] = []
    for xf in ("int8_bytes", "arena_bytes"):
        for i in pareto_front([a[xf] for a in pts], [a["int8_accuracy"] for a in pts]):
            if pts[i]["key"] not in keys:
                keys.append(pts[i]["key"])
    return keys


def bench_pareto(study: Study, out_dir: str | os.PathLike, port: str | None = None,
                 emulate: str | None = None, progress: bool = True) -> dict[str, dict]:
    """On-device latency of the Pareto points, through the bench (nanobench).

    ``emulate="qemu"``: each point's int8 model (its first stored seed) is exported, built into
    the QEMU Cortex-M4 image and streamed ``study.latency_images`` MNIST test images; latency is
    in instructions (icount). ``port``: a real board runs one model at a time, so only the
    Pareto point whose sha256 matches the flashed model is benched (the others are listed).
    Results go to ``runs/<key>-s<seed>.latency.json``; returns them by point key.
    """
    from nanobench.client import Device
    from nanolab import bench as nb

    out_dir = Path(out_dir)
    agg = aggregate(study, out_dir)
    workload = nb.mnist_workload(limit=study.latency_images)
    done: dict[str, dict] = {}
    flashed = None
    if port:
        with Device(port) as dev:
            flashed = dev.hello().get("model_sha256", "").lower()
    for key in pareto_keys(agg):
        a = agg[key]
        seed = a["seeds"][0]
        tfl_path = run_path(out_dir, key, seed, ".tflite")
        lat_path = run_path(out_dir, key, seed, ".latency.json")
        label = a["labels"][0]
        if not tfl_path.is_file():
            log.warning("no stored model for %s (%s): rerun the sweep", label, tfl_path)
            continue
        tflite = tfl_path.read_bytes()
        sha = hashlib.sha256(tflite).hexdigest()
        if port and not (flashed and sha.startswith(flashed)):
            log.warning("Pareto point %s: flash %s (sha256 %s) to bench it on %s", label,
                        tfl_path, sha[:16], port)
            continue
        try:
            if port:
                with Device(port) as dev:
                    res = nb.run(dev, workload, tflite, model_name=label, progress=progress)
                where = port
            else:
                from nanobench import emulate as emu_mod

                image = nb.build_image(emulate, tfl_path)
                with emu_mod.emulate(emulate, image) as emu, Device(emu.port) as dev:
                    res = nb.run(dev, workload, tflite, model_name=label, progress=progress)
                where = f"--emulate {emulate}"
        except UserError as e:
            log.warning("cannot bench %s: %s", label, e)
            continue
        lat = dict(res.summary["latency"])
        lat.update(images=len(workload.images), agreement=res.summary.get("agreement"),
                   accuracy=res.summary.get("accuracy"), device=where, seed=seed,
                   board=res.info.get("board"), backend=res.info.get("backend"))
        write_json_atomic(lat_path, _nan_to_none(lat))
        done[key] = lat
    return done


def _aot_bench_module():
    """tools/aot_bench.py as a module (tools/ is not a package)."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "tools" / "aot_bench.py"
    if "aot_bench" not in sys.modules:
        spec = importlib.util.spec_from_file_location("aot_bench", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["aot_bench"] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["aot_bench"]


def aot_compression(study: Study, out_dir: str | os.PathLike, images: int = 100,
                    work: str | os.PathLike | None = None) -> dict[str, dict]:
    """On-chip cost of the compression groups' points with the AOT backend: for each point's
    first stored seed, tools/aot_bench.py generates the C (sparse fully connected layers where
    that is smaller), builds the QEMU Cortex-M4 image with the DSP kernels and runs `images`
    MNIST test images. Stores ``runs/<key>-s<seed>.aot.json``: ``model_flash_bytes`` (the
    generated model's own flash: weights, indices, constants, parameter structs and its invoke
    code, from the ELF's DWARF attribution; kernels excluded), ``kernel_flash_bytes``,
    ``instructions`` (median per inference, QEMU -icount), ``agreement`` with the TFLM
    reference. Already measured runs (same int8 sha256) are kept. Returns them by point key."""
    bench = _aot_bench_module()
    from trainer.data import load_mnist

    out_dir = Path(out_dir)
    agg = aggregate(study, out_dir)
    work = Path(work or out_dir / "aot").resolve()
    keys = [gp.key for g in study.groups if g.report == "compression" for gp in g.points]
    x = None
    done: dict[str, dict] = {}
    for key in dict.fromkeys(keys):
        a = agg[key]
        if not a["n"]:
            continue
        seed = a["seeds"][0]
        tfl_path = run_path(out_dir, key, seed, ".tflite")
        aot_path = run_path(out_dir, key, seed, ".aot.json")
        if not tfl_path.is_file():
            log.warning("no stored model for %s (%s): rerun the sweep", a["labels"][0], tfl_path)
            continue
        sha = hashlib.sha256(tfl_path.read_bytes()).hexdigest()
        old = _read_json(aot_path)
        if old and old.get("int8_sha256") == sha and old.get("images") == images:
            done[key] = old
            continue
        if x is None:
            x = load_mnist().x_test[:images]
        prep = bench.prepare(key, tfl_path, x, work)
        row = bench.bench_one(prep, "dsp", work, timeout=900.0)
        src = (prep.gen_dir / "model_aot.c").read_text()
        rec = {"model_flash_bytes": row.flash_bytes - row.kernel_flash_bytes,
               "kernel_flash_bytes": row.kernel_flash_bytes, "instructions": row.instructions,
               "agreement": row.agreement, "images": row.images, "macs": row.macs,
               "sparse_layers": src.count("nt_fully_connected_sparse("), "seed": seed,
               "int8_sha256": sha, "variant": "dsp"}
        write_json_atomic(aot_path, rec)
        done[key] = rec
    return done


def _f(x: float, nd: int = 4) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _pm(m: float, s: float, nd: int = 4) -> str:
    if m is None or math.isnan(m):
        return "—"
    return f"{m:.{nd}f}" if math.isnan(s) else f"{m:.{nd}f} ± {s:.{nd}f}"


def _i(x: float) -> str:
    return "—" if x is None or math.isnan(x) else f"{round(x):,}"


def _signed(x: float, nd: int = 4) -> str:
    return "—" if x is None or math.isnan(x) else f"{x:+.{nd}f}"


def inside(value: float, mean: float, std: float, k: float = 2.0) -> bool | None:
    """Is ``value`` within ``mean ± k·std``? None when the spread is unknown (< 2 seeds)."""
    if any(math.isnan(v) for v in (value, mean, std)):
        return None
    return abs(value - mean) <= k * std


def _yes(b: bool | None) -> str:
    return "—" if b is None else ("yes" if b else "**no**")


def _seed_table(g: Group, agg: dict[str, dict[str, Any]]) -> list[str]:
    """Side-by-side table of a seed group: the seed's delta, ours, and the spread test."""
    base_gp = next((p for p in g.points if p.label == g.baseline), g.points[0])
    b = agg[base_gp.key]
    seed_b_acc = g.seed_baseline.get("acc", math.nan)
    seed_b_params = g.seed_baseline.get("params", math.nan)
    lines = [
        f"Baseline: **{base_gp.label}**; seed baseline accuracy {_f(seed_b_acc)}, "
        f"ours {_pm(b['float_accuracy'], b['float_accuracy_std'])} (float, n={b['n']})."
        + (f" Seed baseline params {_i(seed_b_params)}, ours {_i(b['keras_params'])}."
           if not math.isnan(seed_b_params) else ""),
        "",
        ("| variant | seed Δacc | our Δacc (mean ± std) | our − seed | Δ inside 2σ | seed acc | "
        "our acc (mean ± std) | abs inside 2σ | seed Δparams | our Δparams | our int8 acc |"),
        "|---|---:|---:|---:|:---:|---:|---:|:---:|---:|---:|---:|",
    ]
    for gp in g.points:
        a = agg[gp.key]
        seed_d = gp.seed.get("acc_delta", 0.0 if gp.label == base_gp.label else math.nan)
        seed_acc = seed_b_acc + seed_d if not math.isnan(seed_d) else gp.seed.get("acc", math.nan)
        ours_d = a["float_accuracy"] - b["float_accuracy"]
        # A single-seed difference (what the seed measured) has variance σ_v² + σ_b².
        d_std = math.sqrt(a["float_accuracy_std"] ** 2 + b["float_accuracy_std"] ** 2)
        if gp.label == base_gp.label:
            d_in = None
        else:
            d_in = inside(seed_d, ours_d, d_std)
        seed_dp = gp.seed.get("params_delta", 0.0 if gp.label == base_gp.label else math.nan)
        lines.append(
            f"| {gp.label} | {_signed(seed_d)} | {_signed(ours_d)} ± {_f(d_std)} | "
            f"{_signed(ours_d - seed_d)} | {_yes(d_in)} | {_f(seed_acc)} | "
            f"{_pm(a['float_accuracy'], a['float_accuracy_std'])} | "
            f"{_yes(inside(seed_acc, a['float_accuracy'], a['float_accuracy_std']))} | "
            f"{_signed(seed_dp, 0) if not math.isnan(seed_dp) else '—'} | "
            f"{_signed(a['keras_params'] - b['keras_params'], 0)} | "
            f"{_pm(a['int8_accuracy'], a['int8_accuracy_std'])} |")
    return lines


def _ref_of(g: Group, gp: GroupPoint) -> GroupPoint:
    """The point a compression row compares with: its ``ref``, else the group's baseline."""
    name = gp.ref or g.baseline
    return next((p for p in g.points if p.label == name), g.points[0])


def _compression_table(g: Group, agg: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        ("Sizes in bytes. *gzip vs ref*: the reference point's gzip size divided by this one's "
        "(> 1: smaller). Flash holds the flatbuffer uncompressed; gzip shows what the zeros "
        "of pruning are worth once something compresses them (a download, an OTA image, or a "
        "sparse/compressed weight format). *AOT flash B* and *AOT instr*: on the chip, with "
        "the AOT backend (QEMU Cortex-M4, DSP kernels, first seed; `trainer sweep --aot`): the "
        "generated model's own flash (weights, sparse indices, constants and its code, from "
        "the ELF; kernels excluded) and instructions per inference, in parentheses as a share "
        "of the reference point's. Fully connected layers take the block-sparse format where "
        "it is smaller than dense, bit-exact (agreement with the TFLM reference in *AOT agr*)."),
        "",
        ("| point | ref | float acc | int8 acc | int8 − float (points) | float B | int8 B | "
        "int8/float | float gzip B | int8 gzip B | float gzip vs ref | int8 gzip vs ref | "
        "AOT flash B | AOT instr | AOT agr | "
        "sparsity (int8 weights) | params + KiB, int8 | params + KiB, float |"),
        "|---|---|" + "---:|" * 16,
    ]
    for gp in g.points:
        a = agg[gp.key]
        r = agg[_ref_of(g, gp).key]
        if not a["n"]:
            continue
        drop = 100 * (a["int8_accuracy"] - a["float_accuracy"])
        lines.append(
            f"| {gp.label} | {_ref_of(g, gp).label} | "
            f"{_pm(a['float_accuracy'], a['float_accuracy_std'])} | "
            f"{_pm(a['int8_accuracy'], a['int8_accuracy_std'])} | {_signed(drop, 2)} | "
            f"{_i(a['float_bytes'])} | {_i(a['int8_bytes'])} | "
            f"{_f(100 * a['int8_bytes'] / a['float_bytes'], 1)} % | {_i(a['float_gzip_bytes'])} | "
            f"{_i(a['int8_gzip_bytes'])} | "
            f"{_f(r['float_gzip_bytes'] / a['float_gzip_bytes'], 2)}x | "
            f"{_f(r['int8_gzip_bytes'] / a['int8_gzip_bytes'], 2)}x | "
            f"{_aot_cell(a, r, 'model_flash_bytes')} | {_aot_cell(a, r, 'instructions')} | "
            f"{_f(a['aot']['agreement']) if a.get('aot') else '—'} | "
            f"{_f(100 * a['sparsity'], 1)} % ({_f(100 * a['int8_sparsity'], 1)} %) | "
            f"{_f(a['seed_metric'], 1)} | {_f(a['seed_metric_float'], 1)} |")
    return lines


def _aot_cell(a: dict[str, Any], r: dict[str, Any], field: str) -> str:
    """An AOT figure, with its share of the reference point's when both were measured."""
    if not a.get("aot"):
        return "—"
    v = a["aot"][field]
    if not r.get("aot") or not r["aot"][field]:
        return _i(v)
    return f"{_i(v)} ({100 * v / r['aot'][field]:.0f} %)"


def _zoo_table(g: Group, agg: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        ("| point | float acc | int8 acc | params | MACs | int8 flatbuffer bytes | "
        "arena bytes | int8 gzip | latency | train s |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for gp in g.points:
        a = agg[gp.key]
        lines.append(
            f"| {gp.label} | {_pm(a['float_accuracy'], a['float_accuracy_std'])} | "
            f"{_pm(a['int8_accuracy'], a['int8_accuracy_std'])} | {_i(a['params'])} | "
            f"{_i(a['macs'])} | {_i(a['int8_bytes'])} | {_i(a['arena_bytes'])} | "
            f"{_i(a['int8_gzip_bytes'])} | {_latency_str(a.get('latency'))} | "
            f"{_f(a['train_seconds'], 0)} |")
    return lines


def _latency_str(lat: dict[str, Any] | None) -> str:
    if not lat or lat.get("p50") is None:
        return "—"
    return f"{lat['p50']:,.0f} {lat['unit']} (p50, {lat.get('device', '?')})"


def _all_points_table(study: Study, agg: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        ("| key | labels | n | float acc | int8 acc | params | MACs | float B | int8 B | "
        "int8 gzip B | arena B | sparsity | params + KiB | train s |"),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in study.points.values():
        a = agg[p.key]
        lines.append(
            f"| `{p.key}` | {', '.join(p.labels)} | {a['n']} | "
            f"{_pm(a['float_accuracy'], a['float_accuracy_std'])} | "
            f"{_pm(a['int8_accuracy'], a['int8_accuracy_std'])} | {_i(a['params'])} | "
            f"{_i(a['macs'])} | {_i(a['float_bytes'])} | {_i(a['int8_bytes'])} | "
            f"{_i(a['int8_gzip_bytes'])} | {_i(a['arena_bytes'])} | "
            f"{_f(100 * a['sparsity'], 1)} % | {_f(a['seed_metric'], 1)} | "
            f"{_f(a['train_seconds'], 1)} |")
    return lines


def pareto_front(xs: list[float], ys: list[float]) -> list[int]:
    """Indices of the points not dominated (smaller x and larger y is better), sorted by x."""
    order = sorted(range(len(xs)), key=lambda i: (xs[i], -ys[i]))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if ys[i] > best:
            front.append(i)
            best = ys[i]
    return front


def plot_pareto(study: Study, agg: dict[str, dict[str, Any]], path: Path) -> Path:
    """PNG: int8 accuracy vs int8 flatbuffer bytes and vs TFLM arena bytes, Pareto fronts and
    the Nano 33 BLE's limits (1 MB flash, 256 KB RAM) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [a for a in agg.values() if a["n"] and not math.isnan(a["int8_accuracy"])]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    group_of = {}
    for g in study.groups:
        for gp in g.points:
            group_of.setdefault(gp.key, g.name)
    names = list(dict.fromkeys(group_of[a["key"]] for a in pts))
    cmap = plt.get_cmap("tab10")
    for ax, xf, limit, lname, xlabel in (
        (axes[0], "int8_bytes", NANO33_FLASH_BYTES, "Nano 33 BLE flash (1 MB)",
         "int8 flatbuffer bytes (log)"),
        (axes[1], "arena_bytes", NANO33_RAM_BYTES, "Nano 33 BLE RAM (256 KB)",
         "TFLM arena bytes (log)"),
    ):
        for gi, gname in enumerate(names):
            sel = [a for a in pts if group_of[a["key"]] == gname]
            ax.errorbar([a[xf] for a in sel], [a["int8_accuracy"] for a in sel],
                        yerr=[0 if math.isnan(a["int8_accuracy_std"]) else a["int8_accuracy_std"]
                              for a in sel],
                        fmt="o", ms=5, color=cmap(gi % 10), label=gname, alpha=0.85)
        xs = [a[xf] for a in pts]
        ys = [a["int8_accuracy"] for a in pts]
        front = pareto_front(xs, ys)
        ax.step([xs[i] for i in front], [ys[i] for i in front], where="post", color="k",
                lw=1, ls="--", label="Pareto front")
        for i in front:
            ax.annotate(pts[i]["labels"][0], (xs[i], ys[i]), fontsize=7,
                        xytext=(4, -10), textcoords="offset points")
        ax.axvline(limit, color="red", lw=1.5)
        ax.text(limit, 0.98, f"{lname} ", color="red", rotation=90, va="top", ha="right",
                fontsize=8, transform=ax.get_xaxis_transform())
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
        hi = max([limit * 1.6] + xs)
        ax.set_xlim(min(xs) / 1.6 if xs else 1000, hi)
    axes[0].set_ylabel("int8 accuracy (TFLM reference, MNIST test)")
    good = [a["int8_accuracy"] for a in pts if a["int8_accuracy"] > 0.5]
    if good:
        axes[0].set_ylim(max(0.0, min(good) - 0.01), min(1.0, max(good) + 0.005))
    axes[1].legend(fontsize=7, loc="lower center")
    fig.suptitle(f"sweep {study.name}: int8 accuracy vs flash and RAM "
                 f"(mean ± std over seeds; points below the y range are not shown)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _summary_lines(study: Study, agg: dict[str, dict[str, Any]]) -> list[str]:
    by_label = {f"{g.name}/{p.label}": p.key for g in study.groups for p in g.points}
    lines = [
        ("Weight = params + flatbuffer KiB. *Seed file KiB* is the seed's weight minus our "
         "parameter count for the same architecture, i.e. the file size the seed measured."),
        "",
        ("| model | seed weight | seed file KiB | ours, int8 weight | ours, float weight | "
         "our int8 / float file KiB | seed acc | our float acc | our int8 acc |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in study.summary:
        a = agg.get(by_label.get(s.get("point", ""), ""), None)
        if a is None:
            continue
        seed_w = s.get("seed_metric", math.nan)
        lines.append(
            f"| {s.get('label', s['point'])} | {_f(seed_w, 1)} | "
            f"{_f(seed_w - a['keras_params'], 1)} | "
            f"{_f(a['seed_metric'], 1)} | {_f(a['seed_metric_float'], 1)} | "
            f"{_f(a['int8_bytes'] / 1024, 1)} / {_f(a['float_bytes'] / 1024, 1)} | "
            f"{_f(s.get('seed_acc', math.nan))} | "
            f"{_pm(a['float_accuracy'], a['float_accuracy_std'])} | "
            f"{_pm(a['int8_accuracy'], a['int8_accuracy_std'])} |")
    return lines


def _why_no_gain(study: Study, agg: dict[str, dict[str, Any]]) -> list[str]:
    """Explain, with this sweep's numbers, why the seed saw no size gain."""
    comp = [g for g in study.groups if g.report == "compression"]
    if not comp:
        return []
    g = comp[0]
    base_gp = next((p for p in g.points if p.label == g.baseline), g.points[0])
    b = agg[base_gp.key]
    lines = ["### Why the seed saw no size gain", ""]
    if not b["n"]:
        return lines + ["(baseline not trained yet)"]
    lines.append(
        f"- The seed's metric adds the parameter count ({_i(b['params'])} for "
        f"{base_gp.label}) to the file size in KiB (float {_f(b['float_bytes'] / 1024, 1)} KiB, "
        f"int8 {_f(b['int8_bytes'] / 1024, 1)} KiB). The parameter count, which neither "
        f"quantization nor pruning changes, is {_f(100 * b['params'] / b['seed_metric_float'], 2)}"
        f" % of it, so even the 4x smaller int8 file moves the metric by only "
        f"{_f(b['seed_metric_float'] - b['seed_metric'], 1)} "
        f"({_f(100 * (b['seed_metric_float'] - b['seed_metric']) / b['seed_metric_float'], 2)} %"
        "), and the same 'weight' comes out for pruned and unpruned models.")
    lines.append(
        f"- Quantization shrinks the file only once the model is converted to int8: float "
        f"flatbuffer {_i(b['float_bytes'])} B → full-int8 {_i(b['int8_bytes'])} B "
        f"({_f(100 * b['int8_bytes'] / b['float_bytes'], 1)} %), at "
        f"{_signed(100 * (b['int8_accuracy'] - b['float_accuracy']), 2)} points of accuracy. "
        "A quantization-aware-trained model converted without the int8 step keeps float "
        "weights (on the fake-quant grid) and is no smaller than the float model"
        + "".join(f" ({gp.label}: float flatbuffer {_i(agg[gp.key]['float_bytes'])} B, int8 "
                  f"{_i(agg[gp.key]['int8_bytes'])} B)" for gp in g.points
                  if agg[gp.key]["n"] and agg[gp.key]["options"].get("qat"))
        + ".")
    for gp in g.points:
        a = agg[gp.key]
        if not a["n"] or a["sparsity"] < 0.5:
            continue
        r = agg[_ref_of(g, gp).key]
        lines.append(
            f"- Pruning ({gp.label}, sparsity {_f(100 * a['sparsity'], 1)} %) leaves every zero "
            f"in the flatbuffer: int8 {_i(a['int8_bytes'])} B vs {_i(r['int8_bytes'])} B "
            f"unpruned, float {_i(a['float_bytes'])} B vs {_i(r['float_bytes'])} B. Only "
            f"compression turns the zeros into savings: gzip int8 {_i(a['int8_gzip_bytes'])} B "
            f"vs {_i(r['int8_gzip_bytes'])} B ({_f(r['int8_gzip_bytes'] / a['int8_gzip_bytes'], 2)}"
            f"x), gzip float {_i(a['float_gzip_bytes'])} B vs {_i(r['float_gzip_bytes'])} B "
            f"({_f(r['float_gzip_bytes'] / a['float_gzip_bytes'], 2)}x); int8 accuracy "
            f"{_pm(a['int8_accuracy'], a['int8_accuracy_std'])} vs "
            f"{_pm(r['int8_accuracy'], r['int8_accuracy_std'])}."
            + (f" On the chip (AOT backend): model flash {_i(a['aot']['model_flash_bytes'])} B vs "
               f"{_i(r['aot']['model_flash_bytes'])} B, "
               f"{_i(a['aot']['instructions'])} vs {_i(r['aot']['instructions'])} instructions "
               f"per inference ({a['aot']['sparse_layers']} block-sparse layers)."
               if a.get("aot") and r.get("aot") else ""))
    return lines


def checks(study: Study, agg: dict[str, dict[str, Any]]) -> list[tuple[str, bool | None, str]]:
    """The issue's acceptance checks on this sweep's numbers: (name, passed, detail).

    Compression groups: every unpruned PTQ point's int8 flatbuffer is ≤ 30 % of its float one at
    ≤ 0.5 points of accuracy drop (mean over seeds); every point pruned to ≥ 75 % has an int8
    gzip size ≤ half its reference's. Zoo groups: mean int8 accuracy ≥ 0.98 (the lowest
    seed is shown beside it).
    """
    out: list[tuple[str, bool | None, str]] = []
    for g in study.groups:
        for gp in g.points:
            a = agg[gp.key]
            if not a["n"]:
                continue
            if g.report == "compression":
                qat = bool(a["options"].get("qat"))
                if a["sparsity"] < 0.05 and not qat:
                    ratio = a["int8_bytes"] / a["float_bytes"]
                    drop = 100 * (a["float_accuracy"] - a["int8_accuracy"])
                    out.append((f"int8 ≤ 30 % of float at ≤ 0.5 points: {gp.label}",
                                ratio <= 0.30 and drop <= 0.5,
                                f"{100 * ratio:.1f} %, int8 − float {-drop:+.2f} points"))
                r = agg[_ref_of(g, gp).key]
                if r["n"] and a["sparsity"] >= 0.75 - 1e-3:
                    x = r["int8_gzip_bytes"] / a["int8_gzip_bytes"]
                    out.append((f"pruning ≥ 75 % shrinks int8 gzip ≥ 2x: {gp.label}", x >= 2.0,
                                (f"{x:.2f}x vs {_ref_of(g, gp).label} at sparsity "
                                f"{100 * a['sparsity']:.1f} %, int8 acc {a['int8_accuracy']:.4f}")))
            elif g.report == "zoo":
                out.append((f"int8 accuracy ≥ 0.98 (mean over seeds): {gp.label}",
                            a["int8_accuracy"] >= 0.98,
                            (f"mean {a['int8_accuracy']:.4f}, lowest seed "
                             f"{a['int8_accuracy_min']:.4f} (n={a['n']}), "
                            f"{round(a['int8_bytes']):,} B flatbuffer, "
                            f"{round(a['arena_bytes']):,} B arena")))
    return out


def _nan_to_none(obj: Any) -> Any:
    """Strict JSON: NaN (e.g. the std of one seed) becomes null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


def write_report(study: Study, out_dir: str | os.PathLike,
                 sweep: SweepResult | None = None) -> Path:
    """Write ``report.md``, ``summary.json`` and ``pareto.png`` from the stored runs."""
    out_dir = Path(out_dir)
    agg = aggregate(study, out_dir)
    n_done = sum(a["n"] for a in agg.values())
    n_all = len(study.runs())
    any_rec = next((a for a in agg.values() if a["n"]), None)
    lines = [f"# Sweep `{study.name}`", ""]
    if study.description:
        lines += [study.description.strip(), ""]
    lines += [
        (f"Study file: `{study.source}`. Points: {len(study.points)}, seeds per point: "
        f"{len(study.seeds)} ({', '.join(map(str, study.seeds))}); runs stored: "
        f"{n_done}/{n_all}."),
    ]
    if any_rec:
        lines.append(f"Trained on {any_rec.get('train_images'):,} MNIST training images, "
                     f"evaluated on {any_rec.get('test_images'):,} test images. Float accuracy: "
                     "Keras; int8 accuracy: the TFLM reference interpreter (tflite-micro) on "
                     "the full-int8 flatbuffer. ± is the sample standard deviation over seeds.")
    if sweep is not None:
        lines.append(f"This invocation trained {len(sweep.trained)} runs, found "
                     f"{len(sweep.skipped)} finished, {len(sweep.failed)} failed; wall time "
                     f"{sweep.seconds:.0f} s.")
    lines += ["", ("Spread rule: a seed figure is *inside* our seed-to-seed spread when it lies in "
              "our mean ± 2 std. For differences (Δ vs the table's baseline) the std is that of "
              "a single-seed difference, √(σ_variant² + σ_baseline²), because the seed measured "
              "each variant once; for absolute accuracies it is σ_variant."), ""]
    for g in study.groups:
        lines += [f"## {g.title}", ""]
        if g.note:
            lines += [g.note.strip(), ""]
        if any(not agg[gp.key]["n"] for gp in g.points):
            missing = [gp.label for gp in g.points if not agg[gp.key]["n"]]
            lines += [f"Not trained yet: {', '.join(missing)}.", ""]
        for gp in g.points:
            if agg[gp.key].get("int8_errors"):
                lines += [(f"{gp.label}: no int8 model for some seeds "
                          f"({'; '.join(agg[gp.key]['int8_errors'])})."), ""]
        if g.report == "seed" and agg[(next((p for p in g.points if p.label == g.baseline),
                                            g.points[0])).key]["n"]:
            lines += _seed_table(g, agg)
        elif g.report == "compression" and agg[(next(
                (p for p in g.points if p.label == g.baseline), g.points[0])).key]["n"]:
            lines += _compression_table(g, agg)
            lines += [""] + _why_no_gain(study, agg)
        else:
            lines += _zoo_table(g, agg)
        lines.append("")
    if study.summary:
        lines += ["## The seed's summary line, side by side", ""] + _summary_lines(study, agg)
        lines.append("")
    chk = checks(study, agg)
    if chk:
        lines += ["## Checks (issue 6)", "", "| check | pass | measured |", "|---|:---:|---|"]
        lines += [f"| {n} | {_yes(ok)} | {d} |" for n, ok, d in chk]
        lines.append("")
    png = None
    if any(a["n"] for a in agg.values()):
        png = plot_pareto(study, agg, out_dir / "pareto.png")
        lines += ["## Pareto: int8 accuracy vs flash and RAM", "",
                  f"![pareto]({png.name})", "",
                  ("Left: int8 flatbuffer bytes (what the model costs in flash); right: the TFLM "
                  "arena the reference interpreter planned (RAM for activations). Red lines: the "
                  "Nano 33 BLE's 1 MB flash and 256 KB RAM, shared with the firmware."), ""]
        lines += [("Points on a Pareto front (latency: `python -m trainer sweep ... --emulate qemu` "
                  "or `--port`):"), "",
                  "| point | int8 acc | int8 flatbuffer B | arena B | MACs | latency |",
                  "|---|---:|---:|---:|---:|---:|"]
        for key in pareto_keys(agg):
            a = agg[key]
            lines.append(f"| {', '.join(a['labels'])} | "
                         f"{_pm(a['int8_accuracy'], a['int8_accuracy_std'])} | "
                         f"{_i(a['int8_bytes'])} | {_i(a['arena_bytes'])} | {_i(a['macs'])} | "
                         f"{_latency_str(a.get('latency'))} |")
        lines.append("")
    lines += ["## All points", ""] + _all_points_table(study, agg) + [""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    summary = {"study": study.name, "source": study.source, "seeds": list(study.seeds),
               "points": list(agg.values()),
               "checks": [{"check": n, "pass": ok, "measured": d} for n, ok, d in chk]}
    write_json_atomic(out_dir / "summary.json", _nan_to_none(summary))
    return report
