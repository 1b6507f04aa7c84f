"""Realized quality: figures equal scikit-learn's, seeded intervals, small samples flagged,
undefined figures NaN with a note, and the reliability plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from training.loop import metrics as m
from training.loop.quality import plot_reliability, quality_by_group, realized_quality


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 3, n)
    y = (rng.random(n) < p).astype(int)
    return y, p, p >= 0.4


def test_figures_equal_scikit_learn_and_intervals_cover_them() -> None:
    y, p, d = synthetic(1500, 1)
    report = realized_quality(y, p, d, n_bootstrap=300, seed=3)
    assert report.roc_auc.value == roc_auc_score(y, p)
    assert report.f1.value == f1_score(y, d)
    assert report.brier.value == brier_score_loss(y, p)
    assert report.precision.value == precision_score(y, d)
    assert report.recall.value == recall_score(y, d)
    assert report.flag_rate.value == d.mean()
    assert (report.count, report.positives, report.flagged) == (1500, y.sum(), d.sum())
    assert not report.small_sample
    for metric in report.metrics().values():
        assert metric.low <= metric.value <= metric.high
        assert metric.high - metric.low < 0.1
    assert sum(b.count for b in report.bins) == 1500
    # ECE by hand: weighted gaps between mean probability and observed rate.
    ece = sum(
        b.count / 1500 * abs(b.mean_probability - b.observed_rate) for b in report.bins if b.count
    )
    assert report.ece.value == pytest.approx(ece, abs=1e-12)


def test_bootstrap_is_seeded() -> None:
    y, p, d = synthetic(300, 2)
    first = realized_quality(y, p, d, n_bootstrap=200, seed=5)
    again = realized_quality(y, p, d, n_bootstrap=200, seed=5)
    other = realized_quality(y, p, d, n_bootstrap=200, seed=6)
    assert first == again
    assert first.roc_auc.low != other.roc_auc.low


def test_vectorised_kernels_match_scikit_learn_row_by_row() -> None:
    rng = np.random.default_rng(0)
    p = rng.random((5, 200)).round(2)  # many ties
    y = (rng.random((5, 200)) < p).astype(np.int64)
    d = p >= 0.5
    aucs = m.auc(y, p)
    c = m.confusion(y, d)
    for row in range(5):
        assert aucs[row] == pytest.approx(roc_auc_score(y[row], p[row]), abs=1e-12)
        assert m.f1(c)[row] == pytest.approx(f1_score(y[row], d[row]), abs=1e-12)


def test_small_samples_are_flagged_and_undefined_figures_noted() -> None:
    report = realized_quality([0, 0, 0], [0.1, 0.2, 0.3], [False, False, False], n_bootstrap=50)
    assert report.small_sample
    assert math.isnan(report.roc_auc.value)
    assert math.isnan(report.precision.value)
    assert math.isnan(report.recall.value)
    assert math.isnan(report.f1.value)
    assert report.brier.value == pytest.approx((0.01 + 0.04 + 0.09) / 3)
    notes = " ".join(report.notes)
    assert "small sample: 3 rows, 0 dropouts" in notes
    assert "ROC-AUC undefined: only one class" in notes
    assert "precision undefined" in notes
    assert "recall undefined" in notes
    empty = realized_quality([], [], [], n_bootstrap=10)
    assert empty.count == 0
    assert empty.small_sample
    assert "no rows" in empty.notes


def test_groups_cover_versions_stages_and_roll_ups() -> None:
    y, p, d = synthetic(400, 4)
    frame = pd.DataFrame(
        {
            "model_version": ["2"] * 100 + ["10"] * 300,
            "stage": (["enrollment", "first_semester"] * 200),
            "y_true": y,
            "probability": p,
            "at_risk": d,
        }
    )
    reports = quality_by_group(frame, n_bootstrap=20, seed=1)
    keys = [(r.version, r.stage) for r in reports]
    assert keys == [
        ("2", "enrollment"),
        ("2", "first_semester"),
        ("10", "enrollment"),
        ("10", "first_semester"),
        ("2", "all"),
        ("10", "all"),
        ("all", "enrollment"),
        ("all", "first_semester"),
        ("all", "all"),
    ]
    assert reports[-1].count == 400
    assert reports[-1].roc_auc.value == roc_auc_score(y, p)


def test_reliability_plot_is_a_png(tmp_path: Path) -> None:
    y, p, d = synthetic(500, 5)
    reports = [
        realized_quality(y, p, d, n_bootstrap=50, version="3", stage="first_semester"),
        realized_quality(y[:30], p[:30], d[:30], n_bootstrap=50),
    ]
    path = plot_reliability(reports, tmp_path / "plots" / "reliability.png")
    assert path.read_bytes().startswith(b"\x89PNG")
