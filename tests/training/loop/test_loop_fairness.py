"""Realized fairness in the monitor: TPR, FPR and flag rate per student group from captures
joined with outcomes, equal to an independent computation on the students as generated; small
groups flagged; `unknown` for records without the attribute; bounded labels for Prometheus and
MLflow names."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from common.object_store import LocalStore
from tests.training.loop.helpers import put_batch, put_outcomes, student_line
from training.fairness import definitions_to_json, select_groups
from training.loop.groups import label_groups
from training.loop.monitor import monitor

TODAY = date(2026, 12, 10)


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(definitions_to_json(select_groups(["gender", "age_band"])))
    return loaded


@pytest.fixture
def students(tmp_path: Path) -> tuple[LocalStore, dict[int, dict[str, Any]]]:
    """400 students; men are scored higher whatever their outcome (a planted bias); eight are
    35 or older (a small group); twenty send the seed's record without Gender or age."""
    store = LocalStore(tmp_path / "store")
    rng = np.random.default_rng(7)
    lines, outcomes, truth = [], [], {}
    for student in range(1, 401):
        male = student % 2 == 0
        age = 40.0 if 21 <= student <= 28 else float(rng.integers(17, 30))
        dropout = bool(rng.random() < 0.35)
        p = float(np.clip(rng.normal(0.62 if dropout else 0.3, 0.15) + (0.2 if male else 0), 0, 1))
        attributes: dict[str, float] = {"GDP": 1.7}
        if student > 20:
            attributes |= {"Gender": float(male), "Age at enrollment": age}
        version = "2" if student <= 200 else "3"
        lines.append(
            student_line(
                student, round(p, 4), threshold=0.5, version=version, attributes=attributes
            )
        )
        outcomes.append((student, "Dropout" if dropout else "Graduate", "2026-11-30", "reg"))
        truth[student] = {
            "gender": ("male" if male else "female") if student > 20 else "unknown",
            "age_band": ("35+" if age >= 35 else "other") if student > 20 else "unknown",
            "y": int(dropout),
            "flag": round(p, 4) >= 0.5,
            "version": version,
        }
    put_batch(store, lines)
    put_outcomes(store, "reg.csv", outcomes)
    return store, truth


def rates(truth: dict[int, dict[str, Any]], keep: Any) -> tuple[float, float, float, int]:
    rows = [t for t in truth.values() if keep(t)]
    y = np.array([t["y"] for t in rows])
    d = np.array([t["flag"] for t in rows])
    tn, fp, fn, tp = confusion_matrix(y, d, labels=[0, 1]).ravel()
    return tp / (tp + fn), fp / (fp + tn), float(d.mean()), len(rows)


def test_group_figures_equal_an_independent_computation(
    students: tuple[LocalStore, dict[int, dict[str, Any]]],
) -> None:
    store, truth = students
    report = monitor(
        store,
        reference_auc_by_version={},
        today=TODAY,
        n_bootstrap=200,
        seed=3,
        group_definitions=document(),
    )
    groups = {(g.version, g.stage, g.attribute, g.group): g for g in report.groups}
    for version in ("all", "2", "3"):
        for gender in ("male", "female"):
            g = groups[(version, "all", "gender", gender)]
            tpr, fpr, flag_rate, n = rates(
                truth,
                lambda t, v=version, s=gender: t["gender"] == s and v in ("all", t["version"]),
            )
            assert g.count == n
            assert g.tpr.value == pytest.approx(tpr)
            assert g.fpr.value == pytest.approx(fpr)
            assert g.flag_rate.value == pytest.approx(flag_rate)
            assert g.tpr.low <= g.tpr.value <= g.tpr.high
            assert not g.small_sample
    # The planted bias: men's non-dropouts are flagged far more often.
    male, female = (
        groups[("all", "all", "gender", "male")],
        groups[("all", "all", "gender", "female")],
    )
    assert male.fpr.value > female.fpr.value + 0.2
    gap = {(a.version, a.stage, a.attribute): a for a in report.group_gaps}
    expected = max(abs(male.tpr.value - female.tpr.value), abs(male.fpr.value - female.fpr.value))
    assert gap[("all", "all", "gender")].eo_difference == pytest.approx(expected)
    assert gap[("all", "all", "gender")].compared_groups == ("female", "male")


