"""A study's pick becomes the default model (nanolab/promote.py, tools/demo.py --from-study).

No training: summaries are hand-made in the shape `nanolab.sweep.report.write_report` writes.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nanocore.errors import UserError
from nanolab import demo, promote
from nanolab.sweep.options import make_configs
from trainer.config import Config, load_toml

OPTS = {"augment": True, "augment_strength": 0.5, "filters": [8, 16, 32], "kernels": [3, 3, 3],
        "head": "dense", "name": "cnn", "per_channel_dense": False, "epochs": 10}


def _summary(tmp_path, key="k2", failed=()):
    points = [{"key": "k1", "labels": ["a/one"], "options": {"name": "cnn"}},
              {"key": "k2", "labels": ["b/two"], "options": OPTS}]
    sel = {"key": key, "closest": None if key else "k1", "failed": list(failed)}
    (tmp_path / "summary.json").write_text(json.dumps({"points": points, "selected": sel}))
    return tmp_path


def test_promote_writes_the_selected_point_as_a_config_that_reads_back(tmp_path):
    out = tmp_path / "default_model.toml"
    cfg = promote.promote(_summary(tmp_path), out)
    model, train, quant = make_configs(OPTS, seed=0)
    assert cfg == Config(model=model, train=train, quant=quant)
    assert load_toml(out) == cfg
    text = out.read_text()
    assert "b/two" in text and "k2" in text  # the file says where it came from
    assert "filters = [8, 16, 32]" in text and "augment_strength = 0.5" in text


def test_promote_refuses_when_no_point_meets_the_rule_and_keeps_the_old_file(tmp_path):
    out = tmp_path / "default_model.toml"
    out.write_text("[model]\nname = \"cnn\"\n")
    with pytest.raises(UserError, match=r"no point meets.*a/one.*photo_accuracy 0.9 < 0.98"):
        promote.promote(_summary(tmp_path, key=None, failed=["photo_accuracy 0.9 < 0.98"]), out)
    assert out.read_text() == "[model]\nname = \"cnn\"\n"


def test_accept_closest_takes_the_closest_point_and_says_what_it_fails(tmp_path):
    out = tmp_path / "default_model.toml"
    cfg = promote.promote(_summary(tmp_path, key=None, failed=["photo_accuracy 0.9 < 0.98"]),
                          out, accept_closest=True)
    assert cfg.model.name == "cnn" and load_toml(out) == cfg
    text = out.read_text()
    assert "closest" in text and "photo_accuracy 0.9 < 0.98" in text and "a/one" in text
    assert "--accept-closest" in text


@pytest.mark.parametrize("content, match", [(None, "run the study first"),
                                            ("{broken", "cannot read"),
                                            ('{"points": []}', "no \\[select\\] rule")])
def test_promote_bad_summaries_are_one_line_errors(tmp_path, content, match):
    if content is not None:
        (tmp_path / "summary.json").write_text(content)
    with pytest.raises(UserError, match=match):
        promote.promote(tmp_path, tmp_path / "default_model.toml")
    assert not (tmp_path / "default_model.toml").exists()


def test_committed_default_model_file_is_what_the_demo_trains():
    assert demo.DEFAULT_CONFIG == load_toml(promote.DEFAULT_MODEL_TOML)
    assert demo.DEFAULT_CONFIG.quant.per_channel_dense is False  # the pinned TFLM's dense


def test_demo_from_study_needs_update_firmware():
    r = subprocess.run([sys.executable, str(demo.ROOT / "tools" / "demo.py"), "--from-study", "x"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "--from-study needs --update-firmware" in r.stderr
