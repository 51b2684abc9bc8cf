"""A sweep point's options: the fields of the trainer's config dataclasses, as one flat table.

A point may set any field of :class:`trainer.config.ModelConfig`, ``TrainConfig`` or
``QuantConfig`` (``seed`` excepted: the sweep sets it per run), and ``model`` for the model's
``name``. Options are normalized (aliases resolved, keys sorted) before they are hashed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nanocore.errors import UserError

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
