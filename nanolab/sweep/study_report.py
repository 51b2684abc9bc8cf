"""The report part of a study file: acceptance checks, conclusions and headings.

The numbers a report judges by and the words it concludes with belong to the study, not to the
code (the seed study's live in ``nanolab/studies/seed.toml``). The code knows the check kinds and
the figures a conclusion may name; the study picks thresholds and writes the text::

    [[group.check]]
    kind = "pruned_gzip"          # see CHECK_KINDS
    min_sparsity = 0.75
    min_shrink = 2.0

    [group.conclusions]           # compression groups
    title = "Why the seed saw no size gain"
    baseline = ["The parameter count ({params} for {label}) ..."]

    [report]
    checks_title = "Checks (issue 6)"
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from nanocore.errors import UserError

_REPORT_KEYS = {"checks_title", "summary_title", "summary_note"}

# Check kinds and their limits (all required). int8_size: every unpruned (sparsity below
# `unpruned_below`) post-training-quantized point's int8 flatbuffer is at most `max_ratio` of
# its float one, at most `max_drop_points` of accuracy lost (mean over seeds). pruned_gzip:
# every point pruned to at least `min_sparsity` has an int8 gzip size at most 1/`min_shrink`
# of its reference point's. int8_accuracy: mean int8 accuracy at least `min`.
CHECK_KINDS: dict[str, tuple[str, ...]] = {
    "int8_size": ("max_ratio", "max_drop_points", "unpruned_below"),
    "pruned_gzip": ("min_sparsity", "min_shrink"),
    "int8_accuracy": ("min",),
}

# Placeholders of conclusion text: a point's figures, formatted as in the tables, and the same
# with a ``ref_`` prefix for the point it is compared with (nanolab.sweep.findings fills them).
POINT_FIGURES = (
    "label", "params", "float_bytes", "int8_bytes", "float_gzip_bytes", "int8_gzip_bytes",
    "float_kib", "int8_kib", "int8_share", "int8_minus_float", "params_share", "weight_gain",
    "weight_gain_share", "sparsity", "int8_acc", "aot_model_flash_bytes", "aot_instructions",
    "aot_sparse_layers", "int8_gzip_vs_ref", "float_gzip_vs_ref",
)
_WITH_REF = set(POINT_FIGURES) | {f"ref_{k}" for k in POINT_FIGURES}
_CONCLUSION_TEXTS = {  # key -> placeholders its text may use
    "baseline": _WITH_REF | {"qat_points"},
    "qat_point": set(POINT_FIGURES),
    "pruned": _WITH_REF | {"on_chip"},
    "on_chip": _WITH_REF,
}


@dataclass(frozen=True)
class Check:
    """An acceptance check a group's report runs on each point: ``kind`` (a key of
    :data:`CHECK_KINDS`) and its limits by name."""

    kind: str
    limits: dict[str, float]


@dataclass(frozen=True)
class Conclusions:
    """What a compression group's numbers mean, as text with placeholders: ``baseline`` bullets
    (figures of the group's baseline; ``{qat_points}`` repeats ``qat_point`` for each QAT point),
    one ``pruned`` bullet per point pruned to at least ``pruned_min_sparsity`` (``ref_...``: the
    point it compares with; ``{on_chip}`` is ``on_chip`` when both have AOT figures)."""

    title: str
    baseline: tuple[str, ...] = ()
    qat_point: str = ""
    pruned: str = ""
    pruned_min_sparsity: float = 1.0
    on_chip: str = ""


@dataclass(frozen=True)
class ReportText:
    """The study's own report headings: the checks section's and the ``[[summary]]`` table's
    (with an optional paragraph under it)."""

    checks_title: str = "Checks"
    summary_title: str = "Summary"
    summary_note: str = ""


def check_keys(table: dict, allowed: set[str], where: str) -> None:
    """UserError naming the keys of ``table`` that are not in ``allowed`` (one line)."""
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                        f"allowed: {', '.join(sorted(allowed))}")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def parse_check(c: Any, where: str) -> Check:
    """One ``[[group.check]]`` table: a known kind and a number for each of its limits."""
    if not isinstance(c, dict) or c.get("kind") not in CHECK_KINDS:
        raise UserError(f"{where}: a check needs kind = one of {', '.join(CHECK_KINDS)}")
    names = CHECK_KINDS[c["kind"]]
    check_keys(c, {"kind", *names}, f"{where} check {c['kind']!r}")
    missing = [n for n in names if not _number(c.get(n))]
    if missing:
        raise UserError(f"{where}: check {c['kind']!r} needs a number for "
                        f"{', '.join(missing)}")
    return Check(kind=c["kind"], limits={n: float(c[n]) for n in names})


def _check_text(text: Any, allowed: set[str], where: str) -> str:
    """``text`` if it is a string whose placeholders are plain names in ``allowed``."""
    if not isinstance(text, str):
        raise UserError(f"{where} must be text")
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(text) if f is not None
                  and (f not in allowed or spec or conv)]
    except ValueError as e:
        raise UserError(f"{where}: bad placeholder ({e}); write {{{{ and }}}} for braces") from None
    if fields:
        raise UserError(f"{where}: unknown placeholder {{{fields[0]}}}; placeholders are: "
                        f"{', '.join(sorted(allowed))}")
    return text


def parse_conclusions(c: Any, report: str, where: str) -> Conclusions:
    """A compression group's ``[group.conclusions]``: a title, texts whose placeholders are
    figures the report knows (a typo is a UserError now, not a KeyError after training)."""
    where = f"{where} conclusions"
    if report != "compression":
        raise UserError(f"{where}: only a compression group has conclusions")
    if not isinstance(c, dict) or not isinstance(c.get("title"), str):
        raise UserError(f"{where}: needs a table with a title")
    check_keys(c, {"title", "pruned_min_sparsity", *_CONCLUSION_TEXTS}, where)
    baseline = c.get("baseline", [])
    if not isinstance(baseline, list):
        raise UserError(f"{where}: baseline must be a list of bullets")
    texts = {k: _check_text(c.get(k, ""), allowed, f"{where} {k}")
             for k, allowed in _CONCLUSION_TEXTS.items() if k != "baseline"}
    if texts["pruned"] and not _number(c.get("pruned_min_sparsity")):
        raise UserError(f"{where}: pruned needs pruned_min_sparsity (a number)")
    return Conclusions(
        title=c["title"],
        baseline=tuple(_check_text(b, _CONCLUSION_TEXTS["baseline"], f"{where} baseline")
                       for b in baseline),
        pruned_min_sparsity=float(c.get("pruned_min_sparsity", 1.0)), **texts)


def parse_report_text(r: Any, source: str) -> ReportText:
    """The ``[report]`` table: headings (text) the report uses instead of its defaults."""
    where = f"{source} [report]"
    if not isinstance(r, dict):
        raise UserError(f"{where} must be a table")
    check_keys(r, _REPORT_KEYS, where)
    for k, v in r.items():
        if not isinstance(v, str):
            raise UserError(f"{where}: {k} must be text")
    return ReportText(**r)
