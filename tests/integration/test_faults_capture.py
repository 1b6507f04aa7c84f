"""Object storage unreachable during capture (docs/learning-loop.md, docs/reliability.md).

The consumer captures every batch to the loop's store before it checkpoints it. Here the store
(moto's S3 API) sits behind a proxy the test can take down:

1. a short outage, within the capture's retry budget: the batch is held, no checkpoint moves
   past it while the store is down, and once it is back every record is captured;
2. an outage past the budget: the shard processor exits 15 (capture failed) without a
   checkpoint, the worker stops, and a worker started after the store returns captures
   everything that was left: nothing is lost.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterator

import orjson
import pytest

from consumer.tools.producer import events
from devstack.consumers import ConsumerHandle, log_events
from devstack.kcl_tables import lease_checkpoints, wait_checkpointed
from devstack.services import stack_client
from devstack.settings import StackSettings
from devstack.streaming import Position, Streams
from tests.integration.outage_proxy import Outage, OutageProxy

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture(scope="module")
def streams(own_model_streams: Callable[[str, int], Streams]) -> Streams:
    return own_model_streams("capture", 2)


@pytest.fixture(scope="module")
def proxy(stack: StackSettings) -> Iterator[OutageProxy]:
    with OutageProxy(stack.host, stack.dynamodb_port) as running:
        yield running


def _env(proxy: OutageProxy, **extra: str) -> dict[str, str]:
    return {"LOOP_S3_ENDPOINT_URL": proxy.url, "CAPTURE_BACKOFF_MAX_SECONDS": "1", **extra}


def captured_positions(stack: StackSettings, streams: Streams) -> set[Position]:
    """Every source position in the bucket, read from moto directly (not through the proxy)."""
    s3 = stack_client(stack, "s3")
    bucket, _, prefix = streams.settings.loop_uri.removeprefix("s3://").partition("/")
    found: set[Position] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}captures/"
    ):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for line in gzip.decompress(body).splitlines():
                source = orjson.loads(line)["source"]
                found.add(
                    (
                        str(source["shard_id"]),
                        str(source["sequence_number"]),
                        int(source["sub_sequence_number"] or 0),
                    )
                )
    return found


def _checkpoints_not_past(before: dict[str, str], positions: list[Position]) -> bool:
    """No shard's checkpoint reached the first of `positions` on that shard."""
    first: dict[str, int] = {}
    for shard, sequence, _ in positions:
        first[shard] = min(first.get(shard, int(sequence)), int(sequence))
    for shard, checkpoint in before.items():
        if checkpoint.isdigit() and shard in first and int(checkpoint) >= first[shard]:
            return False
    return True


def test_a_short_outage_holds_the_batch_and_capture_resumes(
    stack: StackSettings,
    streams: Streams,
    proxy: OutageProxy,
    rows: list[dict[str, float]],
    start_consumer: Callable[..., ConsumerHandle],
) -> None:
    worker = start_consumer(
        streams, worker="capture-short", env=_env(proxy, CAPTURE_MAX_ATTEMPTS="60")
    )
    warmup = streams.put(events(rows, 40, 0.0, seed=71))
    wait_checkpointed(streams.settings, warmup, timeout=180)

    proxy.set(Outage.UNAVAILABLE)
    held = streams.put(events(rows, 150, 0.05, seed=72))
    deadline = time.monotonic() + 60
    # Five failed attempts (a positive signal, not a fixed sleep): the store has been down for
    # several backoffs, long enough for a wrong checkpoint to have happened.
    while worker.metric_sum("dropout_consumer_capture_retries_total") < 5:
        assert time.monotonic() < deadline, "the capture never met the outage"
        time.sleep(0.5)
    assert _checkpoints_not_past(lease_checkpoints(streams.settings), held)
    assert not set(held) & captured_positions(stack, streams)
    assert worker.proc.alive(), "an outage within the budget is waited out, not a failure"

    proxy.set(Outage.NONE)
    wait_checkpointed(streams.settings, held, timeout=120)
    assert set(held) <= captured_positions(stack, streams)
    assert worker.metric_sum("dropout_consumer_captured_records_total") >= len(held)
    assert worker.proc.stop(timeout=120) == 0


def test_an_outage_past_the_budget_stops_the_worker_and_a_restart_loses_nothing(
    stack: StackSettings,
    streams: Streams,
    proxy: OutageProxy,
    rows: list[dict[str, float]],
    start_consumer: Callable[..., ConsumerHandle],
) -> None:
    worker = start_consumer(
        streams, worker="capture-long", env=_env(proxy, CAPTURE_MAX_ATTEMPTS="3")
    )
    worker.wait_ready()
    before = lease_checkpoints(streams.settings)
    offset = worker.proc.log_path.stat().st_size

    proxy.set(Outage.DISCONNECT)
    lost_if_skipped = streams.put(events(rows, 120, 0.0, seed=73))
    assert worker.proc.proc is not None
    exit_code = worker.proc.proc.wait(timeout=180)
    assert exit_code not in (0, None), "the worker must stop when capture cannot keep up"
    logged = log_events(worker.proc.log_path, offset)
    failed = [e for e in logged if e.get("event") == "capture_failed_exiting_without_checkpoint"]
    assert failed, "the processor says why it exits"
    assert "after 3 attempt(s)" in failed[0]["error"]
    assert any(
        "Child process exited with value" in str(e.get("event"))
        and str(e.get("event")).endswith(": 15")
        for e in logged
        if e.get("source") == "kcl"
    ), "the daemon saw exit code 15 (capture failed)"
    assert lease_checkpoints(streams.settings) == before, "nothing checkpointed past the gap"

    proxy.set(Outage.NONE)
    # The same worker id takes back its own leases and the leader lock at once; a new one
    # would wait minutes for them to expire (that case is test_faults_worker_killed's).
    restarted = start_consumer(streams, worker="capture-long", env=_env(proxy))
    wait_checkpointed(streams.settings, lost_if_skipped, timeout=240)
    assert set(lost_if_skipped) <= captured_positions(stack, streams)
    assert restarted.proc.stop(timeout=120) == 0
