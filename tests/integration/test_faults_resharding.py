"""A shard split mid-stream, on real components (issue 5, scenario 3).

kinesis-local reshards like Kinesis: after `SplitShard` the parent is closed (its records end
with a shard end) and new records go to the two children. The KCL must finish the parent before
it reads a child (the processor checkpoints SHARD_END), so per student the outputs keep the input
order across parent and child. Records are well formed here so that every output is a
prediction on the predictions stream, whose order per student is the order of its sequence
numbers there (outputs are partitioned by student id).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from consumer.tools.producer import events
from devstack.consumers import ConsumerHandle, serving_shards, wait_serving
from devstack.kcl_tables import kcl_leases
from devstack.producer import Producer
from devstack.streaming import Position, Streams
from devstack.streams import wait_active

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

RATE = 150.0  # records per second


def _ms(output: dict[str, Any]) -> float:
    return datetime.fromisoformat(output["scored_at"]).timestamp() * 1000


def test_split_shard_mid_stream(
    champion: str,
    make_streams: Callable[..., Streams],
    start_consumer: Callable[..., ConsumerHandle],
    rows: list[dict[str, float]],
) -> None:
    test_started = time.monotonic()
    streams = make_streams(2)
    client, stream = streams.client, streams.settings.input_stream
    shards = client.list_shards(StreamName=stream)["Shards"]
    worker = start_consumer(streams, worker="split", env={"KCL_MAX_RECORDS": "1000"})
    wait_serving(worker, {s["ShardId"] for s in shards}, timeout=300)

    producer = Producer(
        streams,
        lambda count, seed: list(events(rows, count, 0.0, seed=30_000 + seed)),
        rate=RATE,
    ).start()
    try:
        producer.wait_until(2000, timeout=120)
        parent = shards[0]
        streams.poll()
        assert any(o["source"]["shard_id"] == parent["ShardId"] for o in streams.outputs), (
            "the parent shard is not being read at the split"
        )
        hash_range = parent["HashKeyRange"]
        low, high = int(hash_range["StartingHashKey"]), int(hash_range["EndingHashKey"])
        split_at = time.monotonic()
        client.split_shard(
            StreamName=stream,
            ShardToSplit=parent["ShardId"],
            NewStartingHashKey=str((low + high + 1) // 2),
        )
        wait_active(client, stream)
        sent_at_split = len(producer.sent)
        children = {
            s["ShardId"]
            for s in client.list_shards(StreamName=stream)["Shards"]
            if s.get("ParentShardId") == parent["ShardId"]
        }
        assert len(children) == 2
        # Keep sending until both children are served and have outputs; watch the parent's
        # lease reach SHARD_END (the processor's checkpoint at the shard end).
        shard_end_seen, parent_lease = None, None
        deadline = time.monotonic() + 240
        while True:
            leases = kcl_leases(streams.settings)
            lease = leases.get(parent["ShardId"])
            if shard_end_seen is None and lease and lease.get("checkpoint") == "SHARD_END":
                shard_end_seen, parent_lease = time.monotonic() - split_at, lease
            streams.poll()
            from_children = {o["source"]["shard_id"] for o in streams.outputs} & children
            if shard_end_seen is not None and from_children == children:
                break
            assert time.monotonic() < deadline, (
                f"after 240 s: parent lease {lease}, outputs from children {from_children}, "
                f"served {sorted(serving_shards(worker))}"
            )
            time.sleep(0.5)
        children_served_after = time.monotonic() - split_at
        producer.wait_until(len(producer.sent) + 2000, timeout=120)
    finally:
        positions = producer.stop()
    streams.wait_for(positions, timeout=300)
    time.sleep(3)
    streams.poll()

    # Nothing lost, nothing twice (nothing failed).
    by_position = streams.outputs_by_position()
    assert not [p for p in positions if p not in by_position]
    assert not streams.duplicates(), "nothing failed, so nothing may be delivered twice"
    assert all(o["schema"] == "dropout.prediction.v1" for o in streams.outputs)
    per_shard = {s: sum(1 for p in positions if p[0] == s) for s in {p[0] for p in positions}}
    assert all(per_shard.get(child, 0) > 0 for child in children), per_shard

    # The children were read only after the parent was finished.
    parent_outputs = [o for o in streams.outputs if o["source"]["shard_id"] == parent["ShardId"]]
    child_outputs = [o for o in streams.outputs if o["source"]["shard_id"] in children]
    last_parent = max(max(_ms(o), o["_arrival_ms"]) for o in parent_outputs)
    first_child = min(min(_ms(o), o["_arrival_ms"]) for o in child_outputs)
    assert first_child > last_parent, (
        f"a child record was scored {last_parent - first_child:.0f} ms before the parent's last"
    )

    # The parent's lease ended at SHARD_END (seen above) naming both children, and the
    # children's leases name it as their parent.
    assert parent_lease is not None
    assert set(parent_lease.get("childShardIds", ())) == children, parent_lease
    leases = kcl_leases(streams.settings)
    for child in children:
        assert parent["ShardId"] in leases[child].get("parentShardId", ()), leases[child]

    # Per student, outputs come out in input order, across parent and child.
    sent_by_key: dict[str, list[Position]] = {}
    for key, position in producer.sent:
        sent_by_key.setdefault(key, []).append(position)
    crossing = 0
    for key, sent in sent_by_key.items():
        outputs = [by_position[position][0] for position in sent]
        landed = [o["_output_position"] for o in outputs]
        assert len({shard for shard, _ in landed}) == 1, f"student {key} on several shards"
        sequences = [int(sequence) for _, sequence in landed]
        assert sequences == sorted(sequences), f"student {key}: outputs out of input order"
        crossing += len({shard for shard, _, _ in sent} & ({parent["ShardId"]} | children)) > 1
    # Students whose records went to the parent before the split and to a child after it: the
    # order check above covered the crossing itself, not only records within one shard.
    assert crossing > 0, "no student had records on both sides of the split"
    total = time.monotonic() - test_started
    print(
        f"\n[resharding] split {parent['ShardId']} into {sorted(children)} after "
        f"{sent_at_split} records; records {len(positions)} per shard {per_shard}; "
        f"duplicates {sum(streams.duplicates().values())}; parent SHARD_END "
        f"{shard_end_seen:.1f} s after the split; children served and output "
        f"{children_served_after:.1f} s after the split; gap parent last -> child first "
        f"{first_child - last_parent:.0f} ms; students crossing parent->child {crossing}; "
        f"test {total:.0f} s"
    )
