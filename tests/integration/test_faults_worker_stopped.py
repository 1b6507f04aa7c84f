"""A worker stopped under load and started again, on real components (issue 5, scenario 2).

The only worker gets SIGTERM while records flow (an ECS task stop), then starts again. Every
input record must come out, and what comes out twice must be exactly what the stopped worker
had published past its last checkpoint: one batch in flight per shard at most.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from devstack.consumers import ConsumerHandle, wait_serving
from devstack.producer import Producer
from devstack.streaming import Streams
from tests.integration.worker_faults import (
    MAX_RECORDS,
    RATE,
    assert_resumed_from_checkpoints,
    checkpoints,
    event_maker,
    shard_ids,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]


def test_sigterm_mid_stream_then_restart_resumes_from_checkpoints(
    champion: str,
    make_streams: Callable[..., Streams],
    start_consumer: Callable[..., ConsumerHandle],
    rows: list[dict[str, float]],
) -> None:
    test_started = time.monotonic()
    streams = make_streams(4)
    all_shards = shard_ids(streams)
    env = {"KCL_MAX_RECORDS": str(MAX_RECORDS)}
    worker = start_consumer(streams, worker="solo", env=env)
    wait_serving(worker, all_shards, timeout=300)

    producer = Producer(streams, event_maker(rows, 8_000), rate=RATE).start()
    try:
        producer.wait_until(3000, timeout=120)
        streams.poll()
        assert streams.outputs, "records should flow before the stop"
        stop_started = time.monotonic()
        code = worker.proc.stop(timeout=120)
        stop_seconds = time.monotonic() - stop_started
        stopped_ms = time.time() * 1000
        checkpoints_at_stop = checkpoints(streams)
        in_play_at_stop = len(producer.sent)
        assert code == 0, f"a graceful stop exits 0, got {code}"
        assert stop_seconds < 120, f"graceful stop took {stop_seconds:.1f} s (ECS allows 120)"
        # Records keep arriving while no worker runs; then the same worker starts again.
        restart_started = time.monotonic()
        restarted = start_consumer(streams, worker="solo", env=env)
        wait_serving(restarted, all_shards, timeout=300)
        restart_seconds = time.monotonic() - restart_started
        producer.wait_until(max(6_000, len(producer.sent) + 1000), timeout=180)
    finally:
        positions = producer.stop()
    # Resumed from the checkpoints: what came out twice is exactly what the first run had
    # published past its last checkpoints (the batches in flight), never anything older.
    duplicates = assert_resumed_from_checkpoints(
        streams, positions, checkpoints_at_stop, all_shards, stopped_ms
    )
    total = time.monotonic() - test_started
    print(
        f"\n[stop and restart] graceful stop {stop_seconds:.1f} s (exit {code}); "
        f"records {len(positions)} ({in_play_at_stop} sent before the stop); "
        f"duplicates {sum(duplicates.values())} {duplicates}; "
        f"restart to all 4 shards served {restart_seconds:.1f} s; test {total:.0f} s"
    )
