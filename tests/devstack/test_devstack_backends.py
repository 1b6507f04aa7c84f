"""The integration services' backends (devstack/backends.py): the choice is explicit, and the
containers publish their ports on loopback only, like the local processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import backends
from devstack.backends import (
    BackendError,
    ContainerBackend,
    ProcessBackend,
    choose_backend,
    container_specs,
    published_beyond_loopback,
)
from devstack.settings import StackSettings


def test_every_container_publishes_the_stacks_port_on_loopback_only(tmp_path: Path) -> None:
    settings = StackSettings(
        stack_dir=tmp_path, kinesis_port=21001, dynamodb_port=21006, mlflow_port=21007
    )
    published = {spec.image: spec.docker_ports() for spec in container_specs(settings)}
    assert published == {
        backends.KINESIS_MOCK_IMAGE: {"4568/tcp": ("127.0.0.1", 21001)},
        backends.MOTO_IMAGE: {"5000/tcp": ("127.0.0.1", 21006)},
        backends.MLFLOW_IMAGE: {"5000/tcp": ("127.0.0.1", 21007)},
    }


def test_a_binding_beyond_loopback_is_found() -> None:
    """What `docker inspect` says of a port published with testcontainers' with_bind_ports
    (every interface, IPv4 and IPv6) and of one published on loopback."""
    wide = {
        "5000/tcp": [
            {"HostIp": "0.0.0.0", "HostPort": "22006"},
            {"HostIp": "::", "HostPort": "22006"},
        ],
        "4567/tcp": None,  # exposed, not published
    }
    assert published_beyond_loopback(wide) == [
        "5000/tcp -> 0.0.0.0:22006",
        "5000/tcp -> :::22006",
    ]
    narrow = {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "22006"}], "4567/tcp": None}
    assert published_beyond_loopback(narrow) == []


def test_the_backend_is_chosen_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STACK_BACKEND", raising=False)
    assert isinstance(choose_backend(), ProcessBackend)
    monkeypatch.setattr(backends, "docker_available", lambda: False)
    with pytest.raises(BackendError, match="no Docker engine"):
        choose_backend("containers")
    monkeypatch.setattr(backends, "docker_available", lambda: True)
    monkeypatch.setenv("STACK_BACKEND", "Containers")
    assert isinstance(choose_backend(), ContainerBackend)
    with pytest.raises(BackendError, match="expected one of processes, containers"):
        choose_backend("docker")
