"""The whole stream on real components: KCL daemon, kinesis-local, moto, MLflow server.

One consumer application on a 4-shard input stream, driven through three phases that share it
(starting a fresh KCL application costs about 40 s): every record gets exactly one output, a
stop and restart resumes from the checkpoints, and moving the alias mid-stream switches the
model version in the outputs without losing a record.
"""

from __future__ import annotations

import itertools
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import orjson
import pytest

from consumer.tools.producer import events, read_rows
from scripts.stack.processes import ManagedProcess
from scripts.stack.services import prometheus_server
from scripts.stack.settings import REPO_ROOT, StackSettings
from tests.deploy.deploy_helpers import dashboard_targets
from tests.integration.conftest import run_training
from tests.integration.streaming import ConsumerHandle, Position, Streams

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
def rows(uci_data_path: Path) -> list[dict[str, float]]:
    return read_rows(uci_data_path)


@pytest.fixture(scope="module")
def streams(make_streams: Callable[..., Streams]) -> Streams:
    return make_streams(4)


@pytest.fixture(scope="module")
def consumer(
    champion: str, streams: Streams, start_consumer: Callable[..., ConsumerHandle]
) -> ConsumerHandle:
    return start_consumer(streams)


def prometheus_query(base: str, expr: str) -> dict[str, Any]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return dict(orjson.loads(response.read()))
    except urllib.error.HTTPError as error:  # a bad query: the reason is in the body
        return dict(orjson.loads(error.read()))


def _outputs_for(streams: Streams, positions: list[Position]) -> list[dict[str, Any]]:
    by_position = streams.outputs_by_position()
    return [output for position in positions for output in by_position[position]]


def test_every_record_gets_exactly_one_output(
    consumer: ConsumerHandle, streams: Streams, rows: list[dict[str, float]], champion: str
) -> None:
    sent = list(events(rows, RECORDS, MALFORMED_SHARE, seed=11))
    positions = streams.put(sent)
    streams.wait_for(positions, timeout=300)

    assert not streams.duplicates(), "nothing failed, so nothing may be delivered twice"
    outputs = _outputs_for(streams, positions)
    assert len(outputs) == RECORDS
    predictions = [o for o in outputs if o["schema"] == "dropout.prediction.v1"]
    dead_letters = [o for o in outputs if o["schema"] == "dropout.dead_letter.v1"]
    assert len(predictions) + len(dead_letters) == RECORDS
    assert 0 < len(dead_letters) < RECORDS * 0.15
    assert {p["model"]["version"] for p in predictions} == {champion}
    assert all(0.0 <= p["dropout_probability"] <= 1.0 for p in predictions)
    assert all(len(p["top_factors"]) >= 1 for p in predictions)
    # Each dead letter carries the raw payload that was sent at its position.
    for letter in dead_letters:
        position = (letter["source"]["shard_id"], letter["source"]["sequence_number"])
        raw = streams.sent[position]
        if letter["payload"] is not None:
            assert letter["payload"].encode() == raw
    reasons = Counter(d["reason"] for d in dead_letters)
    assert set(reasons) <= set(EXPECTED_REASON.values()), reasons

    # The metrics endpoint counts what was sent (counters move right after each publish).
    deadline = time.monotonic() + 30
    while True:
        received = consumer.metric_sum("dropout_consumer_records_received_total")
        scored = consumer.metric_sum("dropout_consumer_predictions_total")
        lettered = consumer.metric_sum("dropout_consumer_dead_letters_total")
        if (received, scored, lettered) == (RECORDS, len(predictions), len(dead_letters)):
            break
        assert time.monotonic() < deadline, (received, scored, lettered)
        time.sleep(1)
    for reason, count in reasons.items():
        assert consumer.metric_sum("dropout_consumer_dead_letters_total", reason=reason) == count
    assert consumer.metric_sum("dropout_consumer_model_info", model_version=champion) >= 1
    assert consumer.metric_sum("dropout_consumer_checkpoints_total", outcome="success") >= 4


