"""Which groups a disparity is between, in words: the gate's decision and the model card name
the groups and their figures, not only the attribute ("flag rate 35+ 0.81 vs 17-20 0.09")."""

from __future__ import annotations

import math

from training.fairness.audit import FairnessAudit, GroupResult, WorstDisparity


def describe_worst(fairness_audit: FairnessAudit, worst: WorstDisparity) -> str:
    """The two groups behind `worst` and their figures; empty when nothing was compared."""
    if worst.attribute is None or worst.stage is None:
        return ""
    stage = fairness_audit.stage(worst.stage)
    disparity = next(d for d in stage.disparities if d.attribute == worst.attribute)
    compared = [
        g
        for g in stage.groups
        if g.attribute == worst.attribute and g.group in disparity.compared_groups
    ]
    if worst.kind in ("dp_difference", "dp_ratio"):
        return _extremes("flag rate", compared, "selection_rate")
    if worst.kind == "calibration_gap":
        return _extremes("calibration gap", compared, "calibration_gap", signed=True)
    both = [g for g in compared if 0 < g.positives < g.count]
    tpr, fpr = _spread(both, "tpr"), _spread(both, "fpr")
    return _extremes("TPR" if tpr >= fpr else "FPR", both, "tpr" if tpr >= fpr else "fpr")


def _spread(groups: list[GroupResult], rate: str) -> float:
    values = [getattr(g, rate) for g in groups if math.isfinite(getattr(g, rate))]
    return max(values) - min(values) if len(values) > 1 else -1.0


def _extremes(title: str, groups: list[GroupResult], rate: str, *, signed: bool = False) -> str:
    finite = [g for g in groups if math.isfinite(getattr(g, rate))]
    if len(finite) < 2:
        return ""
    high = max(finite, key=lambda g: getattr(g, rate))
    low = min(finite, key=lambda g: getattr(g, rate))
    form = "+.2f" if signed else ".2f"
    return (
        f"{title} {high.group} {getattr(high, rate):{form}} (n={high.count}) vs "
        f"{low.group} {getattr(low, rate):{form}} (n={low.count})"
    )
