"""Recursive Feature Addition (feature-engine), as the seed project selected its features.

It runs once per training run, on the augmented training part, with grouped folds (all copies of
a student on one side). Features are ranked by the importance of a small XGBoost, then added one
at a time; a feature stays only if it raises cross-validated ROC-AUC by more than `threshold`.
Running it on partial records matters: an attribute that adds nothing next to the semester
results can be what carries the score at enrollment.

Attributes in `protect` are never dropped. The selection is then fixed for every candidate of
the search (a `DropFeatures` step), which keeps the served pipeline lean. Because it saw the
whole training part, CV scores of the search are a little optimistic for every candidate alike;
the held-out split never took part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from feature_engine.selection import RecursiveFeatureAddition
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline

from training.features.pipeline import make_xgboost, preprocessing_steps

# A feature is kept when adding it raises cross-validated ROC-AUC at all.
RFA_THRESHOLD = 0.0


@dataclass(frozen=True)
class FeatureSelection:
    offered: list[str]
    kept: list[str]
    dropped: list[str]
    importances: dict[str, float]  # mean importance over the folds, in ranking order
    drifts: dict[str, float]  # ROC-AUC gain when the feature was added
    initial_roc_auc: float  # all features


def select_features(
    x: pd.DataFrame,
    y: pd.Series,
    groups: np.ndarray,
    *,
    protect: tuple[str, ...] = (),
    folds: int,
    n_estimators: int,
    threshold: float,
    n_jobs: int,
    seed: int,
) -> FeatureSelection:
    prep = Pipeline(preprocessing_steps(drop=[]))
    xp = prep.fit_transform(x, y)
    splits = list(
        StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(xp, y, groups)
    )
    estimator = make_xgboost(
        {"n_estimators": n_estimators, "max_depth": 3, "learning_rate": 0.1},
        n_jobs=n_jobs,
        seed=seed,
    )
    rfa = RecursiveFeatureAddition(
        estimator=estimator, scoring="roc_auc", cv=splits, threshold=threshold
    )
    rfa.fit(xp, y)
    offered = list(xp.columns)
    # Protected attributes stay whatever RFA says: they are what production records carry
    # (e.g. the seed's 7 attributes), and a partial record may have nothing else.
    dropped = [c for c in offered if c in set(rfa.features_to_drop_) and c not in protect]
    importances = rfa.feature_importances_.sort_values(ascending=False)
    return FeatureSelection(
        offered=offered,
        kept=[c for c in offered if c not in dropped],
        dropped=dropped,
        importances={str(k): float(v) for k, v in importances.items()},
        drifts={str(k): float(v) for k, v in rfa.performance_drifts_.items()},
        initial_roc_auc=float(rfa.initial_model_performance_),
    )
