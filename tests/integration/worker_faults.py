"""What the worker fault tests share: fail-over settings, events, and the redelivery checks."""

from __future__ import annotations

from collections.abc import Callable

from consumer.tools.producer import events
from devstack.kcl_tables import kcl_leases, wait_checkpointed
from devstack.streaming import Position, Streams, redelivered

MAX_RECORDS = 1000
# The fastest fail-over settings of KCL 3.1.3: a lease expires 5 s after its last renewal
# (renewed every ~1.6 s; the worker also looks for leases assigned to it every ~10 s), the
# leader assigns leases every second, and workers report their metrics entry every second (the
# leader assigns only to workers with a fresh entry). The leader lock itself (2 minutes, 30 s
# heartbeat) is fixed in KCL 3.1.3, and maxLeasesToStealAtOneTime is not used by KCL 3's
# leader-based assignment.
FAILOVER_ENV = {
    "KCL_MAX_RECORDS": str(MAX_RECORDS),
    "KCL_FAILOVER_TIME_MS": "5000",
    "KCL_LEASE_ASSIGNMENT_INTERVAL_MS": "1000",
    "KCL_WORKER_METRICS_REPORT_INTERVAL_MS": "1000",
}
RATE = 200.0  # records per second, over all shards
MALFORMED_SHARE = 0.02


def event_maker(rows: list[dict[str, float]], base_seed: int) -> Callable[..., list]:
    def make(count: int, seed: int) -> list[tuple[str, bytes]]:
        return list(events(rows, count, MALFORMED_SHARE, seed=base_seed + seed))

    return make


def shard_ids(streams: Streams) -> set[str]:
    shards = streams.client.list_shards(StreamName=streams.settings.input_stream)["Shards"]
    return {s["ShardId"] for s in shards}


def assert_every_record_out(streams: Streams, positions: list[Position]) -> None:
    by_position = streams.outputs_by_position()
    missing = [p for p in positions if p not in by_position]
    assert not missing, f"{len(missing)} records without output, e.g. {missing[:3]}"


def checkpoints(streams: Streams) -> dict[str, int]:
    """The KCL's checkpoint per shard as a sequence number (-1: nothing checkpointed yet)."""
    found: dict[str, int] = {}
    for shard, lease in kcl_leases(streams.settings).items():
        checkpoint = str(lease.get("checkpoint", ""))
        found[shard] = int(checkpoint) if checkpoint.isdigit() else -1
    return found


def published_past_checkpoint(
    streams: Streams,
    positions: list[Position],
    checkpoints: dict[str, int],
    shards: set[str],
    until_ms: float,
) -> dict[str, list[int]]:
    """Per shard, the ranks of records past its checkpoint that had an output by `until_ms`:
    what the stopped worker published but had not checkpointed, the batch in flight."""
    by_position = streams.outputs_by_position()
    found: dict[str, list[int]] = {}
    for shard in shards:
        keys = sorted((int(seq), sub) for s, seq, sub in set(positions) if s == shard)
        ranks = [
            rank
            for rank, (seq, sub) in enumerate(keys)
            if seq > checkpoints.get(shard, -1)
            and any(
                o["_arrival_ms"] < until_ms for o in by_position.get((shard, str(seq), sub), [])
            )
        ]
        if ranks:
            found[shard] = ranks
    return found


def assert_redelivery_bound(
    streams: Streams, positions: list[Position], allowed_shards: set[str]
) -> dict[str, int]:
    """Records output twice: only on allowed shards, one contiguous run <= a batch per shard."""
    ranks = redelivered(streams, positions)
    assert set(ranks) <= allowed_shards, (
        f"duplicates on shards {sorted(set(ranks) - allowed_shards)} that did not move"
    )
    for shard, twice in ranks.items():
        assert twice == list(range(twice[0], twice[-1] + 1)), (
            f"{shard}: duplicates are not one contiguous run: {twice[:5]}...{twice[-5:]}"
        )
        assert len(twice) <= MAX_RECORDS, f"{shard}: {len(twice)} duplicates > one batch"
    return {shard: len(twice) for shard, twice in ranks.items()}


def assert_resumed_from_checkpoints(
    streams: Streams,
    positions: list[Position],
    checkpoints_at_fault: dict[str, int],
    faulted_shards: set[str],
    until_ms: float,
) -> dict[str, int]:
    """Once the producer has stopped: waits until every record is out and every shard is
    checkpointed past its last one (then all that will ever come out is out), and checks that
    every record came out and that what came out twice is exactly what the faulted worker had
    published past its checkpoints by `until_ms` (its batches in flight), on its shards only.
    Returns the duplicates per shard."""
    streams.wait_for(positions, timeout=300)
    wait_checkpointed(streams.settings, positions, timeout=120)
    streams.poll()
    assert_every_record_out(streams, positions)
    duplicates = assert_redelivery_bound(streams, positions, faulted_shards)
    in_flight = published_past_checkpoint(
        streams, positions, checkpoints_at_fault, faulted_shards, until_ms
    )
    assert redelivered(streams, positions) == in_flight
    return duplicates
