"""KPL-aggregated input through the real KCL daemon (issue 10).

Producers that use the KPL pack many user records into one Kinesis record; the KCL de-aggregates
them and hands each its own sub-sequence number. Every output must carry it, and the key a
downstream consumer de-duplicates on is shard + sequence + sub-sequence number: with shard +
sequence only, the distinct students of one aggregate would collapse into one. The aggregates
here are built with `aws-kinesis-agg`, the library that writes the KPL's format.

The second test crashes the worker between the sub-records of one aggregate: its output is
refused for good after the first outputs went out (the processor exits, code 11, without a
checkpoint); after a restart the aggregate is read again from the last checkpoint, so the
sub-records published before the crash come out twice (at least once) and the rest once, and a
de-duplication on the three-part key leaves exactly one output per user record.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import orjson
import pytest

from devstack.consumers import ConsumerHandle, ConsumerSlot, log_events
from devstack.kcl_tables import lease_checkpoints, wait_checkpointed
from devstack.streaming import Position, Streams, source_position
from tests.integration.faultproxy import Fault, FaultProxy, after

pytestmark = [pytest.mark.integration]

WORKER = "worker-kpl"


@pytest.fixture(scope="module")
def streams(make_streams: Callable[..., Streams], champion: str) -> Streams:
    return make_streams(2)


@pytest.fixture(scope="module")
def slot(
    streams: Streams, output_proxy: FaultProxy, start_consumer: Callable[..., ConsumerHandle]
) -> ConsumerSlot:
    return ConsumerSlot(
        lambda: start_consumer(
            streams, worker=WORKER, env={"OUTPUT_KINESIS_ENDPOINT_URL": output_proxy.url}
        )
    )


def student_event(student_id: int, row: dict[str, float]) -> bytes:
    return orjson.dumps({"student_id": student_id, "student_features": row})


def test_every_user_record_of_an_aggregate_gets_its_own_output(
    slot: ConsumerSlot, streams: Streams, rows: list[dict[str, float]]
) -> None:
    slot.current()
    # 200 distinct students in aggregates of at most 10, as a KPL batches them per shard.
    events = [(str(1000 + i), student_event(1000 + i, rows[i])) for i in range(200)]
    positions = streams.put_aggregated(events, per_aggregate=10)
    assert len(positions) == 200
    aggregates = len({(shard, seq) for shard, seq, _ in positions})
    assert aggregates <= 22  # 20 full ones, and a part-filled one per shard
    streams.wait_for(positions, timeout=180)
    wait_checkpointed(streams.settings, positions, timeout=60)
    streams.poll()

    outputs = streams.outputs_for(positions)
    assert len(outputs) == 200, "one output per user record, none twice"
    assert {o["source"]["sub_sequence_number"] for o in outputs} == set(range(10))
    assert len({o["source"]["shard_id"] for o in outputs}) == 2
    # Each output is the one of its own user record (the student of that position).
    for position, output in zip(positions, outputs, strict=True):
        assert source_position(output) == position
        assert output["student_id"] == orjson.loads(streams.sent[position])["student_id"]
    # De-duplicating on shard + sequence only would lose most of the distinct students.
    pairs = {(o["source"]["shard_id"], o["source"]["sequence_number"]) for o in outputs}
    assert len(pairs) == aggregates
    assert len({source_position(o) for o in outputs}) == 200


def test_a_crash_between_the_sub_records_of_one_aggregate_loses_nothing(
    slot: ConsumerSlot,
    streams: Streams,
    output_proxy: FaultProxy,
    rows: list[dict[str, float]],
    start_consumer: Callable[..., ConsumerHandle],
) -> None:
    consumer = slot.current()
    streams.wait_for(list(streams.sent), timeout=180)
    wait_checkpointed(streams.settings, list(streams.sent), timeout=60)
    checkpoints = lease_checkpoints(streams.settings)
    log_offset = consumer.proc.log_path.stat().st_size

    # One student's six events in one aggregate: one partition key, so the processor publishes
    # them one PutRecords call each (in order); the third call is refused for good.
    history = [("77", student_event(77, rows[500 + i])) for i in range(6)]
    output_proxy.set_plan(after(2, Fault.ACCESS_DENIED))
    positions = streams.put_aggregated(history, per_aggregate=6)
    assert len({(shard, seq) for shard, seq, _ in positions}) == 1
    assert consumer.proc.proc is not None
    assert consumer.proc.proc.wait(timeout=180) not in (0, None)
    exits = [
        str(e["event"])
        for e in log_events(consumer.proc.log_path, log_offset)
        if "Child process exited with value" in str(e.get("event"))
    ]
    assert any(line.endswith(": 11") for line in exits), exits
    # Two sub-records were published before the crash, and nothing was checkpointed.
    streams.poll()
    before_restart = streams.outputs_for(positions)
    assert [o["source"]["sub_sequence_number"] for o in before_restart] == [0, 1]
    assert lease_checkpoints(streams.settings) == checkpoints

    output_proxy.heal()
    restarted_at = time.monotonic()
    slot.replace(
        start_consumer(
            streams, worker=WORKER, env={"OUTPUT_KINESIS_ENDPOINT_URL": output_proxy.url}
        )
    )
    streams.wait_for(positions, timeout=240)
    wait_checkpointed(streams.settings, positions, timeout=60)
    streams.poll()
    recovery = time.monotonic() - restarted_at

    outputs = streams.outputs_for(positions)
    per_position = Counter(source_position(o) for o in outputs)
    # At least once: the two published before the crash came out again, the rest once ...
    assert [per_position[p] for p in positions] == [2, 2, 1, 1, 1, 1]
    # ... and de-duplicating on the three-part key leaves one output per event, in order.
    unique: dict[Position, dict[str, object]] = {}
    for output in outputs:
        unique.setdefault(source_position(output), output)
    assert [p[2] for p in unique] == list(range(6))
    assert all(o["student_id"] == 77 for o in unique.values())
    # With shard + sequence as the key, five of the student's six events would vanish.
    assert len({(o["source"]["shard_id"], o["source"]["sequence_number"]) for o in outputs}) == 1
    print(
        f"\n[kpl] aggregate of 6 sub-records, worker crashed after 2 were published; restarted, "
        f"all 6 out in {recovery:.1f} s, duplicates only of the 2 published before the crash"
    )
