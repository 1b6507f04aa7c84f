"""One interface to start the stack's emulators and MLflow for integration tests.

Where a Docker engine answers (GitHub's runners), each service runs from its image through
testcontainers; otherwise (this project's development machines) as a local process, exactly as
the embedded stack starts it. The consumer under test always runs as a local process.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator

from scripts.stack.processes import ManagedProcess, ServiceStartError
from scripts.stack.services import (
    KINESIS_LOCAL_BEHAVIOUR,
    kinesis_local,
    mlflow_server,
    moto_dynamodb,
)
from scripts.stack.settings import StackSettings

# The versions of the local processes (scripts/stack/package.json, requirements/dev.txt); a
# test in tests/deploy keeps them and docker-compose.yml in step.
KINESIS_MOCK_IMAGE = "ghcr.io/etspaceman/kinesis-mock:0.6.2"
MOTO_IMAGE = "motoserver/moto:5.2.5"
MLFLOW_IMAGE = "ghcr.io/mlflow/mlflow:v3.17.2"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def docker_available() -> bool:
    if os.environ.get("STACK_BACKEND") == "process":
        return False
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

    name = "local processes"

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

    name = "testcontainers"

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


def choose_backend() -> ProcessBackend | ContainerBackend:
    return ContainerBackend() if docker_available() else ProcessBackend()
