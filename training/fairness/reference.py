"""The live reference of an audit: per stage, attribute and group, the held-out flag rate and its
ratio to the attribute's rate, as the model's contract carries it (common/contract.py,
`FairnessSection.reference`).

The consumer counts the same things per group on the stream and the alert compares the two
ratios. A ratio (group rate over the rate of every student with a known value of the attribute)
is compared rather than the rate itself: the overall share of flagged students moves with the
cohort and the season, and a ratio moves only when groups are treated differently. `unknown`
(attribute missing) has no reference: missing is not a group of students.
"""

from __future__ import annotations

from typing import Any

from training.fairness.audit import FairnessAudit, GroupResult
from training.fairness.groups import UNKNOWN


def live_reference(fairness_audit: FairnessAudit) -> dict[str, dict[str, dict[str, Any]]]:
    """stage -> attribute -> {count, flagged, flag_rate, groups: label -> {count, flagged,
    flag_rate, ratio, small}} for every group but `unknown`."""
    reference: dict[str, dict[str, dict[str, Any]]] = {}
    for stage in fairness_audit.stages:
        per_attribute: dict[str, dict[str, Any]] = {}
        for attribute in stage.attributes:
            known = [g for g in stage.groups if g.attribute == attribute and g.group != UNKNOWN]
            per_attribute[attribute] = _attribute(known)
        reference[stage.stage] = per_attribute
    return reference


def _attribute(groups: list[GroupResult]) -> dict[str, Any]:
    count = sum(g.count for g in groups)
    flagged = sum(g.flagged for g in groups)
    rate = flagged / count if count else 0.0
    return {
        "count": count,
        "flagged": flagged,
        "flag_rate": round(rate, 6),
        "groups": {
            g.group: {
                "count": g.count,
                "flagged": g.flagged,
                "flag_rate": round(g.flagged / g.count, 6) if g.count else 0.0,
                "ratio": round(g.flagged / g.count / rate, 6) if rate > 0 and g.count else None,
                "small": g.small,
            }
            for g in groups
        },
    }
