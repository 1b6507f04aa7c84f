"""The audit: finds a planted bias, stays quiet without one, and handles small and odd groups."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from tests.training.fairness.synthetic import cohorts, scored
from training.fairness import (
    STAGES,
    UNKNOWN,
    GroupResult,
    StageAudit,
    assign_groups,
    audit,
    audit_stages,
    select_groups,
    worst_from_metrics,
)

THRESHOLD = 0.5
MLFLOW_METRIC_NAME = re.compile(r"^[A-Za-z0-9_\-. /]+$")


def _group(result: StageAudit, attribute: str, group: str) -> GroupResult:
    (found,) = [g for g in result.groups if g.attribute == attribute and g.group == group]
    return found


def _width(interval: tuple[float, float]) -> float:
    return interval[1] - interval[0]


@pytest.fixture(scope="module")
def biased() -> StageAudit:
    data = scored(seed=1, shift=2.0, shifted_group="south")
    return audit(data.y, data.prob, THRESHOLD, data.groups, stage="first_semester", seed=3)


@pytest.fixture(scope="module")
def fair() -> StageAudit:
    data = scored(seed=1)
    return audit(data.y, data.prob, THRESHOLD, data.groups, stage="first_semester", seed=3)


def test_planted_bias_is_found_and_named(biased: StageAudit) -> None:
    south, north = _group(biased, "region", "south"), _group(biased, "region", "north")
    assert south.selection_rate > north.selection_rate + 0.3
    assert south.fpr > north.fpr + 0.3
    region = biased.disparities[biased.attributes.index("region")]
    assert region.dp_difference > 0.3
    assert region.eo_difference > 0.3
    assert region.dp_ratio < 0.6
    for kind in ("dp_difference", "eo_difference", "dp_ratio"):
        assert biased.worst[kind].attribute == "region", kind
        assert biased.worst[kind].stage == "first_semester"
    # The planted bias inflates only the south's scores: its probabilities overstate its risk.
    assert south.calibration_gap > 0.1
    assert biased.worst["calibration_gap"].attribute == "region"


def test_unbiased_scores_give_small_disparities(fair: StageAudit) -> None:
    for disparity in fair.disparities:
        assert disparity.dp_difference < 0.06, disparity
        assert disparity.eo_difference < 0.08, disparity
        assert disparity.dp_ratio > 0.85, disparity
        assert disparity.calibration_gap < 0.06, disparity
    assert fair.worst["dp_difference"].value < 0.06


def test_rates_match_an_independent_pandas_computation() -> None:
    data = scored(seed=5, shift=1.0)
    result = audit(data.y, data.prob, THRESHOLD, data.groups, stage="enrollment", seed=0)
    frame = pd.DataFrame(
        {"y": data.y, "flag": (data.prob >= THRESHOLD).astype(int), "prob": data.prob}
    ).join(data.groups)
    for attribute in ("gender", "region"):
        by = frame.groupby(attribute)
        selection = by["flag"].mean()
        tpr = frame[frame.y == 1].groupby(attribute)["flag"].mean()
        fpr = frame[frame.y == 0].groupby(attribute)["flag"].mean()
        gap = by["prob"].mean() - by["y"].mean()
        for label in selection.index:
            g = _group(result, attribute, label)
            assert g.count == by.size()[label]
            assert g.positives == by["y"].sum()[label]
            assert g.selection_rate == pytest.approx(selection[label], abs=1e-12)
            assert g.tpr == pytest.approx(tpr[label], abs=1e-12)
            assert g.fpr == pytest.approx(fpr[label], abs=1e-12)
            assert g.calibration_gap == pytest.approx(gap[label], abs=1e-12)
            assert g.selection_rate_ci[0] <= g.selection_rate <= g.selection_rate_ci[1]
        disparity = result.disparities[result.attributes.index(attribute)]
        assert disparity.dp_difference == pytest.approx(selection.max() - selection.min())
        assert disparity.dp_ratio == pytest.approx(selection.min() / selection.max())
        eo = max(tpr.max() - tpr.min(), fpr.max() - fpr.min())
        assert disparity.eo_difference == pytest.approx(eo)
        assert disparity.calibration_gap == pytest.approx(gap.max() - gap.min())


@pytest.mark.parametrize("with_one_class_group", [False, True])
def test_disparities_are_fairlearns_own_functions_on_the_compared_groups(
    with_one_class_group: bool,
) -> None:
    """The audit takes the gaps from one MetricFrame; fairlearn's demographic parity and
    equalized odds functions on the same compared groups must give the same figures (a group
    without dropouts is left out of equalized odds only)."""
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
    )

    spec = {"a": (700, 0.3, 0.0), "b": (500, 0.4, 0.8), "c": (400, 0.2, -0.5), "tiny": (12, 0.3, 2)}
    if with_one_class_group:
        spec["stayers"] = (200, 0.0, 0.3)
    data = cohorts(spec, seed=4)
    result = audit(data.y, data.prob, THRESHOLD, data.groups, stage="enrollment", n_bootstrap=0)
    (disparity,) = result.disparities
    compared = ("a", "b", "c", "stayers") if with_one_class_group else ("a", "b", "c")
    assert disparity.compared_groups == compared
    labels = data.groups["cohort"].to_numpy()
    flags = (data.prob >= THRESHOLD).astype(int)
    inside = np.isin(labels, compared)
    y, f, s = data.y[inside], flags[inside], labels[inside]
    assert disparity.dp_difference == pytest.approx(
        demographic_parity_difference(y, f, sensitive_features=s), abs=1e-12
    )
    assert disparity.dp_ratio == pytest.approx(
        demographic_parity_ratio(y, f, sensitive_features=s), abs=1e-12
    )
    both = np.isin(labels, ("a", "b", "c"))
    eo = equalized_odds_difference(data.y[both], flags[both], sensitive_features=labels[both])
    assert disparity.eo_difference == pytest.approx(eo, abs=1e-12)
    assert any("left out of the equalized odds" in n for n in disparity.notes) == (
        with_one_class_group
    )


def test_small_group_has_a_wide_interval_is_flagged_and_not_compared() -> None:
    # `tiny` is scored far higher than the rest: were it compared, the gap would be huge.
    data = cohorts({"big_a": (1500, 0.3, 0.0), "big_b": (1500, 0.3, 0.0), "tiny": (15, 0.3, 1.5)})
    result = audit(data.y, data.prob, THRESHOLD, data.groups, stage="enrollment", min_group_size=30)
    tiny, big = _group(result, "cohort", "tiny"), _group(result, "cohort", "big_a")
    assert tiny.count == 15
    assert big.count == 1500
    assert tiny.small
    assert not big.small
    assert _width(tiny.selection_rate_ci) > 4 * _width(big.selection_rate_ci)
    assert _width(tiny.calibration_gap_ci) > 4 * _width(big.calibration_gap_ci)
    assert any("minimum group size 30" in note for note in tiny.notes)
    (disparity,) = result.disparities
    assert disparity.compared_groups == ("big_a", "big_b")
    assert tiny.selection_rate - big.selection_rate > 0.25
    assert disparity.dp_difference < 0.06
    assert result.worst["dp_difference"].value == disparity.dp_difference
    # Still shown: in the frame with its flag.
    frame = result.to_frame()
    assert bool(frame.loc[frame.group == "tiny", "small"].item())


def test_group_with_one_class_gets_nan_auc_and_a_note() -> None:
    data = cohorts(
        {
            "a": (600, 0.3, 0.0),
            "b": (600, 0.3, 0.0),
            "graduates": (80, 0.0, 0.0),
            "all": (40, 1.0, 0),
        }
    )
    result = audit(data.y, data.prob, THRESHOLD, data.groups, stage="enrollment")
    graduates, dropouts = _group(result, "cohort", "graduates"), _group(result, "cohort", "all")
    assert graduates.positives == 0
    assert dropouts.positives == dropouts.count == 40
    assert math.isnan(graduates.roc_auc)
    assert math.isnan(graduates.tpr)
    assert math.isnan(graduates.tpr_ci[0])
    assert not math.isnan(graduates.fpr)
    assert any("ROC-AUC undefined" in n for n in graduates.notes)
    assert math.isnan(dropouts.roc_auc)
    assert math.isnan(dropouts.fpr)
    assert any("FPR and ROC-AUC undefined" in n for n in dropouts.notes)
    (disparity,) = result.disparities
    # Both are compared for parity, but kept out of the equalized odds difference: fairlearn
    # would read their undefined TPR / FPR as 0.
    assert set(disparity.compared_groups) == {"a", "b", "graduates", "all"}
    assert disparity.eo_difference < 0.1
    assert any("equalized odds" in n for n in disparity.notes)
    metrics = result.to_metrics()
    assert "fairness.enrollment.cohort.graduates.roc_auc" not in metrics
    assert "fairness.enrollment.cohort.graduates.fpr" in metrics


def test_unknown_is_shown_but_not_compared() -> None:
    data = scored(seed=2)
    groups = data.groups.copy()
    groups.loc[groups.index[:400], "gender"] = UNKNOWN
    prob = data.prob.copy()
    prob[:400] = 0.99  # the records with a missing attribute are all flagged
    result = audit(data.y, prob, THRESHOLD, groups, stage="enrollment")
    unknown = _group(result, "gender", UNKNOWN)
    assert unknown.count == 400
    assert not unknown.small
    assert any("missing" in n for n in unknown.notes)
    gender = result.disparities[result.attributes.index("gender")]
    assert gender.compared_groups == ("female", "male")
    assert gender.dp_difference < 0.06
    assert [g.group for g in result.groups if g.attribute == "gender"][-1] == UNKNOWN


def test_missing_labels_in_the_groups_frame_count_as_unknown() -> None:
    data = scored(n=400, seed=2)
    groups = data.groups.copy()
    groups.loc[groups.index[:10], "region"] = None
    result = audit(data.y, data.prob, THRESHOLD, groups, stage="enrollment", n_bootstrap=20)
    assert _group(result, "region", UNKNOWN).count == 10


def test_too_few_comparable_groups_give_nan_not_an_error() -> None:
    data = cohorts({"big": (500, 0.3, 0.0), "tiny": (10, 0.3, 0.0)})
    result = audit(data.y, data.prob, THRESHOLD, data.groups, stage="enrollment")
    (disparity,) = result.disparities
    assert math.isnan(disparity.dp_difference)
    assert math.isnan(disparity.eo_difference)
    assert disparity.notes == ("fewer than two groups large enough to compare",)
    assert result.worst["dp_difference"].attribute is None
    assert "fairness.enrollment.cohort.dp_difference" not in result.to_metrics()


def test_same_seed_same_audit_other_seed_other_intervals() -> None:
    data = scored(n=1000, seed=4, shift=1.0)
    run = [
        audit(data.y, data.prob, THRESHOLD, data.groups, stage="enrollment", seed=s).to_frame()
        for s in (7, 7, 8)
    ]
    pd.testing.assert_frame_equal(run[0], run[1])
    assert (run[0]["selection_rate"] == run[2]["selection_rate"]).all()
    assert not (run[0]["selection_rate_low"] == run[2]["selection_rate_low"]).all()


def test_frame_and_metrics_shapes(biased: StageAudit) -> None:
    frame = biased.to_frame()
    assert len(frame) == 5  # female, male, east, north, south
    assert {
        "stage",
        "attribute",
        "group",
        "count",
        "selection_rate_low",
        "tpr_high",
        "small",
    } <= set(frame.columns)
    metrics = biased.to_metrics()
    assert metrics["fairness.first_semester.region.dp_difference"] == pytest.approx(
        biased.disparities[1].dp_difference
    )
    assert "fairness.first_semester.worst.eo_difference" in metrics
    assert "fairness.first_semester.region.south.selection_rate" in metrics
    assert all(MLFLOW_METRIC_NAME.match(k) for k in metrics)
    assert all(math.isfinite(v) for v in metrics.values())


def test_audit_stages_finds_the_stage_with_the_bias() -> None:
    fair = scored(n=2000, seed=6)
    biased = scored(n=2000, seed=6, shift=2.0, shifted_group="east")
    probs = {"enrollment": fair.prob, "first_semester": biased.prob, "second_semester": fair.prob}
    result = audit_stages(fair.y, probs, THRESHOLD, fair.groups, n_bootstrap=50)
    assert [s.stage for s in result.stages] == list(STAGES)
    worst = result.worst["eo_difference"]
    assert (worst.attribute, worst.stage) == ("region", "first_semester")
    assert len(result.to_frame()) == 3 * 5
    assert len(result.disparity_frame()) == 3 * 2
    metrics = result.to_metrics()
    assert metrics["fairness.worst.eo_difference"] == worst.value
    # What a gate reads back from a champion's logged metrics is the audit's own worst.
    assert worst_from_metrics(metrics) == result.worst
    assert "fairness.second_semester.gender.dp_ratio" in metrics
    thresholds = {"enrollment": 0.9}
    per_stage = audit_stages(
        fair.y, {"enrollment": fair.prob}, thresholds, fair.groups, n_bootstrap=0
    )
    assert per_stage.stage("enrollment").threshold == 0.9
    assert math.isnan(per_stage.stages[0].groups[0].selection_rate_ci[0])


def test_age_band_label_is_metric_safe_on_real_groups(uci_frame: pd.DataFrame) -> None:
    groups = assign_groups(uci_frame, select_groups(["age_band"]))
    y = (uci_frame["Target"] == "Dropout").to_numpy().astype(int)
    # A score that rises with age: the audit must see the age bands apart.
    prob = np.clip((uci_frame["Age at enrollment"].to_numpy() - 15) / 40, 0, 1)
    result = audit(y, prob, 0.3, groups, stage="enrollment", n_bootstrap=50)
    metrics = result.to_metrics()
    assert "fairness.enrollment.age_band.35_plus.selection_rate" in metrics
    assert _group(result, "age_band", "35+").selection_rate == 1.0
    assert _group(result, "age_band", "17-20").selection_rate == 0.0
    assert result.disparities[0].dp_difference == 1.0
    assert result.disparities[0].dp_ratio == 0.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"y_prob": np.array([0.1, np.nan, 0.2])}, "probabilities"),
        ({"y_prob": np.array([0.1, 1.2, 0.2])}, "probabilities"),
        ({"y_true": np.array([0, 2, 1])}, "0 or 1"),
        ({"y_true": np.array([0, 1])}, "same, non-zero number of rows"),
        ({"stage": "First Semester"}, "snake_case"),
        ({"threshold": 1.5}, "threshold"),
        ({"groups_frame": pd.DataFrame(index=range(3))}, "attribute column"),
        ({"groups_frame": pd.DataFrame({"Gender": ["f", "m", "m"]})}, "snake_case"),
        ({"stage": "worst"}, "snake_case"),
    ],
)
def test_bad_inputs_are_refused(change: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "y_true": np.array([0, 1, 1]),
        "y_prob": np.array([0.1, 0.9, 0.2]),
        "threshold": 0.5,
        "groups_frame": pd.DataFrame({"gender": ["female", "male", "male"]}),
        "stage": "enrollment",
        **change,
    }
    with pytest.raises(ValueError, match=message):
        audit(**arguments)  # type: ignore[arg-type]
