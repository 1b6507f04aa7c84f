"""Fairness beside quality, for people choosing a model: every audited model's worst
disparities next to its held-out quality, and the chosen kind with and without the sensitive
attributes side by side per stage and attribute (terminal and Markdown)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from rich.table import Table

from training.evaluation.report import ModelRow
from training.fairness import FairnessAudit, WorstDisparity
from training.fairness.audit import DISPARITY_KINDS, DISPARITY_TITLES

_QUALITY = ("ROC-AUC", "F1 dropout", "AUC enrollment")
_SHOWN_KINDS = ("dp_difference", "dp_ratio", "eo_difference", "calibration_gap")
_PAIR_KINDS = ("dp_difference", "eo_difference", "calibration_gap")

NOTES = (
    "Worst over the audited attributes and the three stages, on the held-out split; groups "
    "under the minimum size and `unknown` are not compared. DP: demographic parity (flag "
    "rates; a ratio of 1 is parity, lower is worse), EO: equalized odds (the larger of the TPR "
    "and FPR spreads), calibration gap: spread of mean predicted minus observed dropout rate. "
    "Differences in flag rates partly reflect different dropout rates between groups: read "
    "them with the TPR and FPR of each group (model card)."
)


def _number(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3f}"


def worst_cell(worst: WorstDisparity) -> str:
    if worst.attribute is None:
        return "n/a"
    return f"{_number(worst.value)} ({worst.attribute}, {worst.stage})"


def _comparison_rows(
    rows: Sequence[ModelRow], audits: Mapping[str, FairnessAudit]
) -> list[list[str]]:
    out = []
    for row in rows:
        audit = audits.get(row.name)
        if audit is None:
            continue
        r = row.report
        quality = [
            f"{r['roc_auc']:.4f}",
            f"{r['f1_dropout']:.4f}",
            f"{r['per_stage']['enrollment']['roc_auc']:.4f}",
        ]
        out.append([row.name, *quality, *(worst_cell(audit.worst[k]) for k in _SHOWN_KINDS)])
    return out


def _comparison_header() -> list[str]:
    return ["model", *_QUALITY, *(f"worst {DISPARITY_TITLES[k]}" for k in _SHOWN_KINDS)]


def comparison_markdown(rows: Sequence[ModelRow], audits: Mapping[str, FairnessAudit]) -> str:
    header = _comparison_header()
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _comparison_rows(rows, audits)]
    return "\n".join(lines)


def comparison_rich(
    rows: Sequence[ModelRow], audits: Mapping[str, FairnessAudit], title: str
) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(_comparison_header()):
        table.add_column(name, justify="left" if i == 0 else "right")
    for cells in _comparison_rows(rows, audits):
        table.add_row(*cells)
    return table


def _pair_rows(with_: FairnessAudit, without: FairnessAudit) -> list[list[str]]:
    out = []
    for stage_with in with_.stages:
        stage_without = without.stage(stage_with.stage)
        others = {d.attribute: d for d in stage_without.disparities}
        for mine in stage_with.disparities:
            theirs = others.get(mine.attribute)
            cells = [stage_with.stage, mine.attribute]
            for kind in _PAIR_KINDS:
                cells.append(_number(mine.value(kind)))
                cells.append(_number(math.nan if theirs is None else theirs.value(kind)))
            out.append(cells)
    return out


def _pair_header() -> list[str]:
    header = ["stage", "attribute"]
    for kind in _PAIR_KINDS:
        header += [f"{DISPARITY_TITLES[kind]} (with)", "(without)"]
    return header


def disparity_pair_markdown(with_: FairnessAudit, without: FairnessAudit) -> str:
    """Per stage and attribute, the disparities of the chosen kind trained with the
    sensitive attributes and without them."""
    header = _pair_header()
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _pair_rows(with_, without)]
    return "\n".join(lines)


def disparity_pair_rich(with_: FairnessAudit, without: FairnessAudit, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(_pair_header()):
        table.add_column(name, justify="left" if i < 2 else "right")
    for cells in _pair_rows(with_, without):
        table.add_row(*cells)
    return table


def worst_summary(audit: FairnessAudit) -> str:
    """One line: every disparity kind's worst value and where."""
    return "; ".join(f"{DISPARITY_TITLES[k]} {worst_cell(audit.worst[k])}" for k in DISPARITY_KINDS)
