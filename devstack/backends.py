"""One interface to start the stack's emulators and MLflow, as local processes or containers.

`STACK_BACKEND` chooses, explicitly: `processes` (the default; exactly how the embedded stack
starts them) or `containers` (each service from its image through testcontainers, as on
GitHub's runners). Nothing switches silently: `containers` without a Docker engine is an
error that says so. The consumer under test always runs as a local process.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Final

from devstack.processes import ManagedProcess, ServiceStartError
from devstack.services import (
    KINESIS_LOCAL_BEHAVIOUR,
    kinesis_local,
    mlflow_server,
    moto_dynamodb,
)
from devstack.settings import StackSettings

# The versions of the local processes (devstack/package.json, requirements/dev.txt); a
# test in tests/deploy keeps them and docker-compose.yml in step.
KINESIS_MOCK_IMAGE = "ghcr.io/etspaceman/kinesis-mock:0.6.2"
MOTO_IMAGE = "motoserver/moto:5.2.5"
MLFLOW_IMAGE = "ghcr.io/mlflow/mlflow:v3.17.2"


BACKENDS: Final = ("processes", "containers")


class BackendError(RuntimeError):
    """STACK_BACKEND names no backend, or the one it names cannot run here."""


def docker_available() -> bool:
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


class ProcessBackend:
    """kinesis-local (Node), moto_server and `mlflow server` as local processes."""

    name = "processes"
    description = "local processes, as the embedded stack starts them"

    @contextlib.contextmanager
    def run(self, settings: StackSettings) -> Iterator[list[ManagedProcess]]:
        started: list[ManagedProcess] = []
        try:
            for spec in (
                kinesis_local(settings),
                moto_dynamodb(settings),
                mlflow_server(settings),
            ):
                started.append(ManagedProcess(spec, settings.logs_dir, settings.pids_dir).start())
            yield started
        finally:
            for proc in reversed(started):
                proc.stop()


class ContainerBackend:
    """The same services from their images, through testcontainers."""

    name = "containers"
    description = "containers from the upstream images, through testcontainers"

    @contextlib.contextmanager
    def run(self, settings: StackSettings) -> Iterator[list[object]]:
        from testcontainers.core.container import DockerContainer

        kinesis = DockerContainer(KINESIS_MOCK_IMAGE).with_bind_ports(4568, settings.kinesis_port)
        for key, value in KINESIS_LOCAL_BEHAVIOUR.items():
            kinesis = kinesis.with_env(key, value)
        containers = [
            kinesis,
            DockerContainer(MOTO_IMAGE).with_bind_ports(5000, settings.dynamodb_port),
            DockerContainer(MLFLOW_IMAGE)
            .with_bind_ports(5000, settings.mlflow_port)
            .with_env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .with_command(
                "mlflow server --host 0.0.0.0 --port 5000 --serve-artifacts "
                "--backend-store-uri sqlite:////tmp/mlflow.db "
                "--artifacts-destination /tmp/artifacts"
            ),
        ]
        try:
            for container in containers:
                container.start()
            # The same readiness probes as the local processes.
            specs = (kinesis_local(settings), moto_dynamodb(settings), mlflow_server(settings))
            for spec in specs:
                deadline = time.monotonic() + spec.start_timeout
                while not spec.probe():
                    if time.monotonic() > deadline:
                        raise ServiceStartError(f"{spec.name} container is not ready")
                    time.sleep(0.5)
            yield list(containers)
        finally:
            for container in reversed(containers):
                with contextlib.suppress(Exception):
                    container.stop()


def choose_backend(name: str | None = None) -> ProcessBackend | ContainerBackend:
    """The backend STACK_BACKEND (or `name`) names; `processes` when unset."""
    chosen = (name or os.environ.get("STACK_BACKEND") or "processes").strip().lower()
    if chosen not in BACKENDS:
        raise BackendError(f"STACK_BACKEND={chosen!r}: expected one of {', '.join(BACKENDS)}")
    if chosen == "processes":
        return ProcessBackend()
    if not docker_available():
        raise BackendError(
            "STACK_BACKEND=containers but no Docker engine answers `docker info`; start one "
            "(on a machine without registries: ../shared/containers/standins.sh up) or use "
            "STACK_BACKEND=processes"
        )
    return ContainerBackend()
