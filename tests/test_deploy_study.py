"""The deploy study (nanolab/studies/deploy-screen.toml, then deploy.toml) and the [select] rule
of a study.

No training: the study file is parsed and validated against the trainer's config fields, and
the rule is applied to hand-made aggregated records.
"""

from __future__ import annotations

import json
import math

import pytest

from nanocore.errors import UserError
from nanolab import sweep
from nanolab.sweep.report import _selection
from nanolab.sweep.select import describe_rule


@pytest.mark.parametrize("name", ["deploy", "deploy-screen"])
def test_deploy_study_loads_and_validates(name):
    st = sweep.load_study(sweep.builtin_study_path(name))
    assert name in sweep.builtin_studies()
    assert st.name == name
    assert len(st.seeds) >= 2
    # The finals train one run at a time as the demo does (its seed-0 model is the demo's).
    assert st.jobs == (1 if name == "deploy" else None)
    assert len(st.points) >= 4
    # The finals train on every training image, as the default model is; the screen on half.
    assert st.train_images == (None if name == "deploy" else 30000)
    rule = st.select
    assert rule is not None
    assert rule.maximize == "int8_accuracy"
    assert rule.ties == "aot_instructions"
    assert {k: rule.at_most[k] for k in ("int8_bytes", "aot_arena_bytes")} == {
        "int8_bytes": 32768.0, "aot_arena_bytes": 4096.0}
    assert rule.at_least == {"photo_accuracy": 0.98}
    # The finals also hold the pick to what `make demo` can train (the screen has no such limit).
    assert set(rule.at_most) - {"int8_bytes", "aot_arena_bytes"} == (
        {"train_gmacs"} if name == "deploy" else set())
    if name == "deploy":  # the limit is set where it is because every point says its epochs
        assert all(isinstance(p.options.get("epochs"), int) for p in st.points.values())
    assert sweep.needs_photos(st)
    # Every point is something the pinned TFLM build runs: per-tensor dense weights.
    assert all(p.options.get("per_channel_dense") is False for p in st.points.values())


def _agg(key, acc, int8_bytes=30000, arena=3000, photo=0.99, instr=400000, n=3):
    aot = {} if arena is None else {"arena_bytes": arena, "instructions": instr}
    return {"key": key, "labels": [f"g/{key}"], "n": n, "int8_accuracy": acc,
            "int8_bytes": int8_bytes, "photo_accuracy": photo, "aot": aot}


RULE = sweep.parse_select({"maximize": "int8_accuracy", "ties": "aot_instructions",
                           "max": {"int8_bytes": 32768, "aot_arena_bytes": 4096},
                           "min": {"photo_accuracy": 0.98}}, "t.toml")


def test_rule_picks_most_accurate_qualifying_point():
    agg = {a["key"]: a for a in [
        _agg("big", 0.997, int8_bytes=40000),        # most accurate, too big
        _agg("ramhog", 0.996, arena=5000),           # arena over 4 KiB
        _agg("blurry", 0.9955, photo=0.97),          # photos under 0.98
        _agg("good", 0.995),
        _agg("worse", 0.993),
        _agg("untrained", math.nan, n=0),
    ]}
    assert sweep.select(RULE, agg) == sweep.Selection(key="good")


def test_rule_training_budget_excludes_costly_points():
    rule = sweep.parse_select({"maximize": "int8_accuracy", "max": {"train_gmacs": 1200}}, "t")
    agg = {"big": {**_agg("big", 0.996), "train_gmacs": 1427.3},
           "fits": {**_agg("fits", 0.995), "train_gmacs": 1189.4},
           "unknown": {**_agg("unknown", 0.997), "train_gmacs": math.nan}}
    assert sweep.select(rule, agg).key == "fits"


def test_rule_ties_go_to_fewer_instructions():
    agg = {a["key"]: a for a in [_agg("slow", 0.995, instr=500000),
                                 _agg("fast", 0.995, instr=300000),
                                 _agg("mid", 0.995, instr=400000)]}
    assert sweep.select(RULE, agg).key == "fast"


def test_rule_none_qualifies_names_closest_and_failed_constraint():
    agg = {a["key"]: a for a in [
        _agg("two_fail", 0.999, int8_bytes=40000, photo=0.9),
        _agg("one_fail", 0.995, photo=0.972),
        _agg("no_aot", 0.996, arena=None),           # AOT never measured
    ]}
    sel = sweep.select(RULE, agg)
    assert sel.key is None
    assert sel.closest == "no_aot"  # one failure, better accuracy than one_fail
    assert sel.failed == ("aot_arena_bytes not measured",)
    del agg["no_aot"]
    sel = sweep.select(RULE, agg)
    assert (sel.closest, sel.failed) == ("one_fail", ("photo_accuracy 0.972 < 0.98",))
    assert sweep.select(RULE, {}) == sweep.Selection(key=None)


def test_describe_rule():
    assert describe_rule(RULE) == (
        "highest mean int8_accuracy among points with int8_bytes <= 32768, "
        "aot_arena_bytes <= 4096, photo_accuracy >= 0.98; ties to fewer aot_instructions.")


