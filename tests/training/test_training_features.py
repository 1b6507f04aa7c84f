"""Feature pipeline, missingness augmentation, feature selection, threshold and evaluation."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from common.attributes import (
    ATTRIBUTE_NAMES,
    ENCODED,
    REQUIRED,
    SEED_FEATURES,
    STAGES,
    attributes_known_at,
)
from training.data.split import Split
from training.data.views import stage_view
from training.evaluation.metrics import evaluate, flatten, gate_scores
from training.evaluation.threshold import choose_threshold, risk_bands
from training.features.augmentation import augment
from training.features.pipeline import (
    ENGINEERED,
    MODEL_KINDS,
    ModelKind,
    build_pipeline,
    feature_label,
    feature_sources,
    preprocessing_steps,
)
from training.features.selection import select_features

A1 = "Curricular units 1st sem (approved)"
E1 = "Curricular units 1st sem (enrolled)"
RATE1 = f"{A1}_div_{E1}"


def test_engineered_features_and_encoding(split: Split) -> None:
    prep = Pipeline(preprocessing_steps(drop=[]))
    x = split.x_train.head(300).copy()
    x.loc[0, E1] = 0.0  # no enrolled units: the rate is undefined, not infinite
    x.loc[1, A1] = np.nan  # a missing input gives a missing feature
    x.loc[2, "Course"] = np.nan  # a missing code becomes the prior
    out = prep.fit_transform(x, split.y_train.head(300))
    unseen = prep.transform(x.head(4).assign(Course=1.0))  # an unseen code too

    assert set(ENGINEERED) <= set(out.columns)
    assert set(ATTRIBUTE_NAMES) <= set(out.columns)
    assert np.isnan(out.loc[0, RATE1])
    assert np.isnan(out.loc[1, RATE1])
    assert not np.isinf(out.select_dtypes("number").to_numpy()).any()
    expected = x.loc[5, A1] / x.loc[5, E1]
    assert out.loc[5, RATE1] == pytest.approx(expected)
    prior = split.y_train.head(300).mean()
    assert out.loc[2, "Course"] == pytest.approx(prior)
    assert unseen["Course"].tolist() == pytest.approx([prior] * 4)
    # Encoded codes are smoothed dropout rates, not codes any more.
    assert out["Course"].between(0, 1).all()


def test_selection_prunes_unused_steps_and_codes() -> None:
    engineered_sem2 = [n for n in ENGINEERED if n.startswith("Curricular units 2nd sem (approved)")]
    drop = [*engineered_sem2, "Nacionality", "Gender"]
    steps = dict(preprocessing_steps(drop))
    assert "sem2_rates" not in steps  # nothing it makes is used: not computed at all
    assert {"sem1_rates", "grade_trend", "select", "encode"} <= set(steps)
    assert "Nacionality" not in steps["encode"].variables
    assert set(steps["select"].features_to_drop) == {"Nacionality", "Gender"}


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_kind_fits_and_scores_partial_records(split: Split, kind: ModelKind) -> None:
    x, y = split.x_train.head(600), split.y_train.head(600)
    xa, ya, _ = augment(x, y, copies=2, max_missing=0.5, rng=np.random.default_rng(0))
    small = {
        "xgboost": {"n_estimators": 20, "max_depth": 2},
        "random_forest": {"n_estimators": 10},
        "logistic_regression": {"C": 1.0},
        "svm": {"C": 1.0},
    }[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # pandas/feature-engine deprecations
        model = build_pipeline(kind, small, drop=[], n_jobs=1, seed=0).fit(xa, ya)
        for stage in STAGES:
            p = model.predict_proba(stage_view(split.x_test.head(50), stage))[:, 1]
            assert p.shape == (50,)
            assert np.isfinite(p).all()
            assert ((p >= 0) & (p <= 1)).all()


def test_labels_and_sources() -> None:
    assert feature_label(RATE1).startswith("1st semester approval rate")
    assert feature_sources(RATE1) == (A1, E1)
    assert feature_label("GDP_na") == "GDP is missing"
    assert feature_label("GDP") == "GDP"
    for name in ENGINEERED:
        assert set(feature_sources(name)) <= set(ATTRIBUTE_NAMES)


def test_augmentation_masks_stages_and_keeps_required(split: Split) -> None:
    x, y = split.x_train.head(400), split.y_train.head(400)
    xa, ya, groups = augment(x, y, copies=3, max_missing=0.0, rng=np.random.default_rng(1))
    assert len(xa) == 1200
    assert (groups == np.tile(np.arange(400), 3)).all()
    assert (ya.to_numpy() == np.tile(y.to_numpy(), 3)).all()
    pd.testing.assert_frame_equal(xa.iloc[:400].reset_index(drop=True), x.reset_index(drop=True))
    # With no random dropout each partial copy is exactly one stage's view of the student.
    stage_masks = {
        stage: np.array([c not in attributes_known_at(stage) for c in x.columns])
        for stage in STAGES
    }
    seen = set()
    for row in xa.iloc[400:].isna().to_numpy():
        matches = [s for s, mask in stage_masks.items() if (row == mask).all()]
        assert matches, "a partial copy is not a stage view"
        seen.update(matches)
    assert seen == set(STAGES)


def test_augmentation_random_dropout_and_patterns(split: Split) -> None:
    x, y = split.x_train.head(400), split.y_train.head(400)
    xa, _, _ = augment(x, y, copies=4, max_missing=0.6, rng=np.random.default_rng(2))
    partial = xa.iloc[400:]
    assert partial[list(REQUIRED)].notna().all().all()  # required attributes never removed
    assert partial.isna().to_numpy().mean() > 0.2
    xa, _, _ = augment(
        x,
        y,
        copies=2,
        max_missing=0.0,
        rng=np.random.default_rng(3),
        patterns=(SEED_FEATURES,),
        pattern_share=1.0,
    )
    present = xa.iloc[400:].notna()
    assert (present.sum(axis=1) == len(SEED_FEATURES)).all()
    assert present[list(SEED_FEATURES)].all().all()


def test_feature_selection_keeps_protected(split: Split) -> None:
    x, y = split.x_train.head(800), split.y_train.head(800)
    xa, ya, groups = augment(x, y, copies=2, max_missing=0.5, rng=np.random.default_rng(0))
    selection = select_features(
        xa,
        ya,
        groups,
        protect=SEED_FEATURES,
        folds=2,
        n_estimators=15,
        threshold=0.0,
        n_jobs=1,
        seed=0,
    )
    assert sorted(selection.kept + selection.dropped) == sorted(selection.offered)
    assert set(SEED_FEATURES) <= set(selection.kept)
    assert set(selection.drifts) | set(selection.importances) <= set(selection.offered)
    assert 0.5 < selection.initial_roc_auc <= 1.0
    assert set(ENCODED) <= set(selection.offered)


def test_threshold_maximises_f1_and_bands_cover_zero_to_one() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    p = np.clip(y * 0.35 + rng.uniform(0, 0.65, 2000), 0, 1)  # separable above ~0.35..0.65
    threshold = choose_threshold(y, p)
    assert 0.3 <= threshold <= 0.7
    bands = risk_bands(threshold, y, p)
    assert [b["name"] for b in bands] == ["low", "medium", "high"]
    assert bands[0]["lower"] == 0.0
    assert bands[-1]["upper"] == 1.0
    assert bands[-1]["lower"] == threshold
    for left, right in itertools.pairwise(bands):
        assert left["upper"] == right["lower"]
        assert left["lower"] < left["upper"]


def test_evaluation_reports_every_view(split: Split) -> None:
    def predict(frame: pd.DataFrame) -> np.ndarray:
        # A rule that only uses 1st-semester approvals: useless at enrollment (all NaN).
        return np.nan_to_num(frame[A1].to_numpy() == 0, nan=0.5).astype(float)

    report = evaluate(predict, split.x_test, split.y_test, threshold=0.5)
    assert set(report["per_stage"]) == set(STAGES)
    assert report["per_stage"]["enrollment"]["roc_auc"] == pytest.approx(0.5)
    assert report["roc_auc"] == report["per_stage"]["second_semester"]["roc_auc"] > 0.6
    flat = flatten(report)
    assert {"test_roc_auc", "test_roc_auc_enrollment", "test_brier_seed_subset"} <= set(flat)
    assert list(gate_scores(report)) == list(STAGES)
