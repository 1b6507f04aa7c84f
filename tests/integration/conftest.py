"""Fixtures that start the real stack: emulators, MLflow, a trained champion, consumer workers."""

from __future__ import annotations

import functools
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scripts.stack.processes import ManagedProcess, inherited_environ
from scripts.stack.services import FAKE_AWS_ENV, consumer_service
from scripts.stack.settings import REPO_ROOT, StackSettings
from scripts.stack.streams import create_streams
from tests.integration.backends import (
    ContainerBackend,
    ProcessBackend,
    choose_backend,
    free_port,
)
from tests.integration.streaming import ConsumerHandle, Streams


@functools.cache
def backend() -> ProcessBackend | ContainerBackend:
    return choose_backend()


def pytest_report_header() -> str:
    if backend().name == "local processes":
        return (
            "integration services: local processes (no Docker engine answers here, so the "
            "testcontainers path of tests/integration/backends.py does not run)"
        )
    return "integration services: testcontainers (Docker engine found)"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackSettings]:
    """kinesis-local, moto (DynamoDB) and an MLflow server on free loopback ports."""
    settings = StackSettings(
        stack_dir=tmp_path_factory.mktemp("stack"),
        kinesis_port=free_port(),
        kinesis_tls_port=free_port(),
        dynamodb_port=free_port(),
        mlflow_port=free_port(),
        metrics_port=free_port(),
        prometheus_port=free_port(),
    )
    with backend().run(settings):
        yield settings


def run_training(
    stack: StackSettings, data_path: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m training train --quick` against the stack's MLflow server."""
    result = subprocess.run(
        [sys.executable, "-m", "training", "train", "--quick", "--data", str(data_path), *extra],
        cwd=REPO_ROOT,
        env={
            **inherited_environ(),
            "MLFLOW_TRACKING_URI": stack.mlflow_url,
            "MODEL_NAME": stack.model_name,
            "REPORTS_DIR": str(stack.stack_dir / "reports"),
            "LOG_FORMAT": "json",
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"training failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def champion(stack: StackSettings, uci_data_path: Path) -> str:
    """Trains --quick and promotes; returns the version behind @champion."""
    import mlflow

    run_training(stack, uci_data_path)
    client = mlflow.MlflowClient(tracking_uri=stack.mlflow_url)
    return str(client.get_model_version_by_alias(stack.model_name, "champion").version)


@pytest.fixture(scope="module")
def make_streams(stack: StackSettings) -> Callable[..., Streams]:
    """Fresh input/predictions/dead-letter streams and a fresh KCL application per call."""

    def make(input_shards: int = 4) -> Streams:
        tag = uuid.uuid4().hex[:8]
        settings = stack.model_copy(
            update={
                "input_stream": f"events-{tag}",
                "predictions_stream": f"predictions-{tag}",
                "dead_letter_stream": f"dead-letters-{tag}",
                "input_shards": input_shards,
                "kcl_application_name": f"consumer-{tag}",
            }
        )
        create_streams(settings)
        return Streams(settings)

    return make


@pytest.fixture(scope="module")
def start_consumer(stack: StackSettings) -> Iterator[Callable[..., ConsumerHandle]]:
    """Starts consumer workers (supervisor + KCL daemon + processors); stops them all after."""
    started: list[ConsumerHandle] = []

    def start(
        streams: Streams,
        *,
        worker: str = "worker-1",
        env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> ConsumerHandle:
        port = free_port()
        spec = consumer_service(
            streams.settings,
            # Unique per test: names the worker's log, state folder and KCL worker id.
            worker=f"{worker}-{streams.tag}",
            metrics_port=port,
            extra_env={
                "MODEL_POLL_INTERVAL_SECONDS": "2",
                # Drift gauges appear after this many records per processor.
                "DRIFT_UPDATE_EVERY_RECORDS": "50",
                "LOG_LEVEL": "INFO",
                **(env or {}),
            },
        )
        proc = ManagedProcess(spec, stack.logs_dir, stack.pids_dir).start(wait=wait)
        handle = ConsumerHandle(proc=proc, metrics_url=f"http://{stack.host}:{port}")
        started.append(handle)
        return handle

    start.running = lambda: [h for h in started if h.proc.alive()]  # type: ignore[attr-defined]
    yield start
    for handle in reversed(started):
        handle.proc.stop()


@pytest.fixture(scope="session")
def aws_env() -> dict[str, str]:
    return dict(FAKE_AWS_ENV)
