"""Candidates after the search: feature selection run, refit on the whole training part,
held-out report, the seed's 7-feature baseline. Each is logged as a nested MLflow run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from common.attributes import SEED_FEATURES, STAGES
from training.data.split import Split
from training.evaluation import plots
from training.evaluation.metrics import evaluate, flatten
from training.evaluation.report import ModelRow
from training.evaluation.threshold import choose_threshold
from training.features.pipeline import ModelKind, build_pipeline, feature_label, make_xgboost
from training.features.selection import RFA_THRESHOLD, FeatureSelection
from training.log import get_logger
from training.search.cv import CandidateResult, FoldPlan, SearchConfig

log = get_logger(__name__)

# The seed's 7-feature baseline: a plain XGBoost on complete records, as the seed trained it.
BASELINE_PARAMS: dict[str, Any] = {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.05}
BASELINE_NAME = "seed 7-feature baseline"


@dataclass(frozen=True)
class BaselineModel:
    """The seed's baseline after the search: its report row, and what an audit needs of it."""

    row: ModelRow
    predict: Callable[[pd.DataFrame], np.ndarray]
    threshold: float
    run_id: str


@dataclass
class Candidate:
    """A searched model kind refitted on the training part, with its held-out report."""

    result: CandidateResult
    pipeline: Pipeline
    threshold: float
    report: dict[str, Any]
    run_id: str = ""


def select_and_log(split: Split, config: SearchConfig, tags: dict[str, str]) -> FeatureSelection:
    """Recursive Feature Addition on the augmented training part, logged as its own run."""
    selection = config.select_features(split.x_train, split.y_train)
    with mlflow.start_run(run_name="feature-selection", nested=True):
        mlflow.set_tags({**tags, "role": "feature_selection"})
        mlflow.log_params(
            {
                "method": "RecursiveFeatureAddition",
                "threshold": RFA_THRESHOLD,
                "folds": config.rfa_folds,
                "estimators": config.rfa_estimators,
            }
        )
        mlflow.log_metrics(
            {
                "features_offered": len(selection.offered),
                "features_kept": len(selection.kept),
                "cv_roc_auc_all_features": selection.initial_roc_auc,
            }
        )
        mlflow.log_dict(
            {
                "kept": selection.kept,
                "dropped": selection.dropped,
                "drifts": selection.drifts,
                "importances": selection.importances,
            },
            "feature_selection.json",
        )
        labels = {n: feature_label(n) for n in selection.offered}
        figure = plots.selection_figure(selection.drifts, selection.kept, labels)
        mlflow.log_figure(figure, "feature_selection.png")
        plots.pyplot().close(figure)
    log.info("features_selected", kept=len(selection.kept), offered=len(selection.offered))
    return selection


def fit_final(
    kind: ModelKind, params: dict[str, Any], split: Split, config: SearchConfig, drop: list[str]
) -> Pipeline:
    """Refit on the whole (augmented) training part, as the search fitted each fold."""
    x, y, _ = config.augment(split.x_train, split.y_train, np.random.default_rng(config.seed + 1))
    if kind == "svm" and len(x) > config.svm_max_rows:
        take = np.random.default_rng(config.seed).choice(len(x), config.svm_max_rows, replace=False)
        x, y = x.iloc[take], y.iloc[take]
    pipeline = build_pipeline(kind, params, drop=drop, n_jobs=config.n_jobs, seed=config.seed)
    return pipeline.fit(x, y)


def fit_and_evaluate(
    result: CandidateResult, split: Split, config: SearchConfig, drop: list[str]
) -> tuple[Pipeline, float, dict[str, Any]]:
    """Refits `result`'s kind and parameters on the whole training part without `drop`; its
    threshold from the out-of-fold scores; its held-out report."""
    pipeline = fit_final(result.kind, result.params, split, config, drop)
    threshold = choose_threshold(split.y_train.to_numpy(), result.oof)
    report = evaluate(
        lambda f: pipeline.predict_proba(f)[:, 1],
        split.x_test,
        split.y_test,
        threshold,
        split.origin_test,
    )
    return pipeline, threshold, report


def finish_candidate(
    result: CandidateResult,
    split: Split,
    config: SearchConfig,
    selection: FeatureSelection,
    tags: dict[str, str],
) -> Candidate:
    pipeline, threshold, report = fit_and_evaluate(result, split, config, selection.dropped)
    with mlflow.start_run(run_name=result.kind, nested=True) as run:
        mlflow.set_tags({**tags, "role": "candidate", "model_kind": result.kind})
        mlflow.log_params({**result.params, "features_dropped": len(selection.dropped)})
        mlflow.log_metrics({**result.cv, **flatten(report), "search_seconds": result.seconds})
        mlflow.log_dict({"tried": result.tried}, "search.json")
        if result.kind == "xgboost":
            for i, trial in enumerate(result.tried):
                if trial["cv_score"] is not None:
                    mlflow.log_metric("trial_cv_score", trial["cv_score"], step=i)
    return Candidate(result, pipeline, threshold, report, run.info.run_id)


def baseline(
    split: Split, plan: FoldPlan, config: SearchConfig, tags: dict[str, str]
) -> BaselineModel:
    """The seed's model: XGBoost on its 7 attributes, complete records, no augmentation."""
    cols = list(SEED_FEATURES)
    n = len(split.x_train)
    oof = np.full(n, np.nan)
    stage_scores = []
    for val_idx, views, y_val in zip(plan.val_index, plan.val_views, plan.val_y, strict=True):
        train_idx = np.setdiff1d(np.arange(n), val_idx)
        model = make_xgboost(BASELINE_PARAMS, n_jobs=config.n_jobs, seed=config.seed)
        model.fit(split.x_train.iloc[train_idx][cols], split.y_train.iloc[train_idx])
        fold = [roc_auc_score(y_val, model.predict_proba(views[s][cols])[:, 1]) for s in STAGES]
        stage_scores.append(float(np.mean(fold)))
        oof[val_idx] = model.predict_proba(views[STAGES[-1]][cols])[:, 1]
    threshold = choose_threshold(split.y_train.to_numpy(), oof)
    final = make_xgboost(BASELINE_PARAMS, n_jobs=config.n_jobs, seed=config.seed)
    final.fit(split.x_train[cols], split.y_train)

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(final.predict_proba(frame[cols])[:, 1], dtype="float64")

    report = evaluate(predict, split.x_test, split.y_test, threshold, split.origin_test)
    cv_score = float(np.mean(stage_scores))
    with mlflow.start_run(run_name="baseline-seed7", nested=True) as run:
        mlflow.set_tags({**tags, "role": "baseline", "model_kind": "xgboost"})
        mlflow.log_params({**BASELINE_PARAMS, "features": ", ".join(cols)})
        mlflow.log_metrics({"cv_score": cv_score, **flatten(report)})
    row = ModelRow(BASELINE_NAME, report, cv_score, "7 attributes, complete records")
    return BaselineModel(row, predict, threshold, run.info.run_id)
