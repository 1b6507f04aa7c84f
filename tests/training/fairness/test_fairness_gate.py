"""The fairness gate: refuses a worse or capped challenger, passes a fair one, force overrides."""

from __future__ import annotations

import math
import re

import pytest

from tests.training.fairness.synthetic import scored
from training.fairness import (
    FairnessAudit,
    FairnessDecision,
    WorstDisparity,
    audit_stages,
    fairness_decision,
    worst_from_metrics,
)

MLFLOW_TAG_KEY = re.compile(r"^[A-Za-z0-9_\-. /]+$")


def _worst(**values: float) -> dict[str, WorstDisparity]:
    return {k: WorstDisparity(k, v, "gender", "enrollment") for k, v in values.items()}


def _decide(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    *,
    tolerance: float,
    cap: float | dict[str, float],
    force: bool = False,
) -> FairnessDecision:
    """The gate on the challenger's kinds, worst disparities given as {kind: value}, each on
    gender at enrollment (`champion` None: a first model)."""
    return fairness_decision(
        _worst(**challenger),
        None if champion is None else _worst(**champion),
        tolerance=tolerance,
        cap=cap,
        force=force,
        kinds=tuple(challenger),
    )


def _audited(shift: float, seed: int) -> FairnessAudit:
    data = scored(n=2000, seed=seed, shift=shift, shifted_group="north")
    return audit_stages(data.y, {"enrollment": data.prob}, 0.5, data.groups, n_bootstrap=20)


@pytest.fixture(scope="module")
def fair_champion() -> FairnessAudit:
    return _audited(0.0, seed=10)


def test_biased_challenger_is_refused_against_a_fair_champion(fair_champion: FairnessAudit) -> None:
    challenger = _audited(2.0, seed=11)
    champion = worst_from_metrics(fair_champion.to_metrics())  # as logged in the registry
    decision = fairness_decision(challenger.worst, champion, tolerance=0.05, cap=0.9, force=False)
    assert not decision.passed
    assert "demographic parity difference" in decision.reason
    assert "equalized odds difference" in decision.reason
    assert "on region at enrollment exceeds the champion's" in decision.reason
    assert decision.figures["fairness.gate.decision"] == "refused"
    assert decision.figures["fairness.gate.challenger.eo_difference.attribute"] == "region"


def test_fair_challenger_is_promoted(fair_champion: FairnessAudit) -> None:
    challenger = _audited(0.0, seed=12)
    decision = fairness_decision(
        challenger.worst, fair_champion.worst, tolerance=0.05, cap=0.2, force=False
    )
    assert decision.passed, decision.reason
    assert decision.figures["fairness.gate.decision"] == "passed"
    assert "within the cap 0.20 and the champion's" in decision.reason


def test_first_model_is_judged_against_the_cap_only() -> None:
    fair = _decide({"dp_difference": 0.08, "eo_difference": 0.11}, None, tolerance=0.0, cap=0.2)
    assert fair.passed
    assert fair.reason.startswith("first model: demographic parity difference 0.08")
    assert fair.figures["fairness.gate.champion"] == "none"
    capped = _decide({"dp_difference": 0.08, "eo_difference": 0.31}, None, tolerance=0.0, cap=0.2)
    assert not capped.passed
    assert capped.reason == (
        "equalized odds difference 0.31 on gender at enrollment exceeds the cap 0.20"
    )


def test_cap_applies_with_a_champion_too() -> None:
    decision = _decide({"eo_difference": 0.30}, {"eo_difference": 0.29}, tolerance=0.05, cap=0.25)
    assert not decision.passed
    assert "exceeds the cap 0.25" in decision.reason
    assert "champion" not in decision.reason


def test_reason_reads_as_documented() -> None:
    challenger = {
        "eo_difference": WorstDisparity("eo_difference", 0.21, "age_band", "first_semester")
    }
    champion = {"eo_difference": WorstDisparity("eo_difference", 0.12, "gender", "enrollment")}
    decision = fairness_decision(
        challenger, champion, tolerance=0.05, cap=0.5, force=False, kinds=("eo_difference",)
    )
    assert decision.reason == (
        "equalized odds difference 0.21 on age_band at first_semester exceeds the champion's "
        "0.12 by more than 0.05"
    )


