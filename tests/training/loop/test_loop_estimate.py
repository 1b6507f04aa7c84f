"""CBPE: estimates match realized figures on calibrated data, fail on badly calibrated data,
and match again once the calibrator (fitted on a labelled reference) is applied."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import auc, f1_score, precision_score, recall_score, roc_auc_score, roc_curve

from training.loop.estimate import (
    Calibrator,
    estimate_by_group,
    estimate_performance,
    estimate_roc_auc,
    expected_confusion,
    fit_calibrator,
)

N = 20_000
THRESHOLD = 0.4


def population(seed: int, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities (a logistic latent score) and labels drawn from them."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-(rng.normal(0, 1.5, n) - 0.7)))
    return p, (rng.random(n) < p).astype(int)


def distort(p: np.ndarray) -> np.ndarray:
    """Monotone, so the model ranks the same (same realized AUC), but far from calibrated."""
    return p**4


@pytest.fixture(scope="module")
def analysis() -> tuple[np.ndarray, np.ndarray]:
    return population(11)


@pytest.fixture(scope="module")
def reference() -> tuple[np.ndarray, np.ndarray]:
    return population(12)


def test_estimates_match_realized_figures_on_calibrated_data(
    analysis: tuple[np.ndarray, np.ndarray],
) -> None:
    p, y = analysis
    d = p >= THRESHOLD
    estimate = estimate_performance(p, d, n_simulations=200, seed=1)
    assert abs(estimate.roc_auc.value - roc_auc_score(y, p)) < 0.02
    assert abs(estimate.f1.value - f1_score(y, d)) < 0.02
    assert abs(estimate.precision.value - precision_score(y, d)) < 0.02
    assert abs(estimate.recall.value - recall_score(y, d)) < 0.02
    assert abs(estimate.expected_positives - y.sum()) / N < 0.01
    assert estimate.flag_rate.value == d.mean()
    # The simulated interval is the range of the realized figure if calibration holds.
    assert estimate.roc_auc.low <= roc_auc_score(y, p) <= estimate.roc_auc.high
    assert estimate.f1.low <= f1_score(y, d) <= estimate.f1.high
    assert not estimate.calibrated  # none applied: the probabilities are taken as they are


def test_badly_calibrated_probabilities_mislead_cbpe_without_the_calibrator(
    analysis: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray]
) -> None:
    p, y = analysis
    scores = distort(p)
    d = scores >= THRESHOLD**4  # the same decisions as before, at the model's own threshold
    realized_auc, realized_f1 = roc_auc_score(y, scores), f1_score(y, d)
    naive = estimate_performance(scores, d, n_simulations=50)
    assert abs(naive.roc_auc.value - realized_auc) > 0.05
    assert abs(naive.f1.value - realized_f1) > 0.1
    assert not naive.roc_auc.low <= realized_auc <= naive.roc_auc.high

    ref_p, ref_y = reference
    calibrator = fit_calibrator(distort(ref_p), ref_y)
    assert calibrator.kind == "isotonic"
    assert calibrator.needed
    assert calibrator.ece_after < calibrator.ece_before
    fixed = estimate_performance(scores, d, calibrator=calibrator, n_simulations=50)
    assert fixed.calibrated
    assert abs(fixed.roc_auc.value - realized_auc) < 0.02
    assert abs(fixed.f1.value - realized_f1) < 0.02


def test_estimated_auc_equals_the_roc_area_of_the_expected_curve() -> None:
    # When the "calibrated probabilities" are the labels themselves (0 or 1), the expected ROC
    # curve is the realized one: the estimate is the realized AUC exactly.
    rng = np.random.default_rng(3)
    scores = rng.random(500)
    y = (rng.random(500) < scores).astype(float)
    fpr, tpr, _ = roc_curve(y, scores)
    assert estimate_roc_auc(y, scores) == pytest.approx(auc(fpr, tpr), abs=1e-12)
    # Row order does not matter, ties included.
    tied = np.round(scores, 1)
    order = rng.permutation(500)
    assert estimate_roc_auc(y, tied) == pytest.approx(
        estimate_roc_auc(y[order], tied[order]), abs=1e-12
    )
    assert math.isnan(estimate_roc_auc(np.zeros(5), scores[:5]))


def test_expected_confusion_sums_the_probabilities() -> None:
    c = expected_confusion([0.9, 0.6, 0.2, 0.1], [True, True, False, False])
    assert (c.tp, c.fp, c.fn, c.tn) == pytest.approx((1.5, 0.5, 0.3, 1.7))


def test_calibrator_round_trips_and_identity_when_not_needed(
    reference: tuple[np.ndarray, np.ndarray],
) -> None:
    ref_p, ref_y = reference
    calibrator = fit_calibrator(distort(ref_p), ref_y)
    again = Calibrator.from_dict(calibrator.to_dict())
    probe = np.linspace(0, 1, 11)
    assert np.array_equal(again.calibrate(probe), calibrator.calibrate(probe))
    perfect = fit_calibrator(ref_y.astype(float), ref_y)  # AUC 1: nothing to calibrate
    assert perfect.kind == "identity"
    assert np.array_equal(perfect.calibrate(probe), probe)
    with pytest.raises(ValueError, match="too small"):
        fit_calibrator([0.1, 0.9, 0.8, 0.3], [0, 1, 0, 1])


def test_estimates_per_group_use_each_versions_calibrator(
    analysis: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray]
) -> None:
    p, y = analysis
    ref_p, ref_y = reference
    half = N // 2
    pending = pd.DataFrame(
        {
            "model_version": ["3"] * half + ["4"] * half,
            "stage": ["first_semester"] * N,
            "probability": np.r_[distort(p[:half]), p[half:]],  # v3 distorted, v4 calibrated
            "at_risk": np.r_[distort(p[:half]) >= THRESHOLD**4, p[half:] >= THRESHOLD],
        }
    )
    estimates = estimate_by_group(
        pending, calibrators={"3": fit_calibrator(distort(ref_p), ref_y)}, n_simulations=20
    )
    by_key = {(e.version, e.stage): e for e in estimates}
    v3 = by_key[("3", "first_semester")]
    assert v3.calibrated
    assert abs(v3.roc_auc.value - roc_auc_score(y[:half], p[:half])) < 0.02
    overall = by_key[("all", "all")]
    assert not overall.calibrated
    assert "calibration applied to 10000 of 20000" in overall.notes[0]
    # Pooled, the versions' raw scores rank the students: that is the realized AUC to match.
    assert abs(overall.roc_auc.value - roc_auc_score(y, pending["probability"])) < 0.02
