"""The fairness gate: a pure rule that says whether a challenger may serve, and why.

A challenger is refused when, for a configured disparity kind, its worst value (over attributes
and stages) is worse than the champion's by more than `tolerance`, or worse than the absolute
`cap`. The first model has no champion and is judged against the cap alone. A disparity that
cannot be measured (no attribute has two groups large enough) refuses too: an audit that saw
nothing is no evidence of fairness. `force` lets a person override, and the reason says so.

For `dp_ratio` (1 is parity) "worse" means lower, and its cap is a floor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from training.fairness.audit import (
    DISPARITY_KINDS,
    DISPARITY_TITLES,
    LOWER_IS_WORSE,
    WorstDisparity,
)

DEFAULT_GATE_KINDS: Final = ("dp_difference", "eo_difference")
_EPSILON: Final = 1e-12  # float noise must not turn "equal to the limit" into "beyond it"


@dataclass(frozen=True)
class FairnessDecision:
    """`figures` are MLflow tags (`fairness.gate.*`, string values)."""

    passed: bool
    reason: str
    figures: dict[str, str]


def fairness_decision(
    challenger_worst: Mapping[str, WorstDisparity],
    champion_worst: Mapping[str, WorstDisparity] | None,
    *,
    tolerance: float,
    cap: float | Mapping[str, float],
    force: bool,
    kinds: Sequence[str] = DEFAULT_GATE_KINDS,
) -> FairnessDecision:
    """Judge the challenger's worst disparities (`FairnessAudit.worst`) against the champion's
    and the cap (one for every kind, or one per kind), for each kind in `kinds`."""
    _check_config(tolerance, cap, kinds)
    failures: list[str] = []
    within: list[str] = []
    figures: dict[str, str] = {
        "fairness.gate.tolerance": _number(tolerance),
        "fairness.gate.kinds": ",".join(kinds),
        "fairness.gate.champion": "none" if champion_worst is None else "present",
    }
    for kind in kinds:
        limit = cap[kind] if isinstance(cap, Mapping) else cap
        mine = challenger_worst.get(kind)
        theirs = None if champion_worst is None else champion_worst.get(kind)
        figures.update(_kind_figures(kind, limit, mine, theirs))
        problems = _judge(kind, mine, theirs, tolerance=tolerance, limit=limit)
        if problems:
            failures.extend(problems)
        elif mine is not None:
            within.append(_within(kind, mine, limit, theirs))
    if not failures:
        first = "first model: " if champion_worst is None else ""
        reason = f"{first}{'; '.join(within)}"
        return _decision(True, reason, "passed", force, figures)
    refusal = "; ".join(failures)
    if force:
        return _decision(True, f"forced ({refusal})", "forced", force, figures)
    return _decision(False, refusal, "refused", force, figures)


def _check_config(tolerance: float, cap: float | Mapping[str, float], kinds: Sequence[str]) -> None:
    if not kinds:
        raise ValueError("configure at least one disparity kind for the fairness gate")
    unknown = [k for k in kinds if k not in DISPARITY_KINDS]
    if unknown:
        raise ValueError(
            f"unknown disparity kind(s) {unknown}; valid: {', '.join(DISPARITY_KINDS)}"
        )
    if isinstance(cap, Mapping):
        missing = [k for k in kinds if k not in cap]
        if missing:
            raise ValueError(f"no cap for disparity kind(s) {missing}")
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance {tolerance} must be a finite number >= 0")
    limits = [cap[k] for k in kinds] if isinstance(cap, Mapping) else [cap]
    if not all(math.isfinite(limit) for limit in limits):
        raise ValueError(f"caps must be finite numbers, got {cap}")


def _judge(
    kind: str,
    mine: WorstDisparity | None,
    theirs: WorstDisparity | None,
    *,
    tolerance: float,
    limit: float,
) -> list[str]:
    title = DISPARITY_TITLES[kind]
    if mine is None or not math.isfinite(mine.value):
        return [f"{title} could not be measured (no attribute has two groups large enough)"]
    lower = kind in LOWER_IS_WORSE
    sign = -1.0 if lower else 1.0  # turn "worse" into "larger" for both directions
    where = _where(mine)
    problems = []
    if sign * (mine.value - limit) > _EPSILON:
        bound = "floor" if lower else "cap"
        verb = "is below" if lower else "exceeds"
        digits = _digits(lambda d: _shown_gap(mine.value, limit, d, sign) > 0)
        problems.append(
            f"{title} {mine.value:.{digits}f}{where} {verb} the {bound} {limit:.{digits}f}"
        )
    champion = math.nan if theirs is None else theirs.value
    if math.isfinite(champion) and sign * (mine.value - champion) - tolerance > _EPSILON:
        verb = "is below" if lower else "exceeds"
        digits = _digits(lambda d: _shown_gap(mine.value, champion, d, sign) > round(tolerance, d))
        problems.append(
            f"{title} {mine.value:.{digits}f}{where} {verb} the champion's "
            f"{champion:.{digits}f} by more than {tolerance:.{digits}f}"
        )
    return problems


def _within(kind: str, mine: WorstDisparity, limit: float, theirs: WorstDisparity | None) -> str:
    bound = "floor" if kind in LOWER_IS_WORSE else "cap"
    text = f"{DISPARITY_TITLES[kind]} {mine.value:.2f}{_where(mine)} within the {bound} {limit:.2f}"
    if theirs is not None and math.isfinite(theirs.value):
        text += f" and the champion's {theirs.value:.2f} plus tolerance"
    return text


def _where(worst: WorstDisparity) -> str:
    attribute = f" on {worst.attribute}" if worst.attribute else ""
    stage = f" at {worst.stage}" if worst.stage else ""
    return attribute + stage


def _shown_gap(value: float, other: float, digits: int, sign: float) -> float:
    """How much worse `value` reads than `other` when both are printed with `digits`."""
    return round(sign * (round(value, digits) - round(other, digits)), digits)


def _digits(reads_true: Callable[[int], bool]) -> int:
    """Two decimals, more when the sentence would not read true at two (0.204 "exceeds" 0.2)."""
    return next((d for d in range(2, 7) if reads_true(d)), 6)


def _number(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.6g}"


def _kind_figures(
    kind: str, limit: float, mine: WorstDisparity | None, theirs: WorstDisparity | None
) -> dict[str, str]:
    figures = {f"fairness.gate.cap.{kind}": _number(limit)}
    for role, worst in (("challenger", mine), ("champion", theirs)):
        key = f"fairness.gate.{role}.{kind}"
        figures[key] = "none" if worst is None else _number(worst.value)
        if worst is not None:
            figures[f"{key}.attribute"] = worst.attribute or "none"
            figures[f"{key}.stage"] = worst.stage or "none"
    return figures


def _decision(
    passed: bool, reason: str, decision: str, force: bool, figures: dict[str, str]
) -> FairnessDecision:
    tags = {
        **figures,
        "fairness.gate.decision": decision,
        "fairness.gate.reason": reason,
        "fairness.gate.forced": str(decision == "forced").lower(),
        "fairness.gate.force_requested": str(force).lower(),
    }
    return FairnessDecision(passed=passed, reason=reason, figures=tags)
