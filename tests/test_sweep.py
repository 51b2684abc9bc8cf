"""The sweep (issue 6): study parsing, resume after SIGKILL, the process pool, Ray, the report.

Real training runs use a tiny study (the first 3,000 training / 500 test images, 1 epoch); the
full seed study is `python -m trainer sweep --study seed` (minutes, not part of the suite).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nanocore.errors import UserError
from nanolab import sweep

ROOT = Path(__file__).resolve().parents[1]
FAKE_OPTIONS = ["name", "hidden", "activation", "epochs", "prune_sparsity", "fail"]


def dense_params(hidden: list[int], n_in: int = 784, n_out: int = 10) -> int:
    """Weights + biases of Flatten -> Dense(h1) ... -> Dense(n_out)."""
    dims = [n_in, *hidden, n_out]
    return sum(a * b + b for a, b in itertools.pairwise(dims))


def fake_run(options, seed, train_images, test_images):
    """Stand-in for run_point (no TensorFlow): deterministic numbers from the options."""
    if options.get("fail"):
        raise RuntimeError("boom")
    hidden = list(options.get("hidden") or [])
    params = dense_params(hidden)
    sp = float(options.get("prune_sparsity") or 0.0)
    acc = 0.95 + 0.001 * seed + 0.0001 * len(hidden)
    return {
        "version": sweep.RECORD_VERSION, "options": options, "seed": seed,
        "train_images": train_images or 60000, "test_images": test_images or 10000,
        "float_accuracy": acc, "int8_accuracy": acc - 0.001, "params": params,
        "keras_params": params, "macs": params, "float_bytes": 4 * params + 2000,
        "int8_bytes": params + 3000, "float_gzip_bytes": int(4 * params * (1 - 0.8 * sp)) + 100,
        "int8_gzip_bytes": int(params * (1 - 0.7 * sp)) + 100, "sparsity": sp,
        "int8_sparsity": sp, "arena_bytes": 1000 + 4 * sum(hidden),
        "seed_metric": params + (params + 3000) / 1024,
        "seed_metric_float": params + (4 * params + 2000) / 1024,
        "train_seconds": 0.1, "quantize_seconds": 0.1, "seconds": 0.2, "ops": ["FULLY_CONNECTED"],
        "worker": {"pid": os.getpid()},
    }


FAKE_STUDY = """
[study]
name = "fake"
seeds = [0, 1]

[base]
model = "seed_initial"
epochs = 1

[[group]]
name = "width"
report = "seed"
baseline = "32"
seed_baseline = { acc = 0.95, params = 25450 }
grid = { hidden = [[16], [32]] }

