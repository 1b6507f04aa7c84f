"""MLflow tracking setup and run metadata (git commit, data digest)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import requests
from mlflow import MlflowClient
from tenacity import retry, stop_after_attempt, wait_fixed

from training.config import TrainingSettings
from training.errors import RegistryError

REPO_ROOT = Path(__file__).resolve().parents[1]


def configure_tracking(settings: TrainingSettings) -> MlflowClient:
    """Point MLflow at the configured server (or sqlite file) and select the experiment."""
    uri = settings.mlflow_tracking_uri
    if uri.startswith(("http://", "https://")):
        _wait_for_server(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = settings.mlflow_experiment_name
    try:
        if client.get_experiment_by_name(name) is None:
            location = settings.mlflow_artifact_location or sqlite_artifact_location(uri)
            client.create_experiment(name, artifact_location=location)
        mlflow.set_experiment(name)
    except mlflow.exceptions.MlflowException as exc:
        raise RegistryError(f"MLflow at {uri}: {exc.message}") from exc
    return client


def sqlite_artifact_location(uri: str) -> str | None:
    """`mlartifacts` next to a sqlite database, so runs never write into the current folder."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri.removeprefix("sqlite:///")).resolve()
    return (db.parent / "mlartifacts").as_uri()


def _wait_for_server(uri: str) -> None:
    @retry(stop=stop_after_attempt(3), wait=wait_fixed(1), reraise=True)
    def health() -> None:
        response = requests.get(f"{uri.rstrip('/')}/health", timeout=5)
        response.raise_for_status()

    try:
        health()
    except requests.RequestException as exc:
        host = urlparse(uri).netloc
        raise RegistryError(
            f"the MLflow tracking server at {host} is not reachable "
            f"(MLFLOW_TRACKING_URI={uri}): {exc.__class__.__name__}"
        ) from exc


def git_commit() -> str:
    """The commit the job runs from; `unknown` outside a git checkout (e.g. in an image)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"
