"""The Docker helpers' logic that needs no engine: which builder, which base images."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compose.compose_stack import Container
from tests.support.docker_images import builder_env, choose_builder, global_build_args
from tests.support.paths import REPO_ROOT


@pytest.mark.parametrize(
    ("requested", "docker_buildkit", "standin", "buildx", "expected"),
    [
        (None, None, False, True, "buildkit"),  # GitHub's runners
        ("auto", None, True, True, "classic"),  # stand-in bases: no registry for the frontend
        (None, None, False, False, "classic"),  # no buildx plugin
        (None, "0", False, True, "classic"),  # the user chose the classic builder
        ("classic", None, False, True, "classic"),
        ("BuildKit", None, True, False, "buildkit"),  # explicit wins over detection
    ],
)
def test_builder_choice(
    requested: str | None, docker_buildkit: str | None, standin: bool, buildx: bool, expected: str
) -> None:
    builder, why = choose_builder(requested, docker_buildkit, standin_bases=standin, buildx=buildx)
    assert builder == expected
    assert why


def test_an_unknown_builder_is_an_error() -> None:
    with pytest.raises(ValueError, match="COMPOSE_TEST_BUILDER"):
        choose_builder("kaniko", None, standin_bases=False, buildx=True)


def test_classic_builder_environment() -> None:
    assert builder_env("classic") == {"DOCKER_BUILDKIT": "0", "COMPOSE_BAKE": "false"}
    assert builder_env("buildkit") == {"DOCKER_BUILDKIT": "1"}


def test_base_image_args_are_read_before_the_first_from(tmp_path: Path) -> None:
    dockerfile = tmp_path / "x.Dockerfile"
    dockerfile.write_text(
        "# syntax=docker/dockerfile:1\n"
        "ARG PYTHON_IMAGE=python:3.11-slim@sha256:" + "a" * 64 + "\n"
        "FROM ${PYTHON_IMAGE}\nARG LATER=1\n",
        encoding="utf-8",
    )
    assert global_build_args(dockerfile) == {"PYTHON_IMAGE": "python:3.11-slim@sha256:" + "a" * 64}
    consumer = global_build_args(REPO_ROOT / "docker" / "consumer.Dockerfile")
    assert set(consumer) == {"JRE_IMAGE", "PYTHON_IMAGE"}


def test_container_from_docker_inspect() -> None:
    item = {
        "Id": "abc123def456789",
        "Name": "/dropout-e2e-consumer-1",
        "Config": {
            "Hostname": "abc123def456",
            "Labels": {"com.docker.compose.service": "consumer"},
        },
        "State": {"Status": "running", "Health": {"Status": "healthy"}, "ExitCode": 0},
        "RestartCount": 0,
        "NetworkSettings": {"Networks": {"dropout-e2e_default": {"IPAddress": "172.18.0.7"}}},
    }
    container = Container.from_inspect(item)
    assert container.name == "dropout-e2e-consumer-1"
    assert container.service == "consumer"
    assert container.health == "healthy"
    assert container.ip_addresses == ("172.18.0.7",)