def test_more_digits_when_two_would_not_read_true() -> None:
    decision = _decide({"dp_difference": 0.1712}, {"dp_difference": 0.12}, tolerance=0.05, cap=1.0)
    assert "0.171 on gender at enrollment exceeds the champion's 0.120 by more than 0.050" in (
        decision.reason
    )


def test_force_overrides_and_says_so() -> None:
    decision = _decide(
        {"dp_difference": 0.4, "eo_difference": 0.1},
        {"dp_difference": 0.1, "eo_difference": 0.1},
        tolerance=0.05,
        cap=0.3,
        force=True,
    )
    assert decision.passed
    assert decision.reason.startswith("forced (demographic parity difference 0.40")
    assert decision.reason.endswith(")")
    assert decision.figures["fairness.gate.decision"] == "forced"
    assert decision.figures["fairness.gate.forced"] == "true"
    unneeded = _decide(
        {"dp_difference": 0.1, "eo_difference": 0.1}, None, tolerance=0.05, cap=0.3, force=True
    )
    assert unneeded.passed
    assert not unneeded.reason.startswith("forced")
    assert unneeded.figures["fairness.gate.forced"] == "false"
    assert unneeded.figures["fairness.gate.force_requested"] == "true"


def test_exactly_the_tolerance_or_the_cap_passes() -> None:
    decision = _decide({"dp_difference": 0.15}, {"dp_difference": 0.10}, tolerance=0.05, cap=0.15)
    assert decision.passed, decision.reason


def test_unmeasurable_disparity_refuses() -> None:
    decision = _decide({"dp_difference": math.nan}, None, tolerance=0.05, cap=0.2)
    assert not decision.passed
    assert "could not be measured" in decision.reason
    assert decision.figures["fairness.gate.challenger.dp_difference"] == "nan"


def test_champion_without_the_figure_is_judged_on_the_cap() -> None:
    decision = _decide({"eo_difference": 0.19}, {"dp_difference": 0.01}, tolerance=0.0, cap=0.2)
    assert decision.passed
    assert decision.figures["fairness.gate.champion.eo_difference"] == "none"


def test_ratio_is_worse_when_lower_and_its_cap_is_a_floor() -> None:
    decision = _decide({"dp_ratio": 0.6}, {"dp_ratio": 0.8}, tolerance=0.05, cap={"dp_ratio": 0.7})
    assert not decision.passed
    assert "demographic parity ratio 0.60 on gender at enrollment is below the floor 0.70" in (
        decision.reason
    )
    assert "is below the champion's 0.80 by more than 0.05" in decision.reason
    better = _decide({"dp_ratio": 0.9}, {"dp_ratio": 0.8}, tolerance=0.0, cap={"dp_ratio": 0.7})
    assert better.passed


def test_figures_are_tag_safe_strings(fair_champion: FairnessAudit) -> None:
    decision = fairness_decision(
        fair_champion.worst,
        fair_champion.worst,
        tolerance=0.02,
        cap={"dp_difference": 0.2, "eo_difference": 0.25},
        force=False,
    )
    assert decision.passed
    for key, value in decision.figures.items():
        assert key.startswith("fairness.gate.")
        assert MLFLOW_TAG_KEY.match(key), key
        assert isinstance(value, str)
    assert decision.figures["fairness.gate.cap.eo_difference"] == "0.25"
    assert decision.figures["fairness.gate.kinds"] == "dp_difference,eo_difference"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kinds": []}, "at least one"),
        ({"kinds": ["accuracy"]}, "unknown disparity kind"),
        ({"cap": {"dp_difference": 0.2}}, "no cap"),
        ({"tolerance": -0.1}, "tolerance"),
        ({"cap": math.nan}, "finite"),
    ],
)
def test_bad_configuration_raises(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"tolerance": 0.05, "cap": 0.2, "force": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        fairness_decision(_worst(dp_difference=0.1, eo_difference=0.1), None, **arguments)  # type: ignore[arg-type]
