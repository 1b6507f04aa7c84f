"""A Docker engine seen from the tests: does one answer, which builder, which base images.

Shared by the image build checks (tests/deploy) and the compose end-to-end test
(tests/compose). Builder (`COMPOSE_TEST_BUILDER=auto|buildkit|classic`, default `auto`): the
Dockerfiles start with `# syntax=docker/dockerfile:1`, which BuildKit resolves on Docker Hub.
`auto` picks the classic builder (`DOCKER_BUILDKIT=0`) when `DOCKER_BUILDKIT=0` is already set,
when the base images are local stand-ins (label `standin.for`: a machine without any
registry), or when the CLI has no buildx plugin (compose builds with BuildKit through buildx);
BuildKit otherwise. A base image pinned by digest whose tag is a local stand-in is built from
the tag (`--build-arg PYTHON_IMAGE=python:3.11-slim-bookworm`, docker/README.md).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

from tests.support.paths import REPO_ROOT

BUILDERS: Final = ("auto", "buildkit", "classic")
STANDIN_LABEL: Final = "standin.for"
_DIGEST_DEFAULT = re.compile(r"^(?P<tag>[^@\s]+:[^@\s]+)@sha256:[0-9a-f]{64}$")


class DockerError(RuntimeError):
    """A docker or docker compose command failed; the message carries its output."""


def run_docker(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`docker ARGS...`; raises DockerError with the command's output when it fails."""
    try:
        result = subprocess.run(
            ["docker", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=REPO_ROOT,
            env=dict(env) if env is not None else None,
        )
    except subprocess.TimeoutExpired as error:
        raise DockerError(f"`docker {' '.join(args)}` still ran after {timeout:.0f} s") from error
    if check and result.returncode != 0:
        raise DockerError(
            f"`docker {' '.join(args)}` exited {result.returncode}:\n"
            f"{_tail(result.stdout, 40)}\n{_tail(result.stderr, 40)}"
        )
    return result


def docker_engine_problem() -> str | None:
    """None when a Docker engine answers `docker info`, else why not."""
    try:
        result = run_docker(["info", "--format", "{{.ServerVersion}}"], timeout=20, check=False)
    except (OSError, DockerError) as error:
        return f"`docker info` failed: {error}"
    if result.returncode != 0:
        return f"`docker info` exited {result.returncode}: {_tail(result.stderr, 3)}"
    return None


def image_exists(reference: str) -> bool:
    return run_docker(["image", "inspect", reference], check=False).returncode == 0


def image_label(reference: str, label: str) -> str | None:
    result = run_docker(
        ["image", "inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}', reference],
        check=False,
    )
    value = result.stdout.strip()
    return value if result.returncode == 0 and value and value != "<no value>" else None


def buildx_available() -> bool:
    return run_docker(["buildx", "version"], check=False).returncode == 0


# --- which builder, which base images --------------------------------------------------------
def choose_builder(
    requested: str | None,
    docker_buildkit: str | None,
    *,
    standin_bases: bool,
    buildx: bool,
) -> tuple[str, str]:
    """("buildkit" | "classic", why). `requested` is COMPOSE_TEST_BUILDER, `docker_buildkit`
    the DOCKER_BUILDKIT of the environment."""
    choice = (requested or "auto").strip().lower()
    if choice not in BUILDERS:
        raise ValueError(f"COMPOSE_TEST_BUILDER={requested!r}: expected one of {BUILDERS}")
    if choice != "auto":
        return choice, f"COMPOSE_TEST_BUILDER={choice}"
    if docker_buildkit is not None and docker_buildkit.strip() in {"0", "false"}:
        return "classic", f"DOCKER_BUILDKIT={docker_buildkit} is set"
    if standin_bases:
        return "classic", (
            "the base images are local stand-ins (no registry): BuildKit would fetch the "
            "`# syntax=docker/dockerfile:1` frontend from Docker Hub"
        )
    if not buildx:
        return "classic", "the docker CLI has no buildx plugin, which BuildKit builds need"
    return "buildkit", "a registry-backed engine with buildx"


def builder_env(builder: str) -> dict[str, str]:
    if builder == "classic":
        # COMPOSE_BAKE=false: compose would otherwise warn that Bake needs BuildKit.
        return {"DOCKER_BUILDKIT": "0", "COMPOSE_BAKE": "false"}
    return {"DOCKER_BUILDKIT": "1"}


def global_build_args(dockerfile: Path) -> dict[str, str]:
    """ARG defaults declared before the first FROM (the base images)."""
    args: dict[str, str] = {}
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        words = line.split(maxsplit=1)
        if not words or words[0].startswith("#"):
            continue
        if words[0].upper() == "FROM":
            break
        if words[0].upper() == "ARG" and len(words) == 2 and "=" in words[1]:
            name, _, default = words[1].partition("=")
            args[name.strip()] = default.strip()
    return args


def standin_base_overrides(dockerfiles: Iterable[Path]) -> dict[str, str]:
    """ARG -> tag for each base image pinned by digest whose tag is a local stand-in here
    (it carries the tag, never the upstream digest, so FROM tag@sha256 would need a registry)."""
    overrides: dict[str, str] = {}
    for dockerfile in dockerfiles:
        for name, default in global_build_args(dockerfile).items():
            match = _DIGEST_DEFAULT.match(default)
            if match and image_label(match.group("tag"), STANDIN_LABEL):
                overrides[name] = match.group("tag")
    return overrides


def build_setup(dockerfiles: Iterable[Path]) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """(builder, why, environment for the docker CLI, base-image ARG overrides) for building
    these Dockerfiles on this engine."""
    overrides = standin_base_overrides(dockerfiles)
    builder, why = choose_builder(
        os.environ.get("COMPOSE_TEST_BUILDER"),
        os.environ.get("DOCKER_BUILDKIT"),
        standin_bases=bool(overrides),
        buildx=buildx_available(),
    )
    return builder, why, builder_env(builder), overrides


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
