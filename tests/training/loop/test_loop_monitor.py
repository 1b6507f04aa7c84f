"""The monitor on a local-folder store: counts, realized and estimated groups, import age, and
the flat metrics for MLflow and Prometheus."""

from __future__ import annotations

import math
import os
from datetime import UTC, date, datetime, time
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.object_store import LocalStore
from tests.training.loop.helpers import at, dead_letter_line, put_batch, put_outcomes, student_line
from training.loop.estimate import fit_calibrator
from training.loop.monitor import MonitorReport, monitor

TODAY = date(2026, 12, 10)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    rng = np.random.default_rng(0)
    lines, outcomes = [], []
    for student in range(1, 201):
        version = "2" if student <= 100 else "3"
        p = float(rng.beta(2, 3))
        lines.append(student_line(student, round(p, 4), version=version))
        if student <= 150:  # the first 150 have an outcome, drawn from the probability
            label = "Dropout" if rng.random() < p else "Graduate"
            outcomes.append((student, label, "2026-11-30", "registrar-2026-T1"))
    lines.append(dead_letter_line(None, sequence=999, scored_at=at("2026-10-02")))
    put_batch(store, lines)
    key = put_outcomes(store, "registrar-2026-T1.csv", [*outcomes, (999, "?", "x", "r")])
    stamp = datetime(2026, 12, 3, 12, tzinfo=UTC).timestamp()
    os.utime(store.root / key, (stamp, stamp))
    return store


def morning_report(store: LocalStore, **options: Any) -> MonitorReport:
    """The monitor at 9:00 today, against held-out ROC-AUCs of 0.86 (v2) and 0.88 (v3)."""
    return monitor(
        store,
        reference_auc_by_version={"2": 0.86, "3": 0.88},
        today=TODAY,
        now=datetime.combine(TODAY, time(9), tzinfo=UTC),
        **options,
    )


def test_monitor_report(store: LocalStore) -> None:
    report = morning_report(store, n_bootstrap=50, seed=1)
    counts = report.counts
    assert counts.capture_records == 201
    assert counts.dead_letters == 1
    assert counts.students_captured == 200
    assert counts.students_with_outcome == 150
    assert counts.students_joined == 150
    assert counts.students_pending == 50
    assert counts.outcome_problems == 1  # the row with "?" and "x": unknown_outcome first
    assert report.outcomes.problems.by_reason() == {"unknown_outcome": 1}
    assert report.days_since_last_outcome_import == 7
    assert report.days_since_last_decision == 10
    assert report.model_name == "student-dropout"
    realized = {(r.version, r.stage): r for r in report.realized}
    # Each version and "all" (every version together), at the stage and at "all" stages.
    assert set(realized) == set(product(("2", "3", "all"), ("first_semester", "all")))
    assert realized[("2", "all")].count == 100
    assert realized[("3", "all")].count == 50
    estimated = {(e.version, e.stage): e for e in report.estimated}
    # Only version 3 has students awaiting an outcome.
    assert set(estimated) == set(product(("3", "all"), ("first_semester", "all")))
    assert estimated[("3", "all")].count == 50


def test_metrics_are_flat_with_bounded_labels(store: LocalStore) -> None:
    report = morning_report(store, n_bootstrap=20)
    metrics = report.to_metrics()
    prom = metrics.prometheus
    auc = report.realized[0].roc_auc
    assert prom['dropout_loop_roc_auc{kind="realized",stage="first_semester",version="2"}'] == (
        auc.value
    )
    assert prom['dropout_loop_roc_auc_low{kind="realized",stage="first_semester",version="2"}'] == (
        auc.low
    )
    assert prom['dropout_loop_roc_auc{kind="held_out",stage="all",version="3"}'] == 0.88
    assert 'dropout_loop_f1{kind="estimated",stage="all",version="3"}' in prom
    assert prom["dropout_loop_students_pending"] == 50
    assert prom["dropout_loop_days_since_last_outcome_import"] == 7
    labels = {key for point in metrics.points for key, _ in point.labels}
    assert labels == {"kind", "stage", "version"}
    kinds = {value for point in metrics.points for key, value in point.labels if key == "kind"}
    assert kinds == {"realized", "estimated", "held_out"}
    mlflow = metrics.mlflow
    assert mlflow["loop.realized.roc_auc.v2.first_semester"] == auc.value
    assert mlflow["loop.held_out.roc_auc.v3.all"] == 0.88
    assert mlflow["loop.estimated.roc_auc.all.all"] == report.estimated[-1].roc_auc.value
    assert mlflow["loop.students_joined"] == 150
    assert not any(math.isnan(v) for v in mlflow.values())
    assert all(k.replace("_", "").replace(".", "").isalnum() for k in mlflow)


def test_calibrators_are_applied_per_version(store: LocalStore) -> None:
    rng = np.random.default_rng(1)
    p = rng.beta(2, 3, 2000)
    calibrator = fit_calibrator(p**2, (rng.random(2000) < p).astype(int))
    report = monitor(
        store,
        reference_auc_by_version={},
        today=TODAY,
        n_bootstrap=20,
        calibrators={"3": calibrator},
    )
    estimated = {(e.version, e.stage): e for e in report.estimated}
    assert estimated[("3", "all")].calibrated
    assert (
        report.to_metrics().prometheus[
            'dropout_loop_calibrated{kind="estimated",stage="all",version="3"}'
        ]
        == 1.0
    )


def test_an_empty_store_and_several_models(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "empty")
    report = monitor(store, reference_auc_by_version={}, today=TODAY, n_bootstrap=10)
    assert report.counts.capture_records == 0
    assert report.days_since_last_outcome_import is None
    assert report.estimated == ()
    assert [(r.version, r.stage, r.count) for r in report.realized] == [("all", "all", 0)]
    metrics = report.to_metrics()
    assert "dropout_loop_days_since_last_outcome_import" not in metrics.prometheus
    put_batch(store, [student_line(1)])
    put_batch(
        store,
        [student_line(2, model="other")],
        model="other",
    )
    with pytest.raises(ValueError, match="several models"):
        monitor(store, reference_auc_by_version={}, today=TODAY, n_bootstrap=10)
    chosen = monitor(
        store, reference_auc_by_version={}, today=TODAY, n_bootstrap=10, model_name="other"
    )
    assert chosen.counts.students_captured == 1