def test_stop_and_restart_resume_from_checkpoints(
    consumer: ConsumerHandle,
    streams: Streams,
    rows: list[dict[str, float]],
    start_consumer: Callable[..., ConsumerHandle],
) -> None:
    before = len(streams.outputs)
    started = time.monotonic()
    assert consumer.proc.stop(timeout=120) == 0, "a graceful stop exits 0"
    stop_seconds = time.monotonic() - started
    assert stop_seconds < 60, f"graceful stop took {stop_seconds:.1f} s"

    # Records sent while no consumer runs wait in the stream.
    positions = streams.put(events(rows, 500, 0.0, seed=12))
    restarted = start_consumer(streams, worker="worker-1")
    streams.wait_for(positions, timeout=240)
    time.sleep(3)
    streams.poll()
    # Resumed from the checkpoints: nothing before the stop came out a second time.
    assert not streams.duplicates()
    assert len(streams.outputs) == before + 500
    assert restarted.metric_sum("dropout_consumer_records_received_total") == 500


def test_moving_the_alias_switches_versions_without_loss(
    stack: StackSettings,
    streams: Streams,
    rows: list[dict[str, float]],
    uci_data_path: Path,
    champion: str,
    start_consumer: Callable[..., ConsumerHandle],
) -> None:
    positions: list[Position] = []
    stop = threading.Event()

    def produce() -> None:
        seed = 100
        while not stop.is_set():
            positions.extend(streams.put(events(rows, 20, 0.0, seed=seed)))
            seed += 1
            time.sleep(0.2)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        time.sleep(5)
        # A second version; --force so the gate cannot refuse an equal model.
        run_training(stack, uci_data_path, "--force")
        client = mlflow.MlflowClient(tracking_uri=stack.mlflow_url)
        new_version = str(client.get_model_version_by_alias(stack.model_name, "champion").version)
        assert new_version != champion
        # Poll interval is 2 s; keep sending well past the reload.
        time.sleep(20)
    finally:
        stop.set()
        producer.join()
    streams.wait_for(positions, timeout=240)

    outputs = _outputs_for(streams, positions)
    versions = Counter(o["model"]["version"] for o in outputs)
    assert set(versions) == {champion, new_version}, versions
    # Per shard, in stream order, the version switches once and never back.
    per_shard: dict[str, list[tuple[int, str]]] = {}
    for output in outputs:
        source = output["source"]
        per_shard.setdefault(source["shard_id"], []).append(
            (int(source["sequence_number"]), output["model"]["version"])
        )
    for shard, seen in per_shard.items():
        ordered = [version for _, version in sorted(seen)]
        switches = sum(1 for a, b in itertools.pairwise(ordered) if a != b)
        assert switches <= 1, f"{shard} switched versions {switches} times"
        assert ordered[-1] == new_version


def test_prometheus_scrapes_the_consumer_and_every_panel_has_data(
    stack: StackSettings,
    streams: Streams,
    rows: list[dict[str, float]],
    start_consumer: Callable[..., ConsumerHandle],
) -> None:
    """Real Prometheus against the running consumer: every dashboard query returns data."""
    running = start_consumer.running()  # type: ignore[attr-defined]
    assert running, "the consumer of the earlier phases should still run"
    target = running[-1].metrics_url.removeprefix("http://")
    prometheus = ManagedProcess(
        prometheus_server(stack, [target]), stack.logs_dir, stack.pids_dir
    ).start()
    base = f"http://{stack.host}:{stack.prometheus_port}"
    try:
        # Traffic while Prometheus scrapes, so that rates and quantiles are defined.
        for seed in range(200, 215):
            streams.put(events(rows, 40, MALFORMED_SHARE, seed=seed))
            time.sleep(1)
        time.sleep(4)
        empty, failed = [], []
        for title, expr in dashboard_targets(DASHBOARD):
            answer = prometheus_query(base, expr)
            if answer["status"] != "success":
                failed.append(f"{title}: {expr}: {answer.get('error')}")
            elif not answer["data"]["result"]:
                empty.append(f"{title}: {expr}")
        assert not failed, "\n".join(failed)
        assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
        up = prometheus_query(base, 'up{job="dropout-consumer"}')["data"]["result"]
        assert up
        assert up[0]["value"][1] == "1"
    finally:
        prometheus.stop()
