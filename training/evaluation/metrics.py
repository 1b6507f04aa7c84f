"""Quality of a model on held-out students: complete records, each stage, the seed's subset.

The same function scores the in-memory candidates, the registered version and the champion
loaded from the registry, so every number in a report and in the gate means the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.metrics import (
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from common.attributes import SEED_FEATURES, STAGES
from training.data.views import stage_view, subset_view

Predictor = Callable[[pd.DataFrame], np.ndarray]
# Complete records are the `second_semester` view: every attribute known.
VIEWS: Final = (*STAGES, "seed_subset")


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    decided = p >= threshold
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "f1_dropout": float(f1_score(y, decided, zero_division=0)),
        "brier": float(brier_score_loss(y, p)),
        "precision": float(precision_score(y, decided, zero_division=0)),
        "recall": float(recall_score(y, decided, zero_division=0)),
    }


def views_of(x: pd.DataFrame) -> dict[str, pd.DataFrame]:
    views: dict[str, pd.DataFrame] = {s: stage_view(x, s) for s in STAGES}
    views["seed_subset"] = subset_view(x, SEED_FEATURES)
    return views


# A source's own figure is reported (and gated on) only with this many of each class in the
# held-out part: fewer would make its ROC-AUC noise.
MIN_PER_CLASS_PER_SOURCE: Final = 10


def evaluate(
    predict: Predictor,
    x: pd.DataFrame,
    y: pd.Series,
    threshold: float,
    origin: pd.Series | None = None,
) -> dict[str, Any]:
    """{roc_auc, f1_dropout, brier, precision, recall, threshold, per_stage, seed_subset,
    per_source}.

    The top-level metrics are those of complete records; `per_source` (with several sources)
    holds each source's complete-record metrics and its count, where it has enough of each
    class (MIN_PER_CLASS_PER_SOURCE)."""
    truth = y.to_numpy()
    probabilities = {
        view: np.asarray(predict(frame), dtype="float64") for view, frame in views_of(x).items()
    }
    per_view = {view: binary_metrics(truth, p, threshold) for view, p in probabilities.items()}
    report: dict[str, Any] = {
        **per_view[STAGES[-1]],
        "threshold": threshold,
        "per_stage": {stage: per_view[stage] for stage in STAGES},
        "seed_subset": per_view["seed_subset"],
    }
    if origin is not None and origin.nunique() > 1:
        complete = probabilities[STAGES[-1]]
        per_source: dict[str, dict[str, float]] = {}
        for name in sorted(origin.unique()):
            mask = (origin == name).to_numpy()
            positives = int(truth[mask].sum())
            if min(positives, int(mask.sum()) - positives) < MIN_PER_CLASS_PER_SOURCE:
                continue
            per_source[str(name)] = {
                **binary_metrics(truth[mask], complete[mask], threshold),
                "count": float(mask.sum()),
            }
        report["per_source"] = per_source
    return report


def flatten(report: dict[str, Any], prefix: str = "test_") -> dict[str, float]:
    """MLflow metric names: test_roc_auc, test_roc_auc_enrollment, test_f1_dropout_seed_subset..."""
    out = {f"{prefix}{k}": float(v) for k, v in report.items() if isinstance(v, int | float)}
    for stage, metrics in report["per_stage"].items():
        out.update({f"{prefix}{k}_{stage}": float(v) for k, v in metrics.items()})
    out.update({f"{prefix}{k}_seed_subset": float(v) for k, v in report["seed_subset"].items()})
    for source, metrics in report.get("per_source", {}).items():
        out.update({f"{prefix}{k}_source_{source}": float(v) for k, v in metrics.items()})
    return out


SOURCE_PREFIX: Final = "source."


def gate_scores(report: dict[str, Any]) -> dict[str, float]:
    """The numbers the gate compares: held-out ROC-AUC at each stage (complete last) and, with
    several sources, on each source's own held-out students (`source.<name>`)."""
    scores: dict[str, float] = {
        stage: float(report["per_stage"][stage]["roc_auc"]) for stage in STAGES
    }
    for source, metrics in report.get("per_source", {}).items():
        scores[f"{SOURCE_PREFIX}{source}"] = float(metrics["roc_auc"])
    return scores