@pytest.mark.parametrize("select, message", [
    ({"max": {"int8_bytes": 1}}, "needs maximize"),
    ({"maximize": "accuracy"}, "maximize must be one of"),
    ({"maximize": "int8_accuracy", "ties": "speed"}, "ties must be one of"),
    ({"maximize": "int8_accuracy", "max": {"flash": 1}}, "max.flash is not a figure"),
    ({"maximize": "int8_accuracy", "min": {"photo_accuracy": "high"}}, "must be a number"),
    ({"maximize": "int8_accuracy", "max": 3}, "max must be a table"),
    ({"maximize": "int8_accuracy", "prefer": "small"}, "unknown key(s) prefer"),
    ("int8_accuracy", "must be a table"),
])
def test_bad_select_is_one_line_user_error(select, message):
    doc = {"study": {"name": "x"}, "base": {"model": "cnn"},
           "group": [{"name": "g", "point": [{"label": "a"}]}], "select": select}
    with pytest.raises(UserError) as e:
        sweep.parse_study(doc, "bad.toml")
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    assert "[select]" in str(e.value)


def test_report_names_the_chosen_point(tmp_path):
    doc = {"study": {"name": "x", "seeds": 1}, "base": {"model": "cnn"},
           "group": [{"name": "g", "point": [{"label": "a"}]}],
           "select": {"maximize": "int8_accuracy", "min": {"photo_accuracy": 0.98}}}
    st = sweep.parse_study(doc, "x.toml")
    key = next(iter(st.points))
    lines = _selection
    agg = {key: _agg(key, 0.99, photo=0.99)}
    agg[key]["labels"] = ["g/a"]
    assert "**Chosen point:** g/a" in "\n".join(lines(st, agg))
    agg[key]["photo_accuracy"] = 0.5
    text = "\n".join(lines(st, agg))
    assert "No point meets the constraints" in text and "photo_accuracy 0.5 < 0.98" in text


def test_stored_photo_and_aot_figures_reach_the_rule(tmp_path):
    """aggregate averages runs/<key>-s<seed>.photo.json over seeds and reads the AOT arena from
    .aot.json; the written report and summary.json name the point the rule picks."""
    doc = {"study": {"name": "x", "seeds": 2}, "base": {"model": "cnn"},
           "group": [{"name": "g", "point": [{"label": "a"}, {"label": "b",
                                                             "options": {"epochs": 2}}]}],
           "select": {"maximize": "int8_accuracy", "max": {"aot_arena_bytes": 4096},
                      "min": {"photo_accuracy": 0.98}}}
    st = sweep.parse_study(doc, "x.toml")
    photos = {"g/a": (0.99, 0.975), "g/b": (0.99, 0.99)}  # a: mean 0.9825, b: 0.99
    for point in st.points.values():
        acc = 0.996 if point.labels == ["g/a"] else 0.995
        for seed in st.seeds:
            sweep.write_json_atomic(sweep.run_path(tmp_path, point.key, seed), {
                "version": sweep.RECORD_VERSION, "options": point.options, "seed": seed,
                "int8_accuracy": acc, "int8_bytes": 30000, "arena_bytes": 5000,
                "train_images": 60000, "test_images": 10000})
            sweep.write_json_atomic(sweep.run_path(tmp_path, point.key, seed, ".photo.json"),
                                    {"photo_accuracy": photos[point.labels[0]][seed]})
        arena = 5000 if point.labels == ["g/a"] else 3000
        sweep.write_json_atomic(sweep.run_path(tmp_path, point.key, 0, ".aot.json"),
                                {"arena_bytes": arena, "instructions": 1})
    agg = sweep.aggregate(st, tmp_path)
    by_label = {a["labels"][0]: a for a in agg.values()}
    assert by_label["g/a"]["photo_accuracy"] == pytest.approx(0.9825)
    report = sweep.write_report(st, tmp_path).read_text()
    assert "**Chosen point:** g/b" in report  # g/a is more accurate but its arena is 5000 B
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["selected"]["key"] == by_label["g/b"]["key"]
    # Every point has an AOT arena: the plot's RAM axis is the one the rule reads, and it says so.
    assert "right: the AOT arena" in report and "The star marks" in report
    # The training cost: MACs x epochs x training images, NaN where the epochs are not set.
    assert math.isnan(by_label["g/b"]["train_gmacs"])  # these records have no MACs
    from nanolab.sweep.aggregate import train_gmacs

    assert train_gmacs({**by_label["g/b"], "macs": 1e6}) == pytest.approx(1e6 * 2 * 60000 / 1e9)
    assert math.isnan(train_gmacs({**by_label["g/a"], "macs": 1e6}))  # epochs not set


def test_pareto_ram_axis_is_the_tflm_arena_until_every_point_has_an_aot_one():
    from nanolab.sweep.plot import ram_figure

    a = {"n": 2, "int8_accuracy": 0.99, "key": "a", "aot": {"arena_bytes": 2000}}
    b = {"n": 2, "int8_accuracy": 0.98, "key": "b"}
    assert ram_figure({"a": a}) == "aot_arena_bytes"
    assert ram_figure({"a": a, "b": b}) == "arena_bytes"
