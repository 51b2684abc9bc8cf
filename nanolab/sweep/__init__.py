"""The model-size study (``python -m trainer sweep``): a declarative grid of training runs,
several seeds per point, resumable, in a process pool or on Ray, and a report.

Modules, in the order a sweep uses them:

- ``study``: the study TOML (``load_study``, ``parse_study``, built-ins in ``nanolab/studies/``);
  ``study_report``: its checks, conclusions and headings; ``options``: a point's options as the
  trainer's config dataclasses.
- ``run``: one (point, seed) through the trainer's stages (train, quantize, evaluate).
- ``store``: one record per finished run, ``runs/<key>-s<seed>.{json,tflite}``, atomic.
- ``execute``: ``run_sweep`` (pool or Ray, skips stored runs).
- ``device``: on-chip figures (``bench_pareto`` through nanobench, ``aot_compression``).
- ``photos``: synthetic-photo accuracy of each run (``photo_accuracy``), when ``[select]`` asks.
- ``select``: the study's ``[select]`` rule (``parse_select``, ``select``).
- ``aggregate``, ``tables``, ``findings``, ``plot``, ``report``: ``write_report``.

The names below are the package's public API (the CLI and the tests use them).
"""

from nanolab.sweep.aggregate import aggregate, inside, pareto_front, pareto_keys
from nanolab.sweep.device import aot_compression, bench_pareto
from nanolab.sweep.execute import SweepResult, default_jobs, run_sweep
from nanolab.sweep.findings import checks
from nanolab.sweep.options import config_option_names, make_configs, normalize_options
from nanolab.sweep.photos import needs_photos, photo_accuracy
from nanolab.sweep.report import write_report
from nanolab.sweep.run import TFLITE_FIELD, run_point
from nanolab.sweep.select import Selection, SelectRule, parse_select, select
from nanolab.sweep.store import (
    RECORD_VERSION,
    load_record,
    run_path,
    write_bytes_atomic,
    write_json_atomic,
)
from nanolab.sweep.study import (
    Group,
    GroupPoint,
    Point,
    Study,
    builtin_studies,
    builtin_study_path,
    describe_run,
    load_study,
    parse_study,
    point_key,
    with_seeds,
)

__all__ = [
    "RECORD_VERSION", "TFLITE_FIELD", "Group", "GroupPoint", "Point", "Study", "SweepResult",
    "aggregate", "aot_compression", "bench_pareto", "builtin_studies", "builtin_study_path",
    "checks", "config_option_names", "default_jobs", "describe_run", "inside", "load_record",
    "load_study", "make_configs", "needs_photos", "normalize_options", "pareto_front",
    "pareto_keys", "parse_select", "parse_study", "photo_accuracy", "point_key", "run_path",
    "run_point", "run_sweep", "select", "SelectRule", "Selection", "with_seeds",
    "write_bytes_atomic", "write_json_atomic", "write_report",
]
