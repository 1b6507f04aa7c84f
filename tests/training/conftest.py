"""Fixtures of the training tests: the data, the session's quick-trained champion, and two small
pipelines (one sound, one without skill) for the gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest

from common.data_files import local_source
from tests.support.champion import SessionChampion
from tests.training.helpers import Trained
from training.data.reading import Dataset, read_dataset
from training.data.split import Split, held_out_split
from training.features.augmentation import augment
from training.features.pipeline import build_pipeline


@pytest.fixture(scope="session")
def dataset(uci_data_path: Path) -> Dataset:
    return read_dataset(local_source(uci_data_path))


@pytest.fixture(scope="session")
def split(dataset: Dataset) -> Split:
    return held_out_split(dataset, seed=42, test_size=0.2)


@pytest.fixture(scope="session")
def trained(champion_run: SessionChampion) -> Trained:
    """The session's one quick training run (tests/conftest.py): what it registered and wrote,
    and its champion loaded with mlflow.pyfunc from the downloaded files."""
    summary = champion_run.summary
    return Trained(
        model_name=champion_run.model_name,
        version=champion_run.version,
        run_id=champion_run.run_id,
        reports_dir=champion_run.reports_dir,
        summary=summary,
        model_dir=champion_run.model_dir,
        pyfunc=mlflow.pyfunc.load_model(str(champion_run.model_dir)),
    )


# -- registering hand-made models (gate tests) -------------------------------------------------


@pytest.fixture(scope="session")
def pipelines(split: Split) -> dict[str, Any]:
    """A sound small XGBoost pipeline, and the same trained on shuffled labels (no skill)."""
    x, y, _ = augment(
        split.x_train, split.y_train, copies=2, max_missing=0.5, rng=np.random.default_rng(0)
    )
    params = {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.1}
    good = build_pipeline("xgboost", params, drop=[], n_jobs=1, seed=0).fit(x, y)
    shuffled = y.sample(frac=1.0, random_state=1).reset_index(drop=True)
    bad = build_pipeline("xgboost", params, drop=[], n_jobs=1, seed=0).fit(x, shuffled)
    return {"good": good, "bad": bad}
