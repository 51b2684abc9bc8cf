"""A study's pick becomes the firmware's default model.

``promote(study_dir)`` reads the sweep's ``summary.json`` (written by ``python -m trainer sweep``),
takes the point its ``[select]`` rule chose, and writes that point's options as the trainer config
``nanolab/default_model.toml`` (what ``make demo`` trains). ``tools/demo.py --update-firmware
--from-study DIR`` then trains it on all 60,000 training images and regenerates
``firmware/lib/model/``. The study's own ``train_images`` subset is a study setting, not a point
option, so the promoted config trains on the full set.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

from nanocore.atomic import write_text_atomic
from nanocore.errors import UserError
from trainer.config import Config, from_dict

DEFAULT_MODEL_TOML = Path(__file__).with_name("default_model.toml")


def selected_point(study_dir: str | Path, accept_closest: bool = False) -> dict[str, Any]:
    """The aggregated record of the point the study's rule selected (``summary.json``).

    UserError when the summary is missing or damaged, the study has no rule, or no point met it
    (unless ``accept_closest``: then the rule's closest point, with ``failed`` listing the
    constraints it misses).
    """
    path = Path(study_dir) / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} not found: run the study first (python -m trainer sweep "
                        "--study deploy --aot)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    sel = summary.get("selected") if isinstance(summary, dict) else None
    if not isinstance(sel, dict):
        raise UserError(f"{path}: the study has no [select] rule, so it names no point")
    points = {p.get("key"): p for p in summary.get("points", []) if isinstance(p, dict)}
    if not sel.get("key"):
        closest = points.get(sel.get("closest"))
        failed = "; ".join(sel.get("failed", [])) or "no point was measured"
        if accept_closest and closest is not None:
            return {**closest, "failed": list(sel.get("failed", []))}
        labels = closest.get("labels", ["none"]) if closest else ["none"]
        raise UserError(f"{path}: no point meets the study's rule (closest: "
                        f"{', '.join(labels)}: {failed}); --accept-closest takes it anyway")
    if sel["key"] not in points:
        raise UserError(f"{path}: the selected point {sel['key']} is not among its points")
    return points[sel["key"]]


def point_config(point: dict[str, Any]) -> Config:
    """The trainer config of an aggregated point (its options, training seed 0)."""
    from nanolab.sweep.options import make_configs

    model, train, quant = make_configs(point.get("options", {}), seed=0,
                                       where=f"point {point.get('key')}")
    return Config(model=model, train=train, quant=quant)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string for the names the configs hold
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def render_toml(cfg: Config, header: list[str]) -> str:
    """cfg as a config file: ``# header`` lines, then each table with the fields that differ
    from their defaults (the model's name always)."""
    lines = [f"# {h}" if h else "#" for h in header]
    for table in ("model", "train", "quant"):
        part = getattr(cfg, table)
        default = type(part)()
        lines += ["", f"[{table}]"]
        for f in dataclasses.fields(part):
            v = getattr(part, f.name)
            if v is None or (v == getattr(default, f.name) and f.name != "name"):
                continue
            lines.append(f"{f.name} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def promote(study_dir: str | Path, path: str | Path = DEFAULT_MODEL_TOML,
            accept_closest: bool = False) -> Config:
    """Write the study's selected point (or, with ``accept_closest`` and no point meeting the
    rule, its closest one, said so in the file) as the default model's config file; returns the
    config. The file is read back and compared before it replaces the old one (atomic write)."""
    point = selected_point(study_dir, accept_closest)
    cfg = point_config(point)
    how = "chose"
    if point.get("failed"):
        how = f"names as closest (no point met it; this one fails {'; '.join(point['failed'])})"
    header = [
        "The firmware's default model: the configuration `make demo` (tools/demo.py) trains and",
        "`python tools/demo.py --update-firmware` exports to firmware/lib/model/.",
        f"Written by `tools/demo.py --update-firmware --from-study {study_dir}"
        f"{' --accept-closest' if point.get('failed') else ''}`: the point the",
        f"study's [select] rule {how}:",
        f"{', '.join(point.get('labels', []))} (key {point.get('key')}),",
        "trained on all 60,000 training images with seed 0.",
    ]
    text = render_toml(cfg, header)
    if from_dict(tomllib.loads(text), str(path)) != cfg:  # the writer's own check
        raise UserError(f"internal error: {path} would not read back as the chosen config")
    write_text_atomic(path, text)
    return cfg
