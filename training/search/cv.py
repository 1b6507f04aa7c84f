"""Model search on the training part only: LR, RF, SVM and XGBoost (tuned with Optuna).

Every candidate is scored by the same stratified folds. Each training fold is augmented once
(`augmentation.augment`) and reused by every candidate, so they compete on identical data; the
validation fold is never augmented. It is scored as complete records and as seen at each stage,
and the selection score is the mean ROC-AUC over the three stages: the product scores students
all year, not only after the second semester.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from common.attributes import SEED_FEATURES, STAGES
from training.config import TrainingSettings
from training.data.views import stage_view, subset_view
from training.features.augmentation import augment
from training.features.pipeline import ModelKind, build_pipeline
from training.features.selection import RFA_THRESHOLD, FeatureSelection, select_features


@dataclass(frozen=True)
class SearchConfig:
    """How hard to search. `quick` is what tests and the demo use."""

    quick: bool
    folds: int
    xgb_trials: int
    lr_grid: tuple[dict[str, Any], ...]
    rf_grid: tuple[dict[str, Any], ...]
    svm_grid: tuple[dict[str, Any], ...]
    svm_max_rows: int  # kernel SVMs scale quadratically: they train on a sample of the fold
    rfa_folds: int
    rfa_estimators: int
    augment_copies: int
    augment_max_missing: float
    augment_pattern_share: float
    n_jobs: int
    seed: int

    def augment(
        self, x: pd.DataFrame, y: pd.Series, rng: np.random.Generator
    ) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
        """Training copies of (x, y) with this search's missingness settings."""
        return augment(
            x,
            y,
            copies=self.augment_copies,
            max_missing=self.augment_max_missing,
            rng=rng,
            patterns=(SEED_FEATURES,),
            pattern_share=self.augment_pattern_share,
        )

    def select_features(self, x: pd.DataFrame, y: pd.Series) -> FeatureSelection:
        """Recursive Feature Addition on augmented copies of (x, y), the seed's features kept:
        the selection step of training, and of `explore`'s report."""
        x_aug, y_aug, groups = self.augment(x, y, np.random.default_rng(self.seed))
        return select_features(
            x_aug,
            y_aug,
            groups,
            protect=SEED_FEATURES,
            folds=self.rfa_folds,
            n_estimators=self.rfa_estimators,
            threshold=RFA_THRESHOLD,
            n_jobs=self.n_jobs,
            seed=self.seed,
        )

    @classmethod
    def from_settings(cls, settings: TrainingSettings, *, quick: bool) -> SearchConfig:
        common: dict[str, Any] = {
            "augment_copies": settings.augment_copies,
            "augment_max_missing": settings.augment_max_missing,
            "augment_pattern_share": settings.augment_pattern_share,
            "n_jobs": settings.n_jobs,
            "seed": settings.search_seed,
        }
        if quick:
            return cls(
                quick=True,
                folds=3,
                xgb_trials=settings.quick_trials,
                lr_grid=({"C": 0.2},),
                rf_grid=({"n_estimators": 80, "min_samples_leaf": 3, "max_features": "sqrt"},),
                svm_grid=({"C": 1.0},),
                svm_max_rows=1200,
                rfa_folds=2,
                rfa_estimators=40,
                **common,
            )
        return cls(
            quick=False,
            folds=settings.cv_folds,
            xgb_trials=settings.search_trials,
            lr_grid=({"C": 0.05}, {"C": 0.2}, {"C": 1.0}),
            rf_grid=(
                {"n_estimators": 300, "min_samples_leaf": 3, "max_features": "sqrt"},
                {"n_estimators": 300, "min_samples_leaf": 1, "max_features": 0.3},
            ),
            svm_grid=({"C": 0.5}, {"C": 2.0}),
            svm_max_rows=3000,
            rfa_folds=3,
            rfa_estimators=100,
            **common,
        )


# A sound starting point, tried first so that even a small search has a good XGBoost.
XGB_DEFAULTS: dict[str, Any] = {
    "n_estimators": 300,
    "max_depth": 4,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.7,
    "min_child_weight": 2.0,
    "reg_lambda": 1.0,
}


