"""A worker killed under load, on real components (issue 5, scenario 1).

Two workers share a 4-shard stream; the one holding KCL 3's leader lock is killed (SIGKILL of
its process group, like a container that is killed) while records flow, and the survivor must
take over its leases (after the 2-minute leader lock expires: fixed in KCL 3.1.3). Every input
record must come out (as a prediction or a dead letter), and what comes out twice must be
exactly what the killed worker had published past its last checkpoint: one batch in flight per
shard at most.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from devstack.consumers import ConsumerHandle, serving_shards
from devstack.kcl_tables import kcl_leader, kcl_leases
from devstack.producer import Producer
from devstack.streaming import Streams
from tests.integration.worker_faults import (
    FAILOVER_ENV,
    RATE,
    assert_resumed_from_checkpoints,
    checkpoints,
    event_maker,
    shard_ids,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]


def test_leader_killed_mid_stream_loses_nothing(
    champion: str,
    make_streams: Callable[..., Streams],
    start_consumer: Callable[..., ConsumerHandle],
    rows: list[dict[str, float]],
) -> None:
    """Kills the worker that holds KCL 3's leader lock: the worst case of a fail-over.

    Worker a starts first and becomes the leader; it runs with KCL_MAX_LEASES_FOR_WORKER=2,
    which the leader applies to every worker, so that the four leases split 2/2 once worker b
    (no limit) has joined. Without worker metrics (off on emulators) KCL 3 never rebalances an
    idle fleet, so this is how both workers come to hold leases here.
    """
    test_started = time.monotonic()
    streams = make_streams(4)
    all_shards = shard_ids(streams)
    ids = {name: f"{name}-{streams.tag}" for name in ("a", "b")}
    a = start_consumer(streams, worker="a", env={**FAILOVER_ENV, "KCL_MAX_LEASES_FOR_WORKER": "2"})
    deadline = time.monotonic() + 240
    while kcl_leader(streams.settings) != ids["a"]:
        assert a.proc.alive(), f"consumer exited; see {a.proc.log_path}"
        assert time.monotonic() < deadline, "worker a did not become the leader"
        time.sleep(0.5)
    b = start_consumer(streams, worker="b", env=FAILOVER_ENV)
    workers = {"a": a, "b": b}
    deadline = time.monotonic() + 240
    while True:
        held = {name: serving_shards(handle) for name, handle in workers.items()}
        if len(held["a"]) == 2 and len(held["b"]) == 2 and held["a"] | held["b"] == all_shards:
            break
        assert time.monotonic() < deadline, f"leases not shared after 240 s: {held}"
        time.sleep(0.5)
    balanced_at = time.monotonic() - test_started
    print(f"\n[leader killed] leases shared after {balanced_at:.1f} s: {held}")

    producer = Producer(streams, event_maker(rows, 10_000), rate=RATE).start()
    try:
        producer.wait_until(4000, timeout=120)
        # The victim is mid-stream: its shards are producing outputs right now.
        streams.poll()
        recent = {o["source"]["shard_id"] for o in streams.outputs[-500:]}
        assert recent & held["a"], "worker a was not publishing when killed"
        assert kcl_leader(streams.settings) == ids["a"]
        killed_at, killed_ms = time.monotonic(), time.time() * 1000
        a.proc.kill()  # returns once the whole process group is gone
        in_play_at_kill = len(producer.sent)
        # a can checkpoint no more, and b cannot before it takes the leases over.
        checkpoints_at_kill = checkpoints(streams)
        deadline = killed_at + 420
        last_print, leader_seconds = 0.0, None
        while serving_shards(b) != all_shards:
            now = time.monotonic()
            if leader_seconds is None and kcl_leader(streams.settings) == ids["b"]:
                leader_seconds = now - killed_at
            if now - last_print > 15:
                last_print = now
                leases = {k: v.get("leaseOwner") for k, v in kcl_leases(streams.settings).items()}
                print(
                    f"  +{now - killed_at:5.1f} s: b serves {sorted(serving_shards(b))}; "
                    f"leader {kcl_leader(streams.settings)}; leases {leases}"
                )
            assert now < deadline, "the survivor did not take all leases within 420 s"
            time.sleep(0.5)
        failover_seconds = time.monotonic() - killed_at
        leader_after = kcl_leader(streams.settings)
        # Keep sending past the fail-over, to at least 10,000 records in all.
        producer.wait_until(max(10_000, len(producer.sent) + 1000), timeout=180)
    finally:
        positions = producer.stop()
    # Exactly what a had published past its last checkpoint came out a second time.
    duplicates = assert_resumed_from_checkpoints(
        streams, positions, checkpoints_at_kill, held["a"], killed_ms + 3000
    )
    assert leader_after == ids["b"], f"the survivor should lead now, not {leader_after}"
    total = time.monotonic() - test_started
    print(
        f"[leader killed] shards of a {sorted(held['a'])}; records {len(positions)} "
        f"({in_play_at_kill} sent before the kill); duplicates {sum(duplicates.values())} "
        f"{duplicates}; survivor became leader {leader_seconds or 0:.1f} s and held all 4 "
        f"leases {failover_seconds:.1f} s after the kill; "
        f"test {total:.0f} s"
    )
