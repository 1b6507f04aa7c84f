"""Helpers of the integration tests: send events, follow the output streams, read metrics."""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from scripts.stack.processes import ManagedProcess
from scripts.stack.settings import StackSettings
from scripts.stack.streams import kinesis_client

Position = tuple[str, str]  # (shard id, sequence number) of an input record


@dataclass
class StreamReader:
    """Follows every shard of a stream from its start; `poll()` returns what is new."""

    client: Any
    stream: str
    iterators: dict[str, str | None] = field(default_factory=dict)

    def poll(self) -> list[dict[str, Any]]:
        for shard in self.client.list_shards(StreamName=self.stream)["Shards"]:
            if shard["ShardId"] not in self.iterators:
                self.iterators[shard["ShardId"]] = self.client.get_shard_iterator(
                    StreamName=self.stream,
                    ShardId=shard["ShardId"],
                    ShardIteratorType="TRIM_HORIZON",
                )["ShardIterator"]
        new: list[dict[str, Any]] = []
        for shard_id, start in list(self.iterators.items()):
            iterator = start
            while iterator:
                response = _get_records(self.client, iterator)
                for record in response["Records"]:
                    body = orjson.loads(record["Data"])
                    body["_arrival_ms"] = int(
                        record["ApproximateArrivalTimestamp"].timestamp() * 1000
                    )
                    new.append(body)
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
                        placed[i] = (result["ShardId"], result["SequenceNumber"])
                pending = retry
                if pending:
                    time.sleep(0.1)
            for i in range(len(chunk)):
                positions.append(placed[i])
                self.sent[placed[i]] = chunk[i][1]
        return positions

    def poll(self) -> list[dict[str, Any]]:
        new = self._predictions.poll() + self._dead_letters.poll()
        self.outputs.extend(new)
        return new

    def outputs_by_position(self) -> dict[Position, list[dict[str, Any]]]:
        grouped: dict[Position, list[dict[str, Any]]] = {}
        for output in self.outputs:
            source = output["source"]
            grouped.setdefault((source["shard_id"], source["sequence_number"]), []).append(output)
        return grouped

    def wait_for(self, positions: Iterable[Position], timeout: float) -> None:
        """Polls the outputs until every position has one; fails naming what is missing."""
        wanted = set(positions)
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            missing = wanted - self.outputs_by_position().keys()
            if not missing:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(missing)} of {len(wanted)} input records have no output after "
                    f"{timeout:.0f} s, e.g. {sorted(missing)[:3]}"
                )
            time.sleep(0.5)

    def duplicates(self) -> Counter[Position]:
        counts = Counter(
            (o["source"]["shard_id"], o["source"]["sequence_number"]) for o in self.outputs
        )
        return Counter({position: n - 1 for position, n in counts.items() if n > 1})


@dataclass
class ConsumerHandle:
    proc: ManagedProcess
    metrics_url: str

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.metrics_url + path, timeout=5) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())

    def metrics(self) -> dict[str, float]:
        """Samples of /metrics as {name{label="v",...}: value}; labels sorted by name."""
        status, body = self.get("/metrics")
        assert status == 200, body
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}"] = sample.value
        return samples

    def metric_sum(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include the given ones."""
        total = 0.0
        want = [f'{k}="{v}"' for k, v in labels.items()]
        for key, value in self.metrics().items():
            if key.split("{", 1)[0] == name and all(w in key for w in want):
                total += value
        return total

    def wait_ready(self, timeout: float = 180.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status, raw = self.get("/readyz")
            body = orjson.loads(raw) if raw else {}
            if status == 200:
                return body
            assert self.proc.alive(), f"consumer exited; see {self.proc.log_path}"
            time.sleep(1)
        raise AssertionError(f"consumer not ready after {timeout:.0f} s: {body}")