def suggest_xgb(trial: optuna.Trial) -> dict[str, Any]:
    """The tuned space. Trees x depth is capped: per-row contributions cost grows with both."""
    return {
        "n_estimators": trial.suggest_int("n_estimators", 100, 300, step=50),
        "max_depth": trial.suggest_int("max_depth", 2, 5),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "subsample": trial.suggest_float("subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 10.0, log=True),
        "reg_lambda": trial.suggest_float("reg_lambda", 0.1, 10.0, log=True),
    }


@dataclass
class FoldPlan:
    """The folds of the training part, augmented training sets and validation views."""

    train_x: list[pd.DataFrame]
    train_y: list[pd.Series]
    val_index: list[np.ndarray]
    val_y: list[pd.Series]
    val_views: list[dict[str, pd.DataFrame]]  # stage name or "seed_subset" -> frame
    n_rows: int
    drop: list[str] = field(default_factory=list)


def plan_folds(x: pd.DataFrame, y: pd.Series, config: SearchConfig) -> FoldPlan:
    rng = np.random.default_rng(config.seed)
    folds = StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    plan = FoldPlan([], [], [], [], [], n_rows=len(x))
    for train_idx, val_idx in folds.split(x, y):
        xa, ya, _ = config.augment(x.iloc[train_idx], y.iloc[train_idx], rng)
        plan.train_x.append(xa)
        plan.train_y.append(ya)
        x_val = x.iloc[val_idx]
        views: dict[str, pd.DataFrame] = {s: stage_view(x_val, s) for s in STAGES}
        views["seed_subset"] = subset_view(x_val, SEED_FEATURES)
        plan.val_index.append(val_idx)
        plan.val_y.append(y.iloc[val_idx])
        plan.val_views.append(views)
    return plan


@dataclass
class CandidateResult:
    kind: ModelKind
    params: dict[str, Any]
    cv: dict[str, float]  # cv_roc_auc_<view>, cv_score, cv_score_std
    oof: np.ndarray  # out-of-fold P(dropout) of the complete training records
    seconds: float
    tried: list[dict[str, Any]] = field(default_factory=list)  # every config and its score


def cross_validate(
    kind: ModelKind,
    params: dict[str, Any],
    plan: FoldPlan,
    config: SearchConfig,
    *,
    on_fold: Callable[[int, float], None] | None = None,
) -> tuple[dict[str, float], np.ndarray]:
    """CV metrics and OOF probabilities; `on_fold(i, running_score)` may raise to stop early."""
    oof = np.full(plan.n_rows, np.nan)
    per_view: dict[str, list[float]] = {}
    fold_scores: list[float] = []
    rng = np.random.default_rng(config.seed)
    for i, (fold_x, fold_y) in enumerate(zip(plan.train_x, plan.train_y, strict=True)):
        xa, ya = fold_x, fold_y
        if kind == "svm" and len(xa) > config.svm_max_rows:
            take = rng.choice(len(xa), size=config.svm_max_rows, replace=False)
            xa, ya = xa.iloc[take], ya.iloc[take]
        model = build_pipeline(kind, params, drop=plan.drop, n_jobs=config.n_jobs, seed=config.seed)
        model.fit(xa, ya)
        stage_scores = []
        for view, frame in plan.val_views[i].items():
            p = model.predict_proba(frame)[:, 1]
            auc = float(roc_auc_score(plan.val_y[i], p))
            per_view.setdefault(view, []).append(auc)
            if view in STAGES:
                stage_scores.append(auc)
            if view == STAGES[-1]:
                oof[plan.val_index[i]] = p
        fold_scores.append(float(np.mean(stage_scores)))
        if on_fold is not None:
            on_fold(i, float(np.mean(fold_scores)))
    metrics = {f"cv_roc_auc_{view}": float(np.mean(v)) for view, v in per_view.items()}
    metrics["cv_score"] = float(np.mean(fold_scores))
    metrics["cv_score_std"] = float(np.std(fold_scores))
    return metrics, oof


def search_grid(
    kind: ModelKind,
    grid: tuple[dict[str, Any], ...],
    plan: FoldPlan,
    config: SearchConfig,
    *,
    advance: Callable[[], None],
) -> CandidateResult:
    start = time.perf_counter()
    best: CandidateResult | None = None
    tried = []
    for params in grid:
        metrics, oof = cross_validate(kind, params, plan, config)
        tried.append({"params": params, "cv_score": metrics["cv_score"]})
        if best is None or metrics["cv_score"] > best.cv["cv_score"]:
            best = CandidateResult(kind, dict(params), metrics, oof, 0.0)
        advance()
    assert best is not None
    best.seconds = time.perf_counter() - start
    best.tried = tried
    return best


def search_xgboost(
    plan: FoldPlan, config: SearchConfig, *, advance: Callable[[], None]
) -> CandidateResult:
    start = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    )
    study.enqueue_trial(XGB_DEFAULTS)
    best: dict[str, Any] = {}

    def objective(trial: optuna.Trial) -> float:
        params = suggest_xgb(trial)

        def on_fold(i: int, running: float) -> None:
            trial.report(running, i)
            if trial.should_prune():
                raise optuna.TrialPruned

        metrics, oof = cross_validate("xgboost", params, plan, config, on_fold=on_fold)
        if not best or metrics["cv_score"] > best["metrics"]["cv_score"]:
            best.update(params=params, metrics=metrics, oof=oof)
        return metrics["cv_score"]

    study.optimize(objective, n_trials=config.xgb_trials, callbacks=[lambda _s, _t: advance()])
    tried = [
        {"params": t.params, "cv_score": t.value, "state": t.state.name}
        for t in study.trials
        if t.value is None or math.isfinite(t.value)
    ]
    return CandidateResult(
        "xgboost",
        best["params"],
        best["metrics"],
        best["oof"],
        time.perf_counter() - start,
        tried,
    )
