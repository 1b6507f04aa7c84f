"""What a reviewer reads of an audit: one figure per stage and a markdown table for the model card.

The figure is drawn on an Agg canvas of its own (matplotlib is imported when a figure is made,
never on import, and pyplot's global figure list is not touched, so nothing needs closing).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from training.fairness.audit import (
    DISPARITY_KINDS,
    DISPARITY_TITLES,
    FairnessAudit,
    GroupResult,
    Interval,
    StageAudit,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_COLUMNS: Final = 2
_OFFSET: Final = 0.17  # flag rate left of the group's tick, TPR right of it


def stage_figure(stage_audit: StageAudit) -> Figure:
    """Per attribute, each group's flag (selection) rate and TPR with their intervals; small
    groups are drawn hollow and their tick says so."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    attributes = stage_audit.attributes
    rows = max(1, math.ceil(len(attributes) / _COLUMNS))
    columns = min(_COLUMNS, max(1, len(attributes)))
    fig = Figure(figsize=(5.5 * columns, 3.2 * rows))
    FigureCanvasAgg(fig)  # the Agg canvas: savefig works, no display needed
    axes = fig.subplots(rows, columns, squeeze=False)
    for index, attribute in enumerate(attributes):
        ax = axes[index // columns][index % columns]
        groups = [g for g in stage_audit.groups if g.attribute == attribute]
        _draw_attribute(ax, attribute, groups, legend=index == 0)
    for index in range(len(attributes), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    fig.suptitle(
        f"Flag rate and TPR by group at {stage_audit.stage} (threshold "
        f"{stage_audit.threshold:.3f}; {stage_audit.confidence:.0%} bootstrap intervals; "
        f"hollow: under {stage_audit.min_group_size} students)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def audit_figures(fairness_audit: FairnessAudit) -> dict[str, Figure]:
    """`stage_figure` for every stage, by stage name."""
    return {s.stage: stage_figure(s) for s in fairness_audit.stages}


def _draw_attribute(ax: Axes, attribute: str, groups: list[GroupResult], *, legend: bool) -> None:
    for offset, rate, color, name in (
        (-_OFFSET, "selection_rate", "tab:blue", "flag rate"),
        (_OFFSET, "tpr", "tab:orange", "TPR"),
    ):
        labelled = False
        for x, group in enumerate(groups):
            value: float = getattr(group, rate)
            if math.isnan(value):
                continue
            low, high = _error(value, getattr(group, f"{rate}_ci"))
            ax.errorbar(
                x + offset,
                value,
                yerr=[[low], [high]],
                fmt="o",
                color=color,
                markerfacecolor="white" if group.small else color,
                capsize=3,
                label=None if labelled else name,  # once per rate in the legend
            )
            labelled = True
    ax.set_xticks(
        range(len(groups)),
        [f"{g.group}\nn={g.count}{' (small)' if g.small else ''}" for g in groups],
        fontsize=8,
    )
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylim(0.0, 1.0)
    ax.set_title(attribute, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    if legend:
        ax.legend(fontsize=8, loc="upper right")


def _error(value: float, interval: Interval) -> tuple[float, float]:
    low, high = interval
    if math.isnan(low) or math.isnan(high):
        return 0.0, 0.0
    return max(0.0, value - low), max(0.0, high - value)


# -- the model card table ------------------------------------------------------------------------


def render_markdown_table(audit: StageAudit | FairnessAudit) -> str:
    """Markdown for a model card: per stage, a table of groups, one of disparities, the worst
    of each disparity, and the notes."""
    stages = audit.stages if isinstance(audit, FairnessAudit) else (audit,)
    return "\n\n".join(_stage_markdown(s) for s in stages) + "\n"


def _stage_markdown(stage: StageAudit) -> str:
    level = f"{stage.confidence:.0%}"
    lines = [
        f"### Fairness at {stage.stage}",
        "",
        f"Threshold {stage.threshold:.3f}. Intervals: {level} percentile bootstrap, "
        f"{stage.n_bootstrap} resamples within each group. Groups under "
        f"{stage.min_group_size} students are marked small, and they and `unknown` are not "
        "compared.",
        "",
        f"| attribute | group | n | flag rate [{level} CI] | TPR [{level} CI] | FPR | precision "
        "| AUC | calibration gap | small |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for g in stage.groups:
        cells = [
            g.attribute,
            g.group,
            str(g.count),
            _with_interval(g.selection_rate, g.selection_rate_ci),
            _with_interval(g.tpr, g.tpr_ci),
            _number(g.fpr),
            _number(g.precision),
            _number(g.roc_auc),
            _number(g.calibration_gap, signed=True),
            "yes" if g.small else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| attribute | "
        + " | ".join(DISPARITY_TITLES[k] for k in DISPARITY_KINDS)
        + " | compared |",
        "|---|" + "---:|" * len(DISPARITY_KINDS) + "---|",
    ]
    for d in stage.disparities:
        values = [_number(d.value(k)) for k in DISPARITY_KINDS]
        lines.append(f"| {d.attribute} | {' | '.join(values)} | {', '.join(d.compared_groups)} |")
    worst = [
        f"{DISPARITY_TITLES[w.kind]} {_number(w.value)} ({w.attribute})"
        for w in stage.worst.values()
        if w.attribute is not None
    ]
    lines += ["", f"Worst: {'; '.join(worst) if worst else 'nothing could be compared'}."]
    notes = [f"- {g.attribute} / {g.group}: {n}" for g in stage.groups for n in g.notes]
    notes += [f"- {d.attribute}: {n}" for d in stage.disparities for n in d.notes]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines)


def _number(value: float, *, signed: bool = False) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _with_interval(value: float, interval: Interval) -> str:
    if math.isnan(value):
        return "n/a"
    low, high = interval
    if math.isnan(low):
        return _number(value)
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"
