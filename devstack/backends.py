"""One interface to start the stack's emulators and MLflow, as local processes or containers.

`STACK_BACKEND` chooses, explicitly: `processes` (the default; exactly how the embedded stack
starts them) or `containers` (each service from its image through testcontainers, as on
GitHub's runners). Nothing switches silently: `containers` without a Docker engine is an
error that says so. The consumer under test always runs as a local process. Both publish the
services on loopback only (the emulators and this MLflow have no authentication); a container
whose port Docker bound to another address is stopped with an error.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from devstack.processes import ManagedProcess, ServiceStartError
from devstack.services import KINESIS_LOCAL_BEHAVIOUR, base_services
from devstack.settings import StackSettings

# The versions of the local processes (devstack/package.json, requirements/dev.txt); a
# test in tests/deploy keeps them and docker-compose.yml in step.
KINESIS_MOCK_IMAGE = "ghcr.io/etspaceman/kinesis-mock:0.6.2"
MOTO_IMAGE = "motoserver/moto:5.2.5"
MLFLOW_IMAGE = "ghcr.io/mlflow/mlflow:v3.17.2"


BACKENDS: Final = ("processes", "containers")
LOOPBACK: Final = ("127.0.0.1", "::1")


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
            for spec in base_services(settings):
                started.append(ManagedProcess(spec, settings.logs_dir, settings.pids_dir).start())
            yield started
        finally:
            for proc in reversed(started):
                proc.stop()


@dataclass(frozen=True)
class ContainerSpec:
    """One service as a container: its image, the ports it publishes (container port -> host
    port, on 127.0.0.1), its environment and command."""

    image: str
    ports: Mapping[int, int]
    env: Mapping[str, str] = field(default_factory=dict)
    command: str | None = None

    def docker_ports(self) -> dict[str, tuple[str, int]]:
        """The `ports` argument of docker-py's `containers.run`: each on 127.0.0.1 only
        (testcontainers' `with_bind_ports` would bind every interface of the host)."""
        return {f"{port}/tcp": (LOOPBACK[0], host) for port, host in self.ports.items()}


def container_specs(settings: StackSettings) -> list[ContainerSpec]:
    """kinesis-mock, moto and MLflow on the stack's host ports."""
    return [
        ContainerSpec(
            KINESIS_MOCK_IMAGE, {4568: settings.kinesis_port}, dict(KINESIS_LOCAL_BEHAVIOUR)
        ),
        ContainerSpec(MOTO_IMAGE, {5000: settings.dynamodb_port}),
        ContainerSpec(
            MLFLOW_IMAGE,
            {5000: settings.mlflow_port},
            {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            "mlflow server --host 0.0.0.0 --port 5000 --serve-artifacts "
            "--backend-store-uri sqlite:////tmp/mlflow.db "
            "--artifacts-destination /tmp/artifacts",
        ),
    ]


def published_beyond_loopback(
    ports: Mapping[str, Sequence[Mapping[str, str]] | None],
) -> list[str]:
    """From `docker inspect`'s NetworkSettings.Ports: each binding on an address other than
    loopback, as `PORT/tcp -> HOST_IP:HOST_PORT`."""
    return [
        f"{port} -> {binding.get('HostIp')}:{binding.get('HostPort')}"
        for port, bindings in sorted(ports.items())
        for binding in bindings or []
        if binding.get("HostIp") not in LOOPBACK
    ]


class ContainerBackend:
    """The same services from their images, through testcontainers."""

    name = "containers"
    description = "containers from the upstream images, through testcontainers"

    @contextlib.contextmanager
    def run(self, settings: StackSettings) -> Iterator[list[object]]:
        from testcontainers.core.container import DockerContainer

        containers = []
        for spec in container_specs(settings):
            container = DockerContainer(spec.image)
            for key, value in spec.env.items():
                container = container.with_env(key, value)
            if spec.command:
                container = container.with_command(spec.command)
            ports: dict[str, Any] = container.ports  # docker-py takes (host ip, host port)
            ports.update(spec.docker_ports())
            containers.append(container)
        try:
            for container in containers:
                container.start()
                wrapped = container.get_wrapped_container()
                wrapped.reload()
                wide = published_beyond_loopback(wrapped.attrs["NetworkSettings"]["Ports"])
                if wide:
                    raise ServiceStartError(
                        f"{container.image} publishes beyond loopback: {', '.join(wide)}"
                    )
            # The same readiness probes as the local processes.
            for service in base_services(settings):
                deadline = time.monotonic() + service.start_timeout
                while not service.probe():
                    if time.monotonic() > deadline:
                        raise ServiceStartError(f"{service.name} container is not ready")
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
