"""Train a champion into a stack: the real training CLI, as an operator would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from devstack.processes import inherited_environ
from devstack.services import training_env
from devstack.settings import REPO_ROOT, StackSettings


class TrainingFailedError(RuntimeError):
    """The training job exited non-zero; the message holds what it printed."""


def run_training(
    settings: StackSettings,
    data_path: Path | None,
    *extra: str,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """`python -m training train --quick` against the stack's MLflow server (and its model
    name, loop store and Pushgateway: `training_env`); `data_path` None lets the job download
    and check the UCI archive itself."""
    data = ["--data", str(data_path)] if data_path is not None else []
    result = subprocess.run(
        [sys.executable, "-m", "training", "train", "--quick", *data, *extra],
        cwd=REPO_ROOT,
        env={
            **inherited_environ(),
            **training_env(settings),
            "LOG_FORMAT": "json",
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise TrainingFailedError(
            f"training exited {result.returncode}:\n{result.stdout}\n{result.stderr[-5000:]}"
        )
    return result
