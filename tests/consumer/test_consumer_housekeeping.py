"""Housekeeping defects found in review, each with the test that would have caught it: the
metrics folder, concurrent scrapes, socket timeouts, the first status write, the lease watch."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from consumer.intake.lease_watch import LeaseWatch
from consumer.model.holder import ModelHolder
from consumer.observe import metrics_server
from consumer.observe.metrics import ConsumerMetrics
from consumer.observe.metrics_server import MetricsServer
from consumer.observe.status import StatusReporter
from consumer.scoring.served_model import ServedModel
from consumer.service.supervisor import clear_metric_files
from tests.support.fakes import FakeStatus
from tests.support.harness import model_handoff
from tests.support.threads import run_concurrently


def test_only_metric_files_are_cleared_from_the_metrics_folder(tmp_path: Path) -> None:
    """PROMETHEUS_MULTIPROC_DIR set to a shared folder must not be wiped at start."""
    folder = tmp_path / "shared"
    folder.mkdir()
    left_by_a_run = [
        "counter_123.db",
        "gauge_livemax_123.db",
        "gauge_liveall_77.db",
        "histogram_9.db",
    ]
    theirs = ["notes.txt", "counter_backup.db", "gauge.db"]
    for name in left_by_a_run + theirs:
        (folder / name).write_text("x")
    (folder / "subfolder").mkdir()
    others = clear_metric_files(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*theirs, "subfolder"])
    assert others == sorted([*theirs, "subfolder"])
    assert clear_metric_files(tmp_path / "new") == []
    assert (tmp_path / "new").is_dir()


def _dead_process_files(folder: Path, pids: range) -> None:
    """Multiprocess metric files as processes that exited would leave them."""
    for pid in pids:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
        registry = CollectorRegistry()
        from prometheus_client import values

        values.ValueClass = values.MultiProcessValue(lambda pid=pid: pid)  # type: ignore[no-untyped-call]
        Counter("things", "t", registry=registry).inc()
        Gauge("live", "l", registry=registry, multiprocess_mode="livemax").set(1)
    values.ValueClass = values.MutexValue  # type: ignore[assignment]
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def test_concurrent_scrapes_all_succeed_while_dead_files_are_swept(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    # Pids that do not exist: every scrape wants to sweep their live-gauge files.
    _dead_process_files(folder, range(4_000_000, 4_000_040))
    server = MetricsServer("127.0.0.1", 0, folder, tmp_path / "state", lambda: True)
    bodies, errors = run_concurrently(server.render_metrics, 8)
    assert errors == []
    assert len(bodies) == 8
    # The dead processes' counts stay in every answer; their live gauges are gone.
    assert all(b"things_total 40.0" in body for body in bodies)
    assert not list(folder.glob("gauge_live*"))


def test_a_client_that_sends_nothing_is_timed_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_server, "SOCKET_TIMEOUT_SECONDS", 0.5)
    server = MetricsServer("127.0.0.1", 0, tmp_path, tmp_path, lambda: True)
    server.start()
    try:
        silent = socket.create_connection(("127.0.0.1", server.port))
        started = time.monotonic()
        # The server gives up on the silent client (it closes: recv returns b"").
        silent.settimeout(10)
        assert silent.recv(1024) == b""
        assert time.monotonic() - started < 5
        silent.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as r:
            assert r.status == 200
    finally:
        server.stop()


class _OfferingPoller:
    """A poller whose first load lands while the processor is still starting up."""

    def __init__(self, holder: ModelHolder, model: ServedModel) -> None:
        self._holder = holder
        self._model = model

    def start(self) -> None:
        self._holder.offer(self._model)

    def stop(self, timeout: float | None = None) -> None:
        return None


def test_a_model_loaded_during_start_up_leaves_the_processor_ready(
    fake_served: ServedModel, metrics: ConsumerMetrics
) -> None:
    """Before, the poller could swap a model in before the status existed: /readyz stayed 503
    until the next version came."""
    holder = ModelHolder()
    handoff = model_handoff(holder, metrics, _OfferingPoller(holder, fake_served))  # type: ignore[arg-type]
    status = FakeStatus()
    handoff.start("shard-0", StatusReporter(status, lambda: handoff.version))
    assert status.states[-1] == ("ready", "1")


@pytest.fixture
def lease_table(mocked_aws: None) -> object:
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName="app",
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.put_item(
        TableName="app",
        Item={"leaseKey": {"S": "shard-1"}, "leaseOwner": {"S": "worker-a"}},
    )
    return client


def test_the_lease_watch_reads_the_owner(lease_table: object) -> None:
    assert LeaseWatch(lease_table, "app", "shard-1", "worker-a").held()
    assert not LeaseWatch(lease_table, "app", "shard-1", "worker-b").held()
    # Doubt answers "held": no worker id, no such table.
    assert LeaseWatch(lease_table, "app", "shard-1", None).held()
    assert LeaseWatch(lease_table, "no-such-table", "shard-1", "worker-b").held()