def test_small_groups_and_unknown_are_shown_not_compared(
    students: tuple[LocalStore, dict[int, dict[str, Any]]],
) -> None:
    store, _ = students
    report = monitor(
        store, reference_auc_by_version={}, today=TODAY, n_bootstrap=200,
        group_definitions=document(),
    )  # fmt: skip
    groups = {(g.version, g.stage, g.attribute, g.group): g for g in report.groups}
    old = groups[("all", "all", "age_band", "35+")]
    assert old.count == 8
    assert old.small_sample
    assert any("small sample" in note for note in old.notes)
    young = groups[("all", "all", "age_band", "17-20")]
    # Eight students: an interval far wider than a large group's, never false certainty.
    assert (old.flag_rate.high - old.flag_rate.low) > 2 * (
        young.flag_rate.high - young.flag_rate.low
    )
    unknown = groups[("all", "all", "gender", "unknown")]
    assert unknown.count == 20
    gap = {(a.version, a.stage, a.attribute): a for a in report.group_gaps}
    assert "35+" not in gap[("all", "all", "age_band")].compared_groups
    assert "unknown" not in gap[("all", "all", "gender")].compared_groups


def test_metrics_carry_bounded_group_labels(
    students: tuple[LocalStore, dict[int, dict[str, Any]]],
) -> None:
    store, _ = students
    report = monitor(
        store, reference_auc_by_version={"2": 0.9}, today=TODAY, n_bootstrap=20,
        group_definitions=document(),
    )  # fmt: skip
    metrics = report.to_metrics()
    group_points = [p for p in metrics.points if p.name.startswith("dropout_loop_group_")]
    assert group_points
    for point in group_points:
        labels = dict(point.labels)
        assert set(labels) in (
            {"kind", "stage", "version", "attribute", "group"},
            {"kind", "stage", "version", "attribute"},  # the attribute's gap
        )
        assert labels["kind"] == "realized"
        assert labels["attribute"] in {"gender", "age_band"}
        if "group" in labels:
            allowed = {"female", "male", "17-20", "21-24", "25-34", "35+", "unknown"}
            assert labels["group"] in allowed
    male = next(
        g for g in report.groups if (g.version, g.stage, g.attribute, g.group)
        == ("2", "all", "gender", "male")
    )  # fmt: skip
    prom = metrics.prometheus
    labels = 'kind="realized",stage="all",version="2",attribute="gender",group="male"'
    assert prom[f"dropout_loop_group_tpr{{{labels}}}"] == male.tpr.value
    mlflow = metrics.mlflow
    assert mlflow["loop.realized.group.gender.male.tpr.v2.all"] == male.tpr.value
    assert "loop.realized.group.age_band.35_plus.flag_rate.all.all" in mlflow
    assert "loop.realized.group.gender.eo_difference.all.all" in mlflow
    assert not any(math.isnan(v) for v in mlflow.values())


def test_without_definitions_the_report_has_no_groups(
    students: tuple[LocalStore, dict[int, dict[str, Any]]],
) -> None:
    store, _ = students
    report = monitor(store, reference_auc_by_version={}, today=TODAY, n_bootstrap=10)
    assert report.groups == ()
    assert not any(p.name.startswith("dropout_loop_group_") for p in report.to_metrics().points)


def test_label_groups_without_the_column_is_unknown() -> None:
    import pandas as pd

    frame = pd.DataFrame({"Gender": [0.0, 1.0, np.nan]})
    labelled = label_groups(frame, document())
    assert labelled["group:gender"].tolist() == ["female", "male", "unknown"]
    assert labelled["group:age_band"].tolist() == ["unknown"] * 3
