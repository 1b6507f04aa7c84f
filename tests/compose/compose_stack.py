"""The docker-compose stack, driven from a test: builds, up, state, logs, down.

Everything goes through the `docker` and `docker compose` command lines (the same commands a
person types), under a project name of its own (`dropout-e2e`), so a stack someone runs by hand
(`dropout`) is never touched. Images are pulled only when the test asks (COMPOSE_TEST_PULL=1,
as CI does); otherwise the test runs what the engine has. Which builder and which base images:
tests/support/docker_images.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tests.support.docker_images import DockerError, image_exists, run_docker
from tests.support.paths import REPO_ROOT

COMPOSE_FILE: Final = REPO_ROOT / "docker-compose.yml"
PROJECT: Final = "dropout-e2e"
# The project's own images, built one at a time (two cores: never in parallel).
BUILT_SERVICES: Final = ("mlflow", "trainer", "consumer")


# --- the running stack -----------------------------------------------------------------------
@dataclass(frozen=True)
class Container:
    id: str
    name: str
    service: str
    state: str  # running, exited, ...
    health: str | None  # healthy, starting, unhealthy; None without a health check
    exit_code: int
    hostname: str
    started_at: str
    restart_count: int
    ip_addresses: tuple[str, ...]

    @classmethod
    def from_inspect(cls, item: dict[str, Any]) -> Container:
        state = item["State"]
        networks = (item.get("NetworkSettings") or {}).get("Networks") or {}
        return cls(
            id=item["Id"],
            name=item["Name"].lstrip("/"),
            service=item["Config"]["Labels"].get("com.docker.compose.service", ""),
            state=state["Status"],
            health=(state.get("Health") or {}).get("Status"),
            exit_code=int(state.get("ExitCode", 0)),
            hostname=item["Config"]["Hostname"],
            started_at=state.get("StartedAt", ""),
            restart_count=int(item.get("RestartCount", 0)),
            ip_addresses=tuple(
                str(n["IPAddress"]) for n in networks.values() if n.get("IPAddress")
            ),
        )


@dataclass
class ComposeStack:
    """One compose project: the repository's file plus the test's override file."""

    files: list[Path]
    env: dict[str, str]
    log_dir: Path
    project: str = PROJECT
    timings: dict[str, float] = field(default_factory=dict)

    def compose(
        self, *args: str, timeout: float = 300.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        files = [arg for path in self.files for arg in ("--file", str(path))]
        return run_docker(
            ["compose", "--project-name", self.project, *files, *args],
            env=self.env,
            timeout=timeout,
            check=check,
        )

    def config(self) -> dict[str, Any]:
        doc = json.loads(self.compose("config", "--format", "json").stdout)
        assert isinstance(doc, dict)
        return doc

    def services(self) -> dict[str, dict[str, Any]]:
        return dict(self.config()["services"])

    def build(self, service: str) -> float:
        started = time.monotonic()
        self.compose("build", service, timeout=3600)
        seconds = time.monotonic() - started
        self.timings[f"build {service}"] = seconds
        return seconds

    def third_party_services(self) -> dict[str, str]:
        """service -> image for the services that run an image no service of the file builds."""
        services = self.services()
        built = {service.get("image") for service in services.values() if "build" in service}
        return {
            name: str(service["image"])
            for name, service in services.items()
            if "build" not in service and service.get("image") and service["image"] not in built
        }

    def pull(self, services: Sequence[str]) -> float:
        started = time.monotonic()
        self.compose("pull", "--quiet", *services, timeout=1800)
        return time.monotonic() - started

    def unavailable_images(self) -> dict[str, str]:
        """service -> image for the third-party services whose image this engine does not
        have: they cannot start without a pull."""
        return {
            name: image
            for name, image in self.third_party_services().items()
            if not image_exists(image)
        }

    def published_ports(self) -> dict[str, list[int]]:
        ports: dict[str, list[int]] = {}
        for name, service in self.services().items():
            for port in service.get("ports") or []:
                if port.get("published"):
                    ports.setdefault(name, []).append(int(port["published"]))
        return ports

    def up(self, services: Sequence[str]) -> float:
        """`up -d` of these services; compose waits for each dependency's condition (healthy,
        completed) before it starts the next, so this returns once the trainer has finished and
        the consumers are healthy."""
        started = time.monotonic()
        self.compose("up", "--detach", "--no-build", "--pull", "never", *services, timeout=1200)
        seconds = time.monotonic() - started
        self.timings["up"] = seconds
        return seconds

    def containers(self, service: str | None = None) -> list[Container]:
        ids = self.compose("ps", "--all", "--quiet", *([service] if service else [])).stdout
        ids_list = ids.split()
        if not ids_list:
            return []
        items = json.loads(run_docker(["inspect", *ids_list]).stdout)
        return sorted((Container.from_inspect(i) for i in items), key=lambda c: c.name)

    def container(self, container_id: str) -> Container:
        items = json.loads(run_docker(["inspect", container_id]).stdout)
        return Container.from_inspect(items[0])

    def logs(self, service: str, tail: int = 60) -> str:
        result = self.compose(
            "logs", "--no-color", "--tail", str(tail), service, check=False, timeout=60
        )
        return result.stdout + result.stderr

    def save_logs(self) -> Path:
        """Every service's whole log into the log folder; returns the folder."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            names = list(self.services())
        except DockerError:
            names = []
        for name in names:
            result = self.compose(
                "logs", "--no-color", "--timestamps", name, check=False, timeout=120
            )
            (self.log_dir / f"{name}.log").write_text(result.stdout + result.stderr)
        return self.log_dir

    def down(self) -> float:
        """Stops and removes the containers, networks and volumes of the project (also the
        one-off `run` containers and any orphans)."""
        started = time.monotonic()
        self.compose("down", "--volumes", "--remove-orphans", timeout=600)
        return time.monotonic() - started

    def leftovers(self) -> dict[str, list[str]]:
        """Containers and volumes of the project that still exist."""
        label = f"label=com.docker.compose.project={self.project}"
        containers = run_docker(["ps", "--all", "--quiet", "--filter", label]).stdout.split()
        volumes = run_docker(["volume", "ls", "--quiet", "--filter", label]).stdout.split()
        networks = run_docker(["network", "ls", "--quiet", "--filter", label]).stdout.split()
        found = {"containers": containers, "volumes": volumes, "networks": networks}
        return {kind: ids for kind, ids in found.items() if ids}


# Runs inside a consumer container (its image has Python, no curl): one GET on its endpoint.
_HTTP_GET = (
    "import sys, urllib.error, urllib.request\n"
    "try:\n"
    "    r = urllib.request.urlopen(sys.argv[1], timeout=5)\n"
    "    code, body = r.status, r.read()\n"
    "except urllib.error.HTTPError as e:\n"
    "    code, body = e.code, e.read()\n"
    "sys.stdout.write(str(code) + '\\n' + body.decode())\n"
)


def http_get_inside(container_id: str, url: str) -> tuple[int, str]:
    """GET `url` from inside a container (the consumer publishes no host port: it scales)."""
    result = run_docker(["exec", container_id, "python", "-c", _HTTP_GET, url], check=False)
    if result.returncode != 0:
        return 0, result.stderr.strip()
    code, _, body = result.stdout.partition("\n")
    return int(code), body


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def compose_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment for the docker CLI (compose interpolates the stack's
    password overrides from it), plus `extra`."""
    return {**os.environ, **extra}
