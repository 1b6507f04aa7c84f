"""Send student events into a stack's input stream and follow its two output streams.

An input record is known by its position: shard id, sequence number and sub-sequence number
(0 for a plain record; a KPL-aggregated record holds several user records, one per
sub-sequence number). Every output carries the position of its input in `source`, which is
also the key a downstream consumer de-duplicates on (docs/wire-formats.md).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from devstack.settings import StackSettings
from devstack.streams import create_streams, kinesis_client

Position = tuple[str, str, int]  # (shard id, sequence number, sub-sequence number)


def source_position(output: dict[str, Any]) -> Position:
    """The input position an output (prediction or dead letter) says it came from."""
    source = output["source"]
    return (
        str(source["shard_id"]),
        str(source["sequence_number"]),
        int(source.get("sub_sequence_number") or 0),
    )


@dataclass
class StreamReader:
    """Follows every shard of a stream from its start; `poll()` returns what is new.

    A shard iterator expires 5 minutes after it was handed out, and a test may wait longer
    than that between two polls (a fail-over under load): the reader then asks for a new one
    after the last record it read, so nothing is read twice or skipped.
    """

    client: Any
    stream: str
    iterators: dict[str, str | None] = field(default_factory=dict)
    last_sequence: dict[str, str] = field(default_factory=dict)

    def _iterator(self, shard_id: str) -> str:
        after = self.last_sequence.get(shard_id)
        where = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
            if after
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        return str(
            self.client.get_shard_iterator(StreamName=self.stream, ShardId=shard_id, **where)[
                "ShardIterator"
            ]
        )

    def poll(self) -> list[dict[str, Any]]:
        for shard in self.client.list_shards(StreamName=self.stream)["Shards"]:
            if shard["ShardId"] not in self.iterators:
                self.iterators[shard["ShardId"]] = self._iterator(shard["ShardId"])
        new: list[dict[str, Any]] = []
        for shard_id, start in list(self.iterators.items()):
            iterator, renewed = start, False
            while iterator:
                try:
                    response = _get_records(self.client, iterator)
                except self.client.exceptions.ExpiredIteratorException:
                    if renewed:  # a fresh iterator does not expire: something else is wrong
                        raise
                    iterator, renewed = self._iterator(shard_id), True
                    continue
                for record in response["Records"]:
                    body = orjson.loads(record["Data"])
                    body["_arrival_ms"] = int(
                        record["ApproximateArrivalTimestamp"].timestamp() * 1000
                    )
                    # Where the output landed: orders the outputs of one partition key.
                    body["_output_position"] = (shard_id, record["SequenceNumber"])
                    new.append(body)
                    self.last_sequence[shard_id] = record["SequenceNumber"]
                iterator = response.get("NextShardIterator")
                if not response["Records"]:
                    break
            self.iterators[shard_id] = iterator
        return new


def _get_records(client: Any, iterator: str) -> dict[str, Any]:
    for attempt in range(20):
        try:
            return dict(client.get_records(ShardIterator=iterator, Limit=10000))
        except client.exceptions.ProvisionedThroughputExceededException:
            time.sleep(0.2 * (attempt + 1))
    raise TimeoutError("GetRecords stayed throttled")


def fresh_streams(
    stack: StackSettings, tag: str, input_shards: int = 4, **overrides: object
) -> Streams:
    """New input, predictions and dead-letter streams, a KCL application and a loop prefix of
    their own, all named after `tag` (created, with the loop's bucket)."""
    settings = stack.model_copy(
        update={
            "input_stream": f"events-{tag}",
            "predictions_stream": f"predictions-{tag}",
            "dead_letter_stream": f"dead-letters-{tag}",
            "input_shards": input_shards,
            "kcl_application_name": f"consumer-{tag}",
            # Each test module's or benchmark's captures under a prefix of their own.
            "loop_prefix": f"loop-{tag}",
            **overrides,
        }
    )
    create_streams(settings)
    return Streams(settings)


class Streams:
    """The three streams of one test and the records that went through them."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.tag = settings.input_stream.removeprefix("events-")
        self.client = kinesis_client(settings)
        self.sent: dict[Position, bytes] = {}
        self.outputs: list[dict[str, Any]] = []
        self._predictions = StreamReader(self.client, settings.predictions_stream)
        self._dead_letters = StreamReader(self.client, settings.dead_letter_stream)

    def put(self, events: Iterable[tuple[str, bytes]]) -> list[Position]:
        """PutRecords in batches of 500, retrying failed entries; returns input positions."""
        positions: list[Position] = []
        batch = list(events)
        for start in range(0, len(batch), 500):
            chunk = batch[start : start + 500]
            pending = list(range(len(chunk)))
            placed: dict[int, Position] = {}
            while pending:
                response = self.client.put_records(
                    StreamName=self.settings.input_stream,
                    Records=[{"PartitionKey": chunk[i][0], "Data": chunk[i][1]} for i in pending],
                )
                retry = []
                for i, result in zip(pending, response["Records"], strict=True):
                    if "ErrorCode" in result:
                        retry.append(i)
                    else:
                        placed[i] = (result["ShardId"], result["SequenceNumber"], 0)
                pending = retry
                if pending:
                    time.sleep(0.1)
            for i in range(len(chunk)):
                positions.append(placed[i])
                self.sent[placed[i]] = chunk[i][1]
        return positions

    def put_aggregated(
        self, records: Sequence[tuple[str, bytes]], per_aggregate: int = 10
    ) -> list[Position]:
        """(partition key, data) pairs as KPL-aggregated Kinesis records, the way the KPL writes
        them (built with aws-kinesis-agg): user records are grouped by the shard their
        partition key hashes to, up to `per_aggregate` per aggregate, and each aggregate is put
        with an explicit hash key of that shard (the KCL drops a user record whose key belongs
        to another shard). Returns the positions in input order; the i-th user record of an
        aggregate is at sub-sequence number i."""
        from aws_kinesis_agg.aggregator import RecordAggregator

        shards = [
            s
            for s in self.client.list_shards(StreamName=self.settings.input_stream)["Shards"]
            if "EndingSequenceNumber" not in s["SequenceNumberRange"]
        ]

        def shard_of(key: str) -> str:
            digest = int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16)  # noqa: S324 (Kinesis' hash)
            for shard in shards:
                hash_range = shard["HashKeyRange"]
                if int(hash_range["StartingHashKey"]) <= digest <= int(hash_range["EndingHashKey"]):
                    return str(shard["ShardId"])
            raise ValueError(f"no open shard for partition key {key!r}")

        by_shard: dict[str, list[int]] = {}
        for index, (key, _) in enumerate(records):
            by_shard.setdefault(shard_of(key), []).append(index)
        positions: dict[int, Position] = {}
        for indices in by_shard.values():
            for start in range(0, len(indices), per_aggregate):
                group = indices[start : start + per_aggregate]
                aggregator = RecordAggregator()
                for index in group:
                    key, data = records[index]
                    if aggregator.add_user_record(key, data) is not None:
                        raise ValueError("aggregate larger than one Kinesis record")
                aggregate = aggregator.clear_and_get()
                assert aggregate is not None
                key, _, data = aggregate.get_contents()
                first_hash = int(hashlib.md5(records[group[0]][0].encode()).hexdigest(), 16)  # noqa: S324
                result = self.client.put_record(
                    StreamName=self.settings.input_stream,
                    PartitionKey=key,
                    ExplicitHashKey=str(first_hash),
                    Data=data,
                )
                for sub, index in enumerate(group):
                    position = (result["ShardId"], result["SequenceNumber"], sub)
                    positions[index] = position
                    self.sent[position] = records[index][1]
        return [positions[i] for i in range(len(records))]

    def poll(self) -> list[dict[str, Any]]:
        new = self._predictions.poll() + self._dead_letters.poll()
        self.outputs.extend(new)
        return new

    def outputs_by_position(self) -> dict[Position, list[dict[str, Any]]]:
        grouped: dict[Position, list[dict[str, Any]]] = {}
        for output in self.outputs:
            grouped.setdefault(source_position(output), []).append(output)
        return grouped

    def outputs_for(self, positions: Iterable[Position]) -> list[dict[str, Any]]:
        """The outputs of these inputs, in the order of `positions`."""
        by_position = self.outputs_by_position()
        return [output for position in positions for output in by_position.get(position, [])]

    def wait_for(self, positions: Iterable[Position], timeout: float) -> None:
        """Polls the outputs until every position has one; fails naming what is missing."""
        wanted = set(positions)
        # Only the outputs each poll brings can settle a position: no regrouping of all so far.
        missing = wanted - {source_position(o) for o in self.outputs}
        deadline = time.monotonic() + timeout
        while True:
            missing -= {source_position(o) for o in self.poll()}
            if not missing:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(missing)} of {len(wanted)} input records have no output after "
                    f"{timeout:.0f} s, e.g. {sorted(missing)[:3]}"
                )
            # Each poll reads every shard of both output streams: once a second is enough.
            time.sleep(1.0)

    def duplicates(self) -> Counter[Position]:
        counts = Counter(source_position(o) for o in self.outputs)
        return Counter({position: n - 1 for position, n in counts.items() if n > 1})


def redelivered(streams: Streams, positions: Iterable[Position]) -> dict[str, list[int]]:
    """Per input shard, the ranks (in the shard's sequence order) of records output twice or more.

    One re-delivered batch is a contiguous run of ranks; a shard absent from the answer had no
    duplicate.
    """
    by_shard: dict[str, list[tuple[int, int]]] = {}
    for shard, sequence, sub in set(positions):
        by_shard.setdefault(shard, []).append((int(sequence), sub))
    counts = Counter(source_position(o) for o in streams.outputs)
    ranks: dict[str, list[int]] = {}
    for shard, keys in by_shard.items():
        keys.sort()
        twice = [i for i, (seq, sub) in enumerate(keys) if counts[(shard, str(seq), sub)] > 1]
        if twice:
            ranks[shard] = twice
    return ranks
