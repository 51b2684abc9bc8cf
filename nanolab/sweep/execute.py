"""Execution: every (point, seed) of a study not yet stored, in a local process pool (one
TensorFlow thread per worker) or as Ray tasks; records are stored by the driver as results come.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanocore.errors import UserError
from nanolab.sweep.run import DENSE_MODELS, TFLITE_FIELD, limit_threads, run_point
from nanolab.sweep.store import load_record, run_path, write_bytes_atomic, write_json_atomic
from nanolab.sweep.study import Point, Study

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    """What a sweep did: runs trained now, runs found finished, runs that failed (with reason)."""

    trained: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    failed: list[tuple[str, int, str]] = field(default_factory=list)
    seconds: float = 0.0


RunFn = Callable[..., dict[str, Any]]


def _pool_init() -> None:
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
    todo.sort(key=lambda ps: (seed_rank[ps[1]], ps[0].options.get("name") in DENSE_MODELS))
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
