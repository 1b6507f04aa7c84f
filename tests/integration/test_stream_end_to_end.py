"""The whole stream on real components: KCL daemon, kinesis-local, moto, MLflow server.

One KCL application on a 4-shard input stream serves the module (a fresh application costs
the KCL's own random 1-30 s wait on an empty lease table). Each test sends records of its own
and judges only those, so the tests pass in any order and alone: every record gets exactly one
output, a stop and restart resumes from the checkpoints, moving the alias mid-stream switches
the model version without losing a record, and a real Prometheus scrapes it all.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import mlflow
import orjson
import pytest

from consumer.tools.producer import events
from devstack.consumers import ConsumerHandle, ConsumerSlot
from devstack.kcl_tables import wait_checkpointed
from devstack.processes import ManagedProcess
from devstack.services import prometheus_server
from devstack.settings import REPO_ROOT, StackSettings
from devstack.streaming import Position, Streams, source_position
from tests.deploy.deploy_helpers import dashboard_targets

pytestmark = [pytest.mark.integration]

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "dropout-consumer.json"
RECORDS = 2000
MALFORMED_SHARE = 0.05
# What each malformation of the replay producer must be dead-lettered as.
EXPECTED_REASON = {
    "invalid_json": "invalid_json",
    "not_an_object": "not_an_object",
    "missing_student_id": "missing_student_id",
    "wrong_type": "wrong_type",
    "out_of_range": "out_of_range",
    "missing_features": "missing_features",
    "invalid_encoding": "invalid_encoding",
}


@pytest.fixture(scope="module")
def streams(own_model_streams: Callable[[str, int], Streams]) -> Streams:
    """Scored by a model of this module's own: the alias test moves its alias without touching
    any other module."""
    return own_model_streams("e2e", 4)


@pytest.fixture(scope="module")
def slot(streams: Streams, start_consumer: Callable[..., ConsumerHandle]) -> ConsumerSlot:
    return ConsumerSlot(lambda: start_consumer(streams, worker="worker-1", wait=True))


def champion_version(stack: StackSettings, name: str) -> str:
    client = mlflow.MlflowClient(stack.mlflow_url, stack.mlflow_url)
    return str(client.get_model_version_by_alias(name, "champion").version)


def served_versions(consumer: ConsumerHandle) -> set[str]:
    _, raw = consumer.get("/readyz")
    return {str(p["model_version"]) for p in orjson.loads(raw)["processors"]}


def wait_serving_version(consumer: ConsumerHandle, version: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while served_versions(consumer) != {version}:
        assert time.monotonic() < deadline, f"not serving v{version}: {served_versions(consumer)}"
        time.sleep(0.5)


def prometheus_query(base: str, expr: str) -> dict[str, Any]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return dict(orjson.loads(response.read()))
    except urllib.error.HTTPError as error:  # a bad query: the reason is in the body
        return dict(orjson.loads(error.read()))


def test_every_record_gets_exactly_one_output(
    slot: ConsumerSlot,
    streams: Streams,
    rows: list[dict[str, float]],
    stack: StackSettings,
) -> None:
    consumer = slot.current()
    version = champion_version(stack, streams.settings.model_name)
    wait_serving_version(consumer, version)
    counted = {
        name: consumer.metric_sum(name)
        for name in (
            "dropout_consumer_records_received_total",
            "dropout_consumer_predictions_total",
            "dropout_consumer_dead_letters_total",
        )
    }
    sent = list(events(rows, RECORDS, MALFORMED_SHARE, seed=11))
    positions = streams.put(sent)
    streams.wait_for(positions, timeout=300)
    # The positive signal that everything of this test is out: every shard checkpointed past
    # its last record (a checkpoint follows the publish of its whole batch).
    wait_checkpointed(streams.settings, positions, timeout=60)
    streams.poll()

    mine = set(positions)
    assert not {p: n for p, n in streams.duplicates().items() if p in mine}, (
        "nothing failed, so nothing may be delivered twice"
    )
    outputs = streams.outputs_for(positions)
    assert len(outputs) == RECORDS
    predictions = [o for o in outputs if o["schema"] == "dropout.prediction.v1"]
    dead_letters = [o for o in outputs if o["schema"] == "dropout.dead_letter.v1"]
    assert len(predictions) + len(dead_letters) == RECORDS
    assert 0 < len(dead_letters) < RECORDS * 0.15
    assert {p["model"]["version"] for p in predictions} == {version}
    assert all(0.0 <= p["dropout_probability"] <= 1.0 for p in predictions)
    assert all(len(p["top_factors"]) >= 1 for p in predictions)
    # Each dead letter carries the raw payload that was sent at its position: as text when it
    # is UTF-8, in base64 otherwise (the producer's invalid_encoding records).
    encodings: Counter[str] = Counter()
    for letter in dead_letters:
        raw = streams.sent[source_position(letter)]
        if letter["payload"] is not None:
            assert letter["payload"].encode() == raw
            assert letter["payload_base64"] is None
            encodings["text"] += 1
        else:
            assert base64.b64decode(letter["payload_base64"]) == raw
            encodings["base64"] += 1
        assert letter["payload_bytes"] == len(raw)
        assert letter["payload_truncated"] is False
    assert encodings["text"], encodings
    assert encodings["base64"], encodings
    reasons = Counter(d["reason"] for d in dead_letters)
    assert set(reasons) <= set(EXPECTED_REASON.values()), reasons

    # The metrics endpoint counts what was sent (counters move right after each publish).
    expected = {
        "dropout_consumer_records_received_total": RECORDS,
        "dropout_consumer_predictions_total": len(predictions),
        "dropout_consumer_dead_letters_total": len(dead_letters),
    }
    deadline = time.monotonic() + 30
    while True:
        moved = {name: consumer.metric_sum(name) - before for name, before in counted.items()}
        if moved == expected:
            break
        assert time.monotonic() < deadline, (moved, expected)
        time.sleep(1)
    assert consumer.metric_sum("dropout_consumer_model_info", model_version=version) >= 1
    assert consumer.metric_sum("dropout_consumer_checkpoints_total", outcome="success") >= 4


def test_stop_and_restart_resume_from_checkpoints(
    slot: ConsumerSlot,
    streams: Streams,
    rows: list[dict[str, float]],
    start_consumer: Callable[..., ConsumerHandle],
) -> None:
    consumer = slot.current()
    # Records of this test before the stop, all out and checkpointed.
    before_stop = streams.put(events(rows, 200, 0.0, seed=12))
    streams.wait_for(before_stop, timeout=120)
    wait_checkpointed(streams.settings, before_stop, timeout=60)

    started = time.monotonic()
    assert consumer.proc.stop(timeout=120) == 0, "a graceful stop exits 0"
    stop_seconds = time.monotonic() - started
    assert stop_seconds < 30, f"graceful stop took {stop_seconds:.1f} s"

    # Records sent while no consumer runs wait in the stream.
    while_stopped = streams.put(events(rows, 500, 0.0, seed=13))
    restarted = start_consumer(streams, worker="worker-1")
    slot.replace(restarted)
    streams.wait_for(while_stopped, timeout=240)
    wait_checkpointed(streams.settings, while_stopped, timeout=60)
    streams.poll()
    # Resumed from the checkpoints: nothing of before the stop came out a second time, and
    # each record sent while stopped came out once.
    mine = set(before_stop) | set(while_stopped)
    assert not {p: n for p, n in streams.duplicates().items() if p in mine}
    assert len(streams.outputs_for(while_stopped)) == 500
    assert restarted.metric_sum("dropout_consumer_records_received_total") == 500


def test_moving_the_alias_switches_versions_without_loss(
    slot: ConsumerSlot,
    stack: StackSettings,
    streams: Streams,
    rows: list[dict[str, float]],
    register_champion_copy: Callable[..., str],
) -> None:
    consumer = slot.current()
    model_name = streams.settings.model_name
    old = champion_version(stack, model_name)
    wait_serving_version(consumer, old)
    positions: list[Position] = []
    stop = threading.Event()

    def produce() -> None:
        for seed in itertools.count(100):
            if stop.is_set():
                return
            positions.extend(streams.put(events(rows, 20, 0.0, seed=seed)))
            time.sleep(0.2)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        # Records flow under the old version first ...
        deadline = time.monotonic() + 60
        while len(streams.outputs_for(list(positions))) < 100:
            assert time.monotonic() < deadline, "no outputs under the old version"
            streams.poll()
            time.sleep(0.5)
        # ... then a new version takes the alias (a copy of the same files: a new version).
        new = register_champion_copy(model_name)
        assert new != old
        wait_serving_version(consumer, new)
        # ... and records keep flowing under it.
        switched = len(positions)
        deadline = time.monotonic() + 60
        while len(streams.outputs_for(positions[switched:])) < 100:
            assert time.monotonic() < deadline, "no outputs under the new version"
            streams.poll()
            time.sleep(0.5)
    finally:
        stop.set()
        producer.join()
    streams.wait_for(positions, timeout=240)

    outputs = streams.outputs_for(positions)
    versions = Counter(o["model"]["version"] for o in outputs)
    assert set(versions) == {old, new}, versions
    # Per shard, in stream order, the version switches once and never back.
    per_shard: dict[str, list[tuple[int, int, str]]] = {}
    for output in outputs:
        shard, sequence, sub = source_position(output)
        per_shard.setdefault(shard, []).append((int(sequence), sub, output["model"]["version"]))
    for shard, seen in per_shard.items():
        ordered = [version for _, _, version in sorted(seen)]
        switches = sum(1 for a, b in itertools.pairwise(ordered) if a != b)
        assert switches <= 1, f"{shard} switched versions {switches} times"
        assert ordered[-1] == new


@pytest.fixture
def prometheus(stack: StackSettings, slot: ConsumerSlot) -> Iterator[str]:
    target = slot.current().metrics_url.removeprefix("http://")
    proc = ManagedProcess(prometheus_server(stack, [target]), stack.logs_dir, stack.pids_dir)
    proc.start()
    try:
        yield f"http://{stack.host}:{stack.prometheus_port}"
    finally:
        proc.stop()


def test_prometheus_scrapes_the_consumer_and_every_panel_has_data(
    prometheus: str,
    streams: Streams,
    rows: list[dict[str, float]],
) -> None:
    """Real Prometheus against the running consumer: every dashboard query returns data."""
    # Traffic while Prometheus scrapes (every 2 s), so that rates and quantiles are defined.
    positions: list[Position] = []
    for seed in range(200, 215):
        positions += streams.put(events(rows, 40, MALFORMED_SHARE, seed=seed))
        time.sleep(1)
    streams.wait_for(positions, timeout=120)
    deadline = time.monotonic() + 60
    while True:
        empty, failed = [], []
        for title, expr in dashboard_targets(DASHBOARD):
            answer = prometheus_query(prometheus, expr)
            if answer["status"] != "success":
                failed.append(f"{title}: {expr}: {answer.get('error')}")
            elif not answer["data"]["result"]:
                empty.append(f"{title}: {expr}")
        assert not failed, "\n".join(failed)
        if not empty:
            break
        # Scrapes lag the traffic by up to an interval; wait for data, not for a fixed time.
        assert time.monotonic() < deadline, "dashboard queries without data:\n" + "\n".join(empty)
        time.sleep(2)
    up = prometheus_query(prometheus, 'up{job="dropout-consumer"}')["data"]["result"]
    assert up
    assert up[0]["value"][1] == "1"
