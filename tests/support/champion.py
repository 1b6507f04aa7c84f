"""The session's one quick champion: trained once, shared by every test and xdist worker.

The first worker that needs it runs the real training CLI (`python -m training train --quick`)
against a dedicated `mlflow server` (sqlite store, served artifacts) in the session's shared
folder, keeps what the job printed, downloads the champion's files and stops the server. The
other workers wait on a file lock and read the result. Tests that need a registry with the
champion in it register copies of those files (as new versions, under names of their own);
`open_registry` serves the training job's own registry again for the tests of training itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.processes import ManagedProcess, inherited_environ
from devstack.services import mlflow_server
from devstack.settings import REPO_ROOT, StackSettings

MODEL_NAME = "student-dropout"
RESULT_FILE = "result.json"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (the xdist workers of one session)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class SessionChampion:
    """What the one training run of the session left: its output, registry and model files."""

    root: Path
    model_name: str
    version: str
    run_id: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def model_dir(self) -> Path:
        """The champion's files, downloaded from the registry as the consumer does."""
        return self.root / "model"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def summary(self) -> dict[str, Any]:
        return dict(json.loads((self.reports_dir / "training-summary.json").read_text()))

    @contextlib.contextmanager
    def open_registry(self, port: int) -> Iterator[str]:
        """Serves the training job's registry again (same store and artifacts); its URL."""
        settings = StackSettings(stack_dir=self.root / "server", mlflow_port=port)
        proc = ManagedProcess(mlflow_server(settings), self.root / "logs", self.root / "pids")
        proc.start()
        try:
            yield settings.mlflow_url
        finally:
            proc.stop()


def _train(root: Path, data_path: Path, port: int) -> dict[str, Any]:
    import mlflow.artifacts
    from mlflow import MlflowClient

    settings = StackSettings(stack_dir=root / "server", mlflow_port=port)
    proc = ManagedProcess(mlflow_server(settings), root / "logs", root / "pids").start()
    try:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "training", "train", "--quick", "--data", str(data_path)],
            cwd=REPO_ROOT,
            env={
                **inherited_environ(),
                "MLFLOW_TRACKING_URI": settings.mlflow_url,
                "MODEL_NAME": MODEL_NAME,
                "REPORTS_DIR": str(root / "reports"),
                "LOG_FORMAT": "json",
            },
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        seconds = time.monotonic() - started
        outcome: dict[str, Any] = {
            "returncode": result.returncode,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "seconds": round(seconds, 1),
            "version": "",
            "run_id": "",
        }
        if result.returncode == 0:
            client = MlflowClient(settings.mlflow_url, settings.mlflow_url)
            version = client.get_model_version_by_alias(MODEL_NAME, "champion")
            outcome["version"] = str(version.version)
            outcome["run_id"] = str(version.run_id)
            # Resolved with this client: MLflow's own models:/ resolution would use the
            # process-wide registry, not this server.
            uri = str(client.get_model_version_download_uri(MODEL_NAME, version.version))
            if uri.startswith("models:/"):  # an MLflow 3 logged model: its artifact folder
                uri = str(client.get_logged_model(uri.removeprefix("models:/")).artifact_location)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri,
                dst_path=str(root / "download"),
                tracking_uri=settings.mlflow_url,
                registry_uri=settings.mlflow_url,
            )
            Path(local).rename(root / "model")
        return outcome
    finally:
        proc.stop()


def session_champion(shared: Path, data_path: Path, port: int) -> SessionChampion:
    """The session's champion, training it first if no worker has yet (under a file lock)."""
    root = shared / "champion"
    with file_lock(shared / "champion.lock"):
        result_path = root / RESULT_FILE
        if not result_path.is_file():
            root.mkdir(parents=True, exist_ok=True)
            result_path.write_text(json.dumps(_train(root, data_path, port)), encoding="utf-8")
        outcome = json.loads(result_path.read_text(encoding="utf-8"))
    # The result file holds the rest of the fields, as `_train` wrote them.
    return SessionChampion(root=root, model_name=MODEL_NAME, **outcome)
