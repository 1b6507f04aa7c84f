"""Fixtures of the training tests: the data, a real MLflow server, a quick-trained registry, and
two small pipelines (one sound, one without skill) for the gate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import requests

from tests.training.helpers import Trained, clean_env, free_port, make_settings
from training.augmentation import augment
from training.data import Dataset, read_dataset
from training.download import local_source
from training.features import build_pipeline
from training.split import Split, held_out_split

SERVER_START_TIMEOUT = 120.0


@pytest.fixture(scope="session")
def dataset(uci_data_path: Path) -> Dataset:
    return read_dataset(local_source(uci_data_path))


@pytest.fixture(scope="session")
def split(dataset: Dataset) -> Split:
    return held_out_split(dataset, seed=42, test_size=0.2)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on a free loopback port: sqlite store, served local artifacts."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--serve-artifacts",
    ]
    # The job runner costs 1.7 GB and nothing here needs it.
    env = clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    log_path = root / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers die with it
        )
        try:
            _wait_healthy(url, process, log_path)
            yield url
        finally:
            _stop_group(process)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server not healthy after {SERVER_START_TIMEOUT}s:\n{log_path.read_text()}")


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, uci_data_path: Path) -> Trained:
    from training.train import run_training

    tmp = tmp_path_factory.mktemp("trained")
    settings = make_settings(f"sqlite:///{tmp / 'mlflow.db'}", uci_data_path, tmp)
    result = run_training(settings, quick=True)
    uri = f"models:/{settings.model_name}@{settings.model_alias}"
    model_dir = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp / "champion")))
    return Trained(settings, result, model_dir, mlflow.pyfunc.load_model(str(model_dir)))


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
