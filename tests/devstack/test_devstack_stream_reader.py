"""The tests' output reader (devstack/streaming.py StreamReader): an iterator that expired
between two polls (5 minutes, as in a slow fail-over) is renewed after the last record read,
so the reader neither fails nor reads a record twice."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from devstack.streaming import StreamReader


class ExpiredIteratorError(Exception):
    """Stands in for botocore's ExpiredIteratorException."""


class ThrottledError(Exception):
    """Stands in for botocore's ProvisionedThroughputExceededException."""


class OneShardStream:
    """A one-shard stream whose iterators are 'sequence:N' and can be made to expire."""

    class exceptions:  # noqa: N801 - the shape of a botocore client's exceptions
        ExpiredIteratorException = ExpiredIteratorError
        ProvisionedThroughputExceededException = ThrottledError

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.expired: set[str] = set()
        self.iterator_requests: list[dict[str, Any]] = []

    def put(self, n: int) -> None:
        start = len(self.records)
        for i in range(start, start + n):
            self.records.append(
                {
                    "Data": orjson.dumps({"n": i}),
                    "SequenceNumber": f"{i:05d}",
                    "ApproximateArrivalTimestamp": dt.datetime.now(dt.UTC),
                }
            )

    def list_shards(self, StreamName: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        return {"Shards": [{"ShardId": "shardId-0"}]}

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        self.iterator_requests.append(kwargs)
        at = 0
        if kwargs["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER":
            at = int(kwargs["StartingSequenceNumber"]) + 1
        # Every iterator handed out is a new one, as Kinesis's are.
        return {"ShardIterator": f"at:{at}:{len(self.iterator_requests)}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        if ShardIterator in self.expired:
            raise ExpiredIteratorError("The shard iterator has expired")
        at = int(ShardIterator.split(":")[1])
        batch = self.records[at : at + 3]
        return {"Records": batch, "NextShardIterator": f"at:{at + len(batch)}:next"}


def test_an_expired_iterator_is_renewed_after_the_last_record_read() -> None:
    stream = OneShardStream()
    reader = StreamReader(stream, "out")
    stream.put(5)
    assert [r["n"] for r in reader.poll()] == [0, 1, 2, 3, 4]

    # More than 5 minutes pass: the iterator the reader holds expires; more records arrive.
    stream.expired.add(str(reader.iterators["shardId-0"]))
    stream.put(4)
    assert [r["n"] for r in reader.poll()] == [5, 6, 7, 8]
    assert stream.iterator_requests[-1] == {
        "StreamName": "out",
        "ShardId": "shardId-0",
        "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
        "StartingSequenceNumber": "00004",
    }
    assert reader.poll() == []


def test_an_iterator_that_expires_before_any_record_starts_again_from_the_start() -> None:
    stream = OneShardStream()
    reader = StreamReader(stream, "out")
    assert reader.poll() == []
    stream.expired.add(str(reader.iterators["shardId-0"]))
    stream.put(2)
    assert [r["n"] for r in reader.poll()] == [0, 1]
    assert stream.iterator_requests[-1]["ShardIteratorType"] == "TRIM_HORIZON"


def test_an_iterator_that_expires_again_at_once_is_an_error() -> None:
    """A fresh iterator does not expire: the reader renews once, then lets the error out."""
    stream = OneShardStream()
    reader = StreamReader(stream, "out")
    reader.poll()
    stream.expired.add(str(reader.iterators["shardId-0"]))
    stream.expired.add("at:0:2")  # the renewed one
    with pytest.raises(ExpiredIteratorError):
        reader.poll()
