"""Register the chosen candidate: contract, staged files, MLflow model version, plots, tags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from common.attributes import STAGES
from training.config import TrainingSettings
from training.data.reading import Dataset
from training.data.split import Split
from training.evaluation import plots
from training.evaluation.metrics import views_of
from training.evaluation.threshold import risk_bands
from training.features.pipeline import EXPLAINABLE, classifier_features, feature_label
from training.registry.contract import build_contract, calibration_section, example_records
from training.registry.packaging import log_model, predict_ms_per_1000, stage_model, staging_dir
from training.search.candidates import Candidate

POLICY = "best cross-validated explainable candidate"


@dataclass(frozen=True)
class Registered:
    version: str
    contract: dict[str, Any]
    predict_ms_per_1000: float


def register_chosen(
    settings: TrainingSettings,
    dataset: Dataset,
    split: Split,
    chosen: Candidate,
    *,
    git_commit: str,
    cv_winner: str,
) -> Registered:
    """Log the chosen pipeline as a new version of MODEL_NAME in the candidate's own run."""
    kind = chosen.result.kind
    with staging_dir() as tmp, mlflow.start_run(run_id=chosen.run_id, nested=True):
        folder = Path(tmp)
        contract = build_contract(
            model_name=settings.model_name,
            model_kind=kind,
            contributions=EXPLAINABLE[kind],
            training={
                "run_id": chosen.run_id,
                "data_sha256": dataset.source.sha256,
                "git_commit": git_commit,
                "split_seed": split.seed,
                "test_size": split.test_size,
                "n_train": len(split.x_train),
                "n_test": len(split.x_test),
            },
            threshold=chosen.threshold,
            risk_bands=risk_bands(chosen.threshold, split.y_train.to_numpy(), chosen.result.oof),
            top_k_factors=settings.top_k_factors,
            x_train=split.x_train,
            code_domain=dataset.features,
            feature_names=classifier_features(chosen.pipeline, split.x_train),
            input_example=example_records(split.x_train, split.y_train),
            metrics=chosen.report,
        )
        contract["calibration"] = calibration_section(chosen.pipeline, split.x_test, split.y_test)
        contract, served = stage_model(chosen.pipeline, contract, folder)
        predict_ms = predict_ms_per_1000(served, _mixed_stage_rows(split.x_test))
        info = log_model(folder, contract, settings.model_name)
        version = str(info.registered_model_version)
        mlflow.log_metric("predict_ms_per_1000", predict_ms)
        mlflow.set_tags(
            {
                "role": "registered",
                "registered_version": version,
                "selection.cv_winner": cv_winner,
                "selection.registered_kind": kind,
                "selection.policy": POLICY,
            }
        )
        _log_figures(served, split, chosen)
    return Registered(version, contract, predict_ms)


def _mixed_stage_rows(x: pd.DataFrame) -> pd.DataFrame:
    """Held-out rows as production sends them: a mix of complete and partial records."""
    views = views_of(x)
    return pd.concat([views[s] for s in (*STAGES, "seed_subset")], ignore_index=True)


def _log_figures(served: Any, split: Split, chosen: Candidate) -> None:
    y = split.y_test.to_numpy()
    curves = {}
    for view, frame in views_of(split.x_test).items():
        curves[view] = (y, served.predict(None, frame)["dropout_probability"].to_numpy())
    y_full, p_full = curves[STAGES[-1]]
    names, contributions = served.explain(split.x_test)
    importance = dict(zip(names, np.abs(contributions).mean(axis=0).tolist(), strict=True))
    labels = {n: feature_label(n) for n in names}
    figures = {
        "roc.png": plots.roc_figure(curves),
        "precision_recall.png": plots.pr_figure(curves, chosen.threshold),
        "calibration.png": plots.calibration_figure(y_full, p_full),
        "confusion_matrix.png": plots.confusion_figure(y_full, p_full, chosen.threshold),
        "feature_importance.png": plots.importance_figure(importance, labels),
    }
    for name, fig in figures.items():
        mlflow.log_figure(fig, f"plots/{name}")
        plots.pyplot().close(fig)
    mlflow.log_dict(importance, "feature_importance.json")


def tag_version(
    client: MlflowClient,
    name: str,
    version: str,
    chosen: Candidate,
    cv_winner: str,
    scores: dict[str, float],
    tags: dict[str, str],
) -> None:
    values = {
        "model_kind": chosen.result.kind,
        "run_id": chosen.run_id,
        "git_commit": tags["git_commit"],
        "data_sha256": tags["data_sha256"],
        "search_mode": tags["search_mode"],
        "selection.cv_winner": cv_winner,
        "selection.policy": POLICY,
        **{f"selection.cv_score.{k}": round(v, 6) for k, v in scores.items()},
    }
    for key, value in values.items():
        client.set_model_version_tag(name, version, key, str(value))
