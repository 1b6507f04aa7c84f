"""Fixtures that start the real stack: emulators, MLflow, the champion, consumer workers.

Each xdist worker runs its own stack (kinesis-local, moto, an MLflow server) on ports of its
own block (devstack/ports.py); every test module makes its own streams and KCL application,
so modules never see each other's records, leases or metrics. The champion is the session's
one quick training run (tests/support/champion.py), registered here as a copy.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from consumer.tools.producer import read_rows
from devstack.backends import ContainerBackend, ProcessBackend, choose_backend
from devstack.consumers import ConsumerHandle
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from devstack.services import FAKE_AWS_ENV, consumer_service
from devstack.settings import StackSettings
from devstack.streaming import Streams, fresh_streams
from tests.integration.faultproxy import FaultProxy
from tests.support.champion import SessionChampion
from tests.support.model_builder import register_model_dir


@functools.cache
def backend() -> ProcessBackend | ContainerBackend:
    return choose_backend()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackSettings]:
    """kinesis-local, moto (DynamoDB) and an MLflow server on this worker's loopback ports."""
    settings = StackSettings.on_free_ports(tmp_path_factory.mktemp("stack"))
    with backend().run(settings):
        yield settings


@pytest.fixture(scope="session")
def champion(stack: StackSettings, champion_run: SessionChampion) -> str:
    """The session's trained champion, registered in this stack's MLflow as
    `student-dropout@champion`; returns its version there."""
    return register_model_dir(
        champion_run.model_dir, tracking_uri=stack.mlflow_url, name=stack.model_name
    )


@pytest.fixture(scope="session")
def register_champion_copy(
    stack: StackSettings, champion_run: SessionChampion
) -> Callable[..., str]:
    """Registers the champion's files again as a new version of `name` (a model of the
    test's own, so that moving its alias touches no other test); returns the version."""

    def register(
        name: str, *, alias: str | None = "champion", model_dir: Path | None = None
    ) -> str:
        return register_model_dir(
            model_dir or champion_run.model_dir,
            tracking_uri=stack.mlflow_url,
            name=name,
            alias=alias,
        )

    return register


@pytest.fixture(scope="module")
def rows(uci_data_path: Path) -> list[dict[str, float]]:
    """The UCI data file's rows as student features, what the tests' events are made of."""
    return read_rows(uci_data_path)


@pytest.fixture(scope="module")
def make_streams(stack: StackSettings) -> Callable[..., Streams]:
    """Fresh input/predictions/dead-letter streams and a fresh KCL application per call."""

    def make(input_shards: int = 4, **overrides: object) -> Streams:
        return fresh_streams(stack, uuid.uuid4().hex[:8], input_shards, **overrides)

    return make


@pytest.fixture(scope="module")
def own_model_streams(
    make_streams: Callable[..., Streams], register_champion_copy: Callable[..., str]
) -> Callable[[str, int], Streams]:
    """Fresh streams scored by a model of the module's own: a copy of the session's champion
    registered as `student-dropout-<purpose>-<random>` (streams.settings.model_name), so that
    moving its alias or reading its captures touches no other module."""

    def make(purpose: str, input_shards: int) -> Streams:
        name = f"student-dropout-{purpose}-{uuid.uuid4().hex[:6]}"
        register_champion_copy(name)
        return make_streams(input_shards, model_name=name)

    return make


@pytest.fixture(scope="module")
def output_proxy(stack: StackSettings) -> Iterator[FaultProxy]:
    """The fault-injecting proxy (faultproxy.py) in front of kinesis-local for the consumer's
    output (OUTPUT_KINESIS_ENDPOINT_URL); it passes everything until a test sets a plan."""
    with FaultProxy(stack.host, stack.kinesis_port) as running:
        yield running


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