[[group]]
name = "compression"
report = "compression"
baseline = "plain"
  [[group.point]]
  label = "plain"
  options = { hidden = [32] }
  [[group.point]]
  label = "pruned"
  options = { hidden = [32], prune_sparsity = 0.8 }
  [[group.check]]
  kind = "int8_size"
  max_ratio = 0.30
  max_drop_points = 0.5
  unpruned_below = 0.05
  [[group.check]]
  kind = "pruned_gzip"
  min_sparsity = 0.75
  min_shrink = 2.0
  [group.conclusions]
  title = "Why"
  pruned_min_sparsity = 0.5
  pruned = "{label}: int8 gzip {int8_gzip_vs_ref}x smaller.{on_chip}"
  on_chip = " On the chip: model flash {aot_model_flash_bytes} B vs \
{ref_aot_model_flash_bytes} B, {aot_instructions} vs {ref_aot_instructions} instructions."
"""


def parse(text: str, names=FAKE_OPTIONS) -> sweep.Study:
    import tomllib

    return sweep.parse_study(tomllib.loads(textwrap.dedent(text)), "test.toml", names)


# --------------------------------------------------------------------------------------------
# Study files


def test_grid_points_are_deduplicated_by_options():
    st = parse(FAKE_STUDY)
    # width/[32] and compression/plain are the same configuration: one point, two labels.
    assert len(st.points) == 3
    assert len(st.runs()) == 6
    shared = [p for p in st.points.values() if len(p.labels) == 2]
    assert len(shared) == 1 and set(shared[0].labels) == {"width/32", "compression/plain"}
    # `model` is an alias of ModelConfig.name; stored options are normalized and sorted.
    assert all(p.options["name"] == "seed_initial" and "model" not in p.options
               for p in st.points.values())
    assert sweep.point_key({"b": 1, "a": [1, 2]}) == sweep.point_key({"a": [1, 2], "b": 1})


@pytest.mark.parametrize("text, message", [
    ("[[group]]\nname='g'\ngrid={colour=['red']}", "unknown option(s) colour"),
    ("[[group]]\nname='g'\nbaseline='x'\ngrid={epochs=[1]}", "baseline 'x'"),
    ("[[group]]\nname='g'\ngrid={epochs=[]}", "non-empty list"),
    ("[study]\nseeds=0\n[[group]]\ngrid={epochs=[1]}", "seeds must be >= 1"),
    ("[study]\nname='x'", "at least one [[group]]"),
    ("[study]\njobs=0\n[[group]]\ngrid={epochs=[1]}", "jobs must be an integer >= 1"),
    ("[study]\njobs='2'\n[[group]]\ngrid={epochs=[1]}", "jobs must be an integer >= 1"),
    ("[[group]]\nname='g'\nreport='pie'\ngrid={epochs=[1]}", "report must be"),
    ("[[group]]\nname='g'\ngrid={epochs=[1]}\n[[group.check]]\nkind='int8_accuracy'",
     "needs a number for min"),
    ("[[group]]\nname='g'\ngrid={epochs=[1]}\n[[group.check]]\nkind='speed'", "kind = one of"),
    (("[[group]]\nname='g'\nreport='compression'\ngrid={epochs=[1]}\n"
      "[group.conclusions]\ntitle='t'\nbaseline=['{parms} params']"),
     "unknown placeholder {parms}"),
    ("[[group]]\nname='g'\ngrid={epochs=[1]}\n[group.conclusions]\ntitle='t'",
     "only a compression group"),
    ("[report]\ncheck_title='x'\n[[group]]\nname='g'\ngrid={epochs=[1]}", "unknown key(s)"),
])
def test_bad_study_is_one_line_user_error(text, message):
    with pytest.raises(UserError) as e:
        parse(text)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_option_types_are_checked_before_training():
    # Validation against the real config dataclasses (trainer.config), not a fake list.
    import tomllib

    doc = tomllib.loads("[[group]]\nname='g'\ngrid={learning_rate=['fast']}")
    with pytest.raises(UserError, match="learning_rate must be float"):
        sweep.parse_study(doc, "t.toml")
    doc = tomllib.loads("[[group]]\nname='g'\ngrid={dropout_rate=[0.1]}")
    with pytest.raises(UserError, match="unknown option"):
        sweep.parse_study(doc, "t.toml")


def test_builtin_seed_study_encodes_the_seed_architectures():
    st = sweep.load_study(sweep.builtin_study_path("seed"))
    assert st.seeds == (0, 1, 2)
    assert "seed" in sweep.builtin_studies()
    groups = {g.name: g for g in st.groups}
    assert {"activation", "layers", "width", "compression", "zoo"} <= set(groups)
    assert len(groups["activation"].points) == 7
    # The seed gives params deltas; our hidden widths must reproduce them exactly.
    for gname in ("layers", "width"):
        g = groups[gname]
        base = st.points[next(p.key for p in g.points if p.label == g.baseline)]
        base_params = dense_params(base.options["hidden"])
        assert base_params == g.seed_baseline["params"]
        for gp in g.points:
            hidden = st.points[gp.key].options["hidden"]
            if "params_delta" in gp.seed:
                assert dense_params(hidden) - base_params == gp.seed["params_delta"], gp.label
    with pytest.raises(UserError, match="no built-in study"):
        sweep.builtin_study_path("nope")


# --------------------------------------------------------------------------------------------
# Execution with a stand-in run function (no TensorFlow)


def test_run_resume_failures_and_atomic_records(tmp_path):
    st = parse(FAKE_STUDY)
    r1 = sweep.run_sweep(st, tmp_path, jobs=1, run_fn=fake_run, progress=False)
    assert len(r1.trained) == 6 and not r1.skipped and not r1.failed
    files = sorted((tmp_path / "runs").iterdir())
    assert len(files) == 6 and all(f.suffix == ".json" for f in files)  # no temporary left
    rec = json.loads(files[0].read_text())
    assert rec["key"] in st.points and rec["labels"]

    # Nothing to do on a rerun; a deleted record is the only run trained again.
    r2 = sweep.run_sweep(st, tmp_path, jobs=1, run_fn=fake_run, progress=False)
    assert not r2.trained and len(r2.skipped) == 6
    files[0].unlink()
    r3 = sweep.run_sweep(st, tmp_path, jobs=1, run_fn=fake_run, progress=False)
    assert r3.trained == [(rec["key"], rec["seed"])]

    # A record written for other options (edited study) does not count as finished.
    other = dict(rec, options={**rec["options"], "epochs": 99})
    files[0].write_text(json.dumps(other))
    assert sweep.load_record(tmp_path, st.points[rec["key"]], rec["seed"]) is None

    # A failing run is reported and leaves no record; the others still run.
    bad = parse(FAKE_STUDY.replace("prune_sparsity = 0.8", "prune_sparsity = 0.8, fail = true"))
    r4 = sweep.run_sweep(bad, tmp_path / "bad", jobs=1, run_fn=fake_run, progress=False)
    assert len(r4.failed) == 2 and len(r4.trained) == 4
    assert "RuntimeError: boom" in r4.failed[0][2]
    tracebacks = list((tmp_path / "bad" / "runs").glob("*.error.txt"))
    assert len(tracebacks) == 2 and "Traceback" in tracebacks[0].read_text()


def test_report_tables_checks_and_pareto(tmp_path):
    st = parse(FAKE_STUDY)
    sweep.run_sweep(st, tmp_path, jobs=1, run_fn=fake_run, progress=False)
    report = sweep.write_report(st, tmp_path).read_text()
    assert "| variant | seed Δacc |" in report and "| point | ref |" in report
    assert (tmp_path / "pareto.png").stat().st_size > 10_000
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["points"]) == 3
    by_label = {p["labels"][0]: p for p in summary["points"]}
    # mean/std over the two seeds, recomputed here.
    acc = [fake_run({"hidden": [16]}, s, None, None)["float_accuracy"] for s in (0, 1)]
    p16 = by_label["width/16"]
    assert p16["float_accuracy"] == pytest.approx(sum(acc) / 2)
    assert p16["float_accuracy_std"] == pytest.approx(abs(acc[0] - acc[1]) / 2 ** 0.5)
    checks = {c["check"]: c["pass"] for c in summary["checks"]}
    # int8 = params + 3000 vs float 4 params + 2000: 25.5 % for 25,450 params -> passes.
    assert checks["int8 ≤ 30 % of float at ≤ 0.5 points: plain"] is True
    # fake gzip shrinks by 1/(1 - 0.7*0.8) = 2.27x at 80 % sparsity -> passes.
    assert checks["pruning ≥ 75 % shrinks int8 gzip ≥ 2x: pruned"] is True


def test_compression_table_shows_the_stored_aot_figures(tmp_path):
    st = parse(FAKE_STUDY)
    sweep.run_sweep(st, tmp_path, jobs=1, run_fn=fake_run, progress=False)
    keys = {gp.label: gp.key for g in st.groups for gp in g.points}
    report = sweep.write_report(st, tmp_path).read_text()
    assert "| AOT flash B | AOT instr | AOT agr |" in report
    assert "— | — | — |" in report  # not measured yet
    for label, flash, instr in (("plain", 40_000, 60_000), ("pruned", 10_000, 21_000)):
        sweep.write_json_atomic(sweep.run_path(tmp_path, keys[label], 0, ".aot.json"), {
            "model_flash_bytes": flash, "kernel_flash_bytes": 2000, "instructions": instr,
            "agreement": 1.0, "images": 100, "sparse_layers": 1, "seed": 0})
    report = sweep.write_report(st, tmp_path).read_text()
    row = next(line for line in report.splitlines() if line.startswith("| pruned |"))
    assert "| 10,000 (25 %) | 21,000 (35 %) | 1.0000 |" in row
    assert "model flash 10,000 B vs 40,000 B, 21,000 vs 60,000 instructions" in report


def test_seed_study_thresholds_and_prose_come_from_the_study_file(tmp_path):
    """The report's checks and conclusions are the study's: edit the TOML, the report follows;
    a study without them gets none (the code has no thresholds or conclusions of its own)."""
    import tomllib

    text = sweep.builtin_study_path("seed").read_text()
    st = sweep.parse_study(tomllib.loads(text), "seed.toml")
    sweep.run_sweep(st, tmp_path, jobs=1, run_fn=fake_run, progress=False)
    report = sweep.write_report(st, tmp_path).read_text()
    checks = {c["check"]: c["pass"]
              for c in json.loads((tmp_path / "summary.json").read_text())["checks"]}
    assert "## Checks (issue 6)" in report and "## The seed's summary line, side by side" in report
    assert "### Why the seed saw no size gain" in report
    assert "- The seed's metric adds the parameter count (68,270 for 784-80-60-10, PTQ)" in report
    assert checks["int8 ≤ 30 % of float at ≤ 0.5 points: 784-80-60-10, PTQ"] is True
    assert checks["pruning ≥ 75 % shrinks int8 gzip ≥ 2x: 784-80-60-10, pruned 75 %"] is True
    assert checks["int8 accuracy ≥ 0.98 (mean over seeds): cnn"] is False  # fake: ~0.95

    edited = (text.replace("max_ratio = 0.30", "max_ratio = 0.20")
              .replace("min = 0.98", "min = 0.9")
              .replace('title = "Why the seed saw no size gain"', 'title = "Why not"')
              .replace('checks_title = "Checks (issue 6)"', 'checks_title = "Verdicts"'))
    assert edited.count("0.20") == 1 and "Why not" in edited and "Verdicts" in edited
    st2 = sweep.parse_study(tomllib.loads(edited), "seed.toml")
    report2 = sweep.write_report(st2, tmp_path).read_text()
    checks2 = {c["check"]: c["pass"]
               for c in json.loads((tmp_path / "summary.json").read_text())["checks"]}
    assert "## Verdicts" in report2 and "### Why not" in report2 and "issue 6" not in report2
    assert checks2["int8 ≤ 20 % of float at ≤ 0.5 points: 784-80-60-10, PTQ"] is False  # 25.9 %
    assert checks2["int8 accuracy ≥ 0.9 (mean over seeds): cnn"] is True

    bare = tomllib.loads(text)
    bare.pop("report")
    for g in bare["group"]:
        g.pop("check", None)
        g.pop("conclusions", None)
    report3 = sweep.write_report(sweep.parse_study(bare, "seed.toml"), tmp_path).read_text()
    assert "## Checks" not in report3 and "### Why" not in report3 and "≤ 30 %" not in report3
    assert "## Summary" in report3 and "Seed file KiB" not in report3


def test_conclusion_placeholders_are_the_figures_the_report_fills():
    from nanolab.sweep import findings, study_report

    a = {"params": 1.0, "float_bytes": 4.0, "int8_bytes": 1.0, "float_gzip_bytes": 3.0,
         "int8_gzip_bytes": 1.0, "int8_accuracy": 0.9, "float_accuracy": 0.9,
         "int8_accuracy_std": 0.0, "seed_metric": 2.0, "seed_metric_float": 3.0, "sparsity": 0.5}
    assert tuple(findings.figures(a, "x", a)) == study_report.POINT_FIGURES


def test_inside_and_pareto_front():
    assert sweep.inside(0.97, 0.9685, 0.001) is True
    assert sweep.inside(0.97, 0.960, 0.001) is False
    assert sweep.inside(0.97, 0.960, float("nan")) is None
    xs = [10, 20, 30, 15, 40]
    ys = [0.90, 0.95, 0.94, 0.80, 0.99]
    assert sweep.pareto_front(xs, ys) == [0, 1, 4]


def test_local_pool_uses_separate_worker_processes(tmp_path):
    st = parse(FAKE_STUDY)
    res = sweep.run_sweep(st, tmp_path, jobs=2, run_fn=fake_run, progress=False)
    assert len(res.trained) == 6
    pids = {json.loads(f.read_text())["worker"]["pid"] for f in (tmp_path / "runs").iterdir()}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


# --------------------------------------------------------------------------------------------
# Real training on a tiny study


TINY_STUDY = """
[study]
name = "tiny"
seeds = 2
train_images = 3000
test_images = 500

