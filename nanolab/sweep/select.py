"""The selection rule of a study (``[select]``): which point a report names as the pick.

Written in the study file, checked before anything trains, applied once to the aggregated
records (:func:`nanolab.sweep.aggregate.aggregate`)::

    [select]
    maximize = "int8_accuracy"          # the figure to maximize (mean over seeds)
    ties = "aot_instructions"           # among equal maxima, the fewest of this figure
    max = { int8_bytes = 32768, aot_arena_bytes = 4096 }   # constraints: figure <= limit
    min = { photo_accuracy = 0.98 }                        # constraints: figure >= limit

A point whose figure for a constraint was not measured does not qualify (the report says
"not measured").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from nanocore.errors import UserError
from nanolab.sweep.study_report import check_keys

# Figures a rule may name, read from a point's aggregated record (means over seeds; AOT figures
# from its first measured seed). Units: bytes, fractions (accuracies), instructions per image;
# train_gmacs: the training's forward-pass MACs in billions (aggregate.train_gmacs).
SELECT_FIGURES = ("int8_accuracy", "float_accuracy", "int8_bytes", "arena_bytes", "macs",
                  "params", "photo_accuracy", "aot_arena_bytes", "aot_instructions",
                  "aot_model_flash_bytes", "train_gmacs")
_AOT_FIGURES = {"aot_arena_bytes": "arena_bytes", "aot_instructions": "instructions",
                "aot_model_flash_bytes": "model_flash_bytes"}


@dataclass(frozen=True)
class SelectRule:
    """Maximize ``maximize`` among the points meeting every ``at_most`` (figure <= limit) and
    ``at_least`` (figure >= limit) constraint; ties go to the smaller ``ties`` figure."""

    maximize: str
    ties: str | None = None
    at_most: dict[str, float] = field(default_factory=dict)
    at_least: dict[str, float] = field(default_factory=dict)

    def figures(self) -> list[str]:
        """Every figure the rule reads, once each: the maximized one, the constraints', then
        the tie-breaker's."""
        return list(dict.fromkeys([self.maximize, *self.at_most, *self.at_least,
                                   *([self.ties] if self.ties else [])]))


@dataclass(frozen=True)
class Selection:
    """What a rule gives: the chosen point's key (None when no point qualifies) and, when none
    qualifies, the closest point's key and the constraints it failed (text per constraint)."""

    key: str | None
    closest: str | None = None
    failed: tuple[str, ...] = ()


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def parse_select(s: Any, source: str) -> SelectRule:
    """The study's ``[select]`` table; a one-line UserError on anything unknown or mistyped."""
    where = f"{source} [select]"
    if not isinstance(s, dict):
        raise UserError(f"{where} must be a table")
    check_keys(s, {"maximize", "ties", "max", "min"}, where)
    figs = ", ".join(SELECT_FIGURES)
    for k in ("maximize", "ties"):
        if k in s and s[k] not in SELECT_FIGURES:
            raise UserError(f"{where}: {k} must be one of {figs}, got {s[k]!r}")
    if "maximize" not in s:
        raise UserError(f"{where}: needs maximize = one of {figs}")
    limits: dict[str, dict[str, float]] = {}
    for k in ("max", "min"):
        t = s.get(k, {})
        if not isinstance(t, dict):
            raise UserError(f"{where}: {k} must be a table of figure = limit")
        for name, v in t.items():
            if name not in SELECT_FIGURES:
                raise UserError(f"{where}: {k}.{name} is not a figure; figures are: {figs}")
            if not _number(v):
                raise UserError(f"{where}: {k}.{name} must be a number, got {v!r}")
        limits[k] = {n: float(v) for n, v in t.items()}
    return SelectRule(maximize=s["maximize"], ties=s.get("ties"), at_most=limits["max"],
                      at_least=limits["min"])


def figure(a: dict[str, Any], name: str) -> float:
    """A point's figure by rule name (NaN when not measured)."""
    if name in _AOT_FIGURES:
        v = (a.get("aot") or {}).get(_AOT_FIGURES[name])
    else:
        v = a.get(name)
    return float(v) if _number(v) else math.nan


def _failures(rule: SelectRule, a: dict[str, Any]) -> list[str]:
    out = []
    for name, lim in rule.at_most.items():
        v = figure(a, name)
        if math.isnan(v):
            out.append(f"{name} not measured")
        elif v > lim:
            out.append(f"{name} {v:g} > {lim:g}")
    for name, lim in rule.at_least.items():
        v = figure(a, name)
        if math.isnan(v):
            out.append(f"{name} not measured")
        elif v < lim:
            out.append(f"{name} {v:.4g} < {lim:g}")
    return out


def select(rule: SelectRule, agg: dict[str, dict[str, Any]]) -> Selection:
    """Apply ``rule`` to aggregated records (by point key). Points without runs or without the
    maximized figure are ignored. When none qualifies, the closest point is the one failing the
    fewest constraints (then the best maximized figure)."""
    scored = [(k, a) for k, a in agg.items() if a.get("n") and not
              math.isnan(figure(a, rule.maximize))]

    def order(item: tuple[str, dict[str, Any]]) -> tuple[float, float]:
        tie = figure(item[1], rule.ties) if rule.ties else 0.0
        return (-figure(item[1], rule.maximize), math.inf if math.isnan(tie) else tie)

    ok = [it for it in scored if not _failures(rule, it[1])]
    if ok:
        return Selection(key=min(ok, key=order)[0])
    if not scored:
        return Selection(key=None)
    k, a = min(scored, key=lambda it: (len(_failures(rule, it[1])), order(it)))
    return Selection(key=None, closest=k, failed=tuple(_failures(rule, a)))


def describe_rule(rule: SelectRule) -> str:
    """The rule in one sentence, for the report."""
    cons = [f"{n} <= {v:g}" for n, v in rule.at_most.items()]
    cons += [f"{n} >= {v:g}" for n, v in rule.at_least.items()]
    text = f"highest mean {rule.maximize}"
    if cons:
        text += f" among points with {', '.join(cons)}"
    if rule.ties:
        text += f"; ties to fewer {rule.ties}"
    return text + "."
