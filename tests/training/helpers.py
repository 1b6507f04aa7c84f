"""Helpers of the training tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient

from tests.support.paths import REPO_ROOT
from training.config import TrainingSettings
from training.data.split import Split
from training.evaluation.metrics import evaluate
from training.evaluation.threshold import risk_bands
from training.features.pipeline import classifier_features
from training.registry.contract import build_contract, example_records
from training.registry.packaging import log_model, stage_model, staging_dir
from training.registry.tracking import configure_tracking


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without MLflow's variables, plus `extra`.

    mlflow.set_tracking_uri/set_registry_uri export MLFLOW_TRACKING_URI and MLFLOW_REGISTRY_URI,
    so after one in-process test a child would silently inherit another test's registry.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, **extra}


def run_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m training ...` in a real process, as the job image runs it: this
    environment without MLflow's variables (`clean_env`), plus `env`."""
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        cwd=cwd,
        env=clean_env(PYTHONPATH=str(REPO_ROOT), **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def make_settings(tracking_uri: str, data_path: Path, tmp: Path, **extra: Any) -> TrainingSettings:
    """Settings for a test, independent of the caller's environment variables."""
    values: dict[str, Any] = {
        "mlflow_tracking_uri": tracking_uri,
        "mlflow_experiment_name": "student-dropout-tests",
        "mlflow_artifact_location": None,
        "data_path": data_path,
        "reports_dir": tmp / "reports",
        "data_cache_dir": tmp / "cache",
        "model_name": "student-dropout",
        "model_alias": "champion",
        "gate_tolerance": 0.005,
        "split_seed": 42,
        "test_size": 0.2,
        **extra,
    }
    return TrainingSettings().model_copy(update=values)


def sqlite_registry(
    tmp: Path, data_path: Path, model_name: str, **extra: Any
) -> tuple[TrainingSettings, MlflowClient]:
    """Settings on a fresh sqlite registry in `tmp`, and a client of it (tracking and registry
    named: MLflow's process-wide URIs may point elsewhere)."""
    settings = make_settings(
        f"sqlite:///{tmp / 'mlflow.db'}", data_path, tmp, model_name=model_name, **extra
    )
    return settings, MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)


def champion_of(settings: TrainingSettings, client: MlflowClient) -> str:
    """The version behind the settings' alias."""
    return str(client.get_model_version_by_alias(settings.model_name, settings.model_alias).version)


def tags_of(settings: TrainingSettings, client: MlflowClient, version: str) -> dict[str, str]:
    return dict(client.get_model_version(settings.model_name, version).tags)


@dataclass(frozen=True)
class Trained:
    """The session's quick training run (tests/support/champion.py) and its champion."""

    model_name: str
    version: str
    run_id: str
    reports_dir: Path
    summary: dict[str, Any]  # training-summary.json
    model_dir: Path  # the champion's files, downloaded as the consumer does
    pyfunc: Any  # the champion loaded with mlflow.pyfunc


def register_pipeline(pipeline: Any, split: Split, settings: TrainingSettings) -> str:
    """Log `pipeline` as a contract-complete version of settings.model_name; return it."""
    configure_tracking(settings)
    threshold = 0.4
    report = evaluate(
        lambda f: pipeline.predict_proba(f)[:, 1], split.x_test, split.y_test, threshold
    )
    p_train = pipeline.predict_proba(split.x_train)[:, 1]
    with staging_dir() as tmp, mlflow.start_run() as run:
        contract = build_contract(
            model_name=settings.model_name,
            model_kind="xgboost",
            contributions="saabas",
            training={
                "run_id": run.info.run_id,
                "data_sha256": "test",
                "git_commit": "test",
                "split_seed": split.seed,
                "test_size": split.test_size,
                "n_train": len(split.x_train),
                "n_test": len(split.x_test),
            },
            threshold=threshold,
            risk_bands=risk_bands(threshold, split.y_train.to_numpy(), p_train),
            top_k_factors=3,
            x_train=split.x_train,
            code_domain=pd.concat([split.x_train, split.x_test]),
            feature_names=classifier_features(pipeline, split.x_train),
            input_example=example_records(split.x_train, split.y_train),
            metrics=report,
        )
        contract, _ = stage_model(pipeline, contract, Path(tmp))
        info = log_model(Path(tmp), contract, settings.model_name)
    return str(info.registered_model_version)