[base]
model = "seed_initial"
epochs = 1
batch_size = 64

[[group]]
name = "width"
report = "seed"
baseline = "32"
seed_baseline = { acc = 0.9, params = 25450 }
grid = { hidden = [[16], [32]] }
"""


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, "-m", "trainer", "sweep", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def run_path_tflite(out: Path, recs: dict[str, dict]) -> Path:
    """The int8 model stored beside the first record."""
    rec = next(iter(recs.values()))
    return sweep.run_path(out, rec["key"], rec["seed"], ".tflite")


def _records(out: Path) -> dict[str, dict]:
    return {f.name: json.loads(f.read_text()) for f in sorted((out / "runs").glob("*.json"))}


def test_cli_dry_run_lists_points_without_training(tmp_path):
    p = _cli("--study", "seed", "--dry-run", "--out", str(tmp_path / "o"))
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    lines = [ln for ln in out.splitlines() if " seed=" in ln]
    assert len(lines) == 81 and all(" todo " in ln for ln in lines)
    assert not (tmp_path / "o" / "runs").exists()
    p = _cli(str(tmp_path / "missing.toml"))
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 2 and out.strip().startswith("error:") and "Traceback" not in out


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """Start the tiny sweep, SIGKILL it (and its process group) once the first run is stored,
    then resume it. Returns (out_dir, records after the kill, records after the resume,
    resume output)."""
    d = tmp_path_factory.mktemp("sweep")
    study = d / "tiny.toml"
    study.write_text(TINY_STUDY)
    out = d / "out"
    p = _cli(str(study), "--out", str(out), "--jobs", "1", start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and p.poll() is None:
        if list((out / "runs").glob("*.json")) if (out / "runs").exists() else []:
            break
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()[0]
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    before = _records(out)
    p = _cli(str(study), "--out", str(out), "--jobs", "1")
    text, _ = p.communicate(timeout=400)
    assert p.returncode == 0, text
    return out, before, _records(out), text


def test_killed_sweep_resumes_without_retraining(killed_and_resumed):
    out, before, after, text = killed_and_resumed
    assert 1 <= len(before) < 4, "the kill should land between the first and the last run"
    assert len(after) == 4
    for name, rec in before.items():  # finished runs were not retrained (same record)
        assert after[name] == rec
    new_ids = {r["sweep_id"] for n, r in after.items() if n not in before}
    assert len(new_ids) == 1 and new_ids.isdisjoint({r["sweep_id"] for r in before.values()})
    assert f"trained {4 - len(before)}" in text and f"{len(before)} already finished" in text
    assert not list((out / "runs").glob(".*.tmp"))


def test_real_records_are_consistent(killed_and_resumed):
    out, _, after, _ = killed_and_resumed
    for rec in after.values():
        hidden = rec["options"]["hidden"]
        # tflite_info's count from the flatbuffer == Keras' count == the architecture formula.
        assert rec["params"] == rec["keras_params"] == dense_params(hidden)
        assert rec["int8_bytes"] <= 0.35 * rec["float_bytes"]
        assert rec["int8_gzip_bytes"] < rec["int8_bytes"]
        assert rec["arena_bytes"] > 0 and rec["test_images"] == 500
        assert abs(rec["int8_accuracy"] - rec["float_accuracy"]) < 0.03
        assert rec["float_accuracy"] > 0.3  # 1 epoch on 3,000 images: well above chance (0.1)
    # The tiny study's one group is a seed table against its baseline (32): the baseline line
    # and one row per width, with this sweep's own figures (mean ± sample std over 2 seeds).
    report = (out / "report.md").read_text()
    assert "runs stored: 4/4." in report and "## width\n" in report
    by_width: dict[int, list[dict]] = {}
    for rec in after.values():
        by_width.setdefault(rec["options"]["hidden"][0], []).append(rec)

    def pm(recs: list[dict], field: str) -> str:
        vals = [r[field] for r in recs]
        return f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}"

    assert (f"Baseline: **32**; seed baseline accuracy 0.9000, ours "
            f"{pm(by_width[32], 'float_accuracy')} (float, n=2). Seed baseline params 25,450, "
            "ours 25,450.") in report
    lines = report.splitlines()
    assert "| variant | seed Δacc | our Δacc (mean ± std) |" in lines[lines.index("## width") + 4]
    for width in (16, 32):
        row = next(line for line in lines if line.startswith(f"| {width} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[6] == pm(by_width[width], "float_accuracy")
        assert cells[10] == pm(by_width[width], "int8_accuracy")
        assert cells[9] == f"{dense_params([width]) - dense_params([32]):+d}"


def test_ray_local_instance_runs_the_tiny_study(tmp_path):
    pytest.importorskip("ray")
    import tomllib

    # One run (Ray start-up and a worker importing TensorFlow dominate the time anyway).
    text = (TINY_STUDY.replace("seeds = 2", "seeds = [7]").replace("3000", "1000")
            .replace("test_images = 500", "test_images = 200")
            .replace("[[16], [32]]", "[[16]]").replace('baseline = "32"', 'baseline = "16"'))
    st = sweep.parse_study(tomllib.loads(text), "tiny")
    res = sweep.run_sweep(st, tmp_path, ray_address="local", progress=False)
    assert not res.failed, res.failed
    recs = _records(tmp_path)
    assert len(recs) == 1 and {r["seed"] for r in recs.values()} == {7}
    assert run_path_tflite(tmp_path, recs).is_file()
    # Ray ran them in its own worker processes, not in this one.
    assert all(r["worker"]["pid"] != os.getpid() for r in recs.values())
    assert all(r["params"] == dense_params(r["options"]["hidden"]) for r in recs.values())


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None
                    or shutil.which("arm-none-eabi-gcc") is None,
                    reason="qemu-system-arm / arm-none-eabi-gcc not installed (make setup)")
def test_pareto_points_get_latency_under_qemu(killed_and_resumed):
    import tomllib

    out = killed_and_resumed[0]
    st = sweep.parse_study(tomllib.loads(TINY_STUDY), "tiny")
    st.latency_images = 20
    lat = sweep.bench_pareto(st, out, emulate="qemu", progress=False)
    assert lat and set(lat) <= set(st.points)
    for key, v in lat.items():
        assert v["unit"] == "instructions" and v["p50"] > 0 and v["images"] == 20
        # Device output vectors equal the TFLM reference's for every image.
        assert v["agreement"] == 1.0
        assert sweep.run_path(out, key, v["seed"], ".latency.json").is_file()
    sweep.write_report(st, out)
    assert "instructions (p50, --emulate qemu)" in (out / "report.md").read_text()


def test_cli_takes_the_study_jobs_unless_given(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import nanolab.sweep as sw
    from nanolab.cli import main

    study = tmp_path / "s.toml"
    study.write_text("[study]\nname='s'\nseeds=1\njobs=1\n[[group]]\nname='g'\n"
                     "grid={epochs=[1]}\n")
    seen = []

    def fake_sweep(st, out, jobs=None, **kw):
        seen.append(jobs)
        raise SystemExit(0)  # stop before the report

    monkeypatch.setattr(sw, "run_sweep", fake_sweep)
    for extra in ([], ["-j", "2"]):
        CliRunner().invoke(main, ["sweep", str(study), "--out", str(tmp_path / "o"), *extra])
    assert seen == [1, 2]
