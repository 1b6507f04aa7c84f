"""Helpers of the integration tests: send events, follow the output streams, read metrics."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from scripts.stack.processes import ManagedProcess
from scripts.stack.services import FAKE_AWS_ENV
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
                    # Where the output landed: orders the outputs of one partition key.
                    body["_output_position"] = (shard_id, record["SequenceNumber"])
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


# --- fault tests (issue 5: registry outages, output trouble, hostile input) ---------------------


def log_events(path: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The JSON log lines of a service's log file (from a byte offset); other lines skipped."""
    events: list[dict[str, Any]] = []
    with path.open("rb") as log:
        log.seek(offset)
        for line in log:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


def process_running(pid: int) -> bool:
    """Whether a process exists and is not a zombie (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --- fault tests (issue 5: worker killed, stop and restart, resharding) --------------------------


def kcl_items(settings: StackSettings, table: str) -> list[dict[str, Any]]:
    """Every item of one of the KCL's DynamoDB tables (moto), as plain Python values ([] if none).

    Tables: the lease table (named after the application; key `leaseKey` = shard id, with
    `leaseOwner`, `checkpoint`, `parentShardId`...), `<application>-CoordinatorState` (the
    leader lock: key `Leader`, `ownerName`) and `<application>-WorkerMetricStats`.
    """
    import boto3
    from boto3.dynamodb.types import TypeDeserializer

    client = boto3.client(
        "dynamodb",
        endpoint_url=settings.dynamodb_url,
        region_name=settings.aws_region,
        aws_access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    deserializer = TypeDeserializer()
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        try:
            page = client.scan(**kwargs)
        except client.exceptions.ResourceNotFoundException:
            return []  # the KCL has not created it yet
        items += [
            {k: deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"]
        ]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def kcl_leases(settings: StackSettings) -> dict[str, dict[str, Any]]:
    """The lease table by lease key (the shard id)."""
    return {item["leaseKey"]: item for item in kcl_items(settings, settings.kcl_application_name)}


def lease_checkpoints(settings: StackSettings) -> dict[str, str]:
    """The KCL's checkpoint per shard: a sequence number or a sentinel such as TRIM_HORIZON
    (nothing checkpointed yet) or SHARD_END."""
    return {
        shard: str(lease["checkpoint"])
        for shard, lease in kcl_leases(settings).items()
        if "checkpoint" in lease
    }


def kcl_leader(settings: StackSettings) -> str | None:
    """The worker id holding KCL 3's leader lock, if any."""
    for item in kcl_items(settings, f"{settings.kcl_application_name}-CoordinatorState"):
        if item.get("key") == "Leader":
            owner = item.get("ownerName")
            return None if owner is None else str(owner)
    return None


def serving_shards(handle: ConsumerHandle) -> set[str]:
    """Shards whose processor this worker reports ready on /readyz (the leases it serves)."""
    try:
        _, raw = handle.get("/readyz")
    except OSError:
        return set()
    body = orjson.loads(raw) if raw else {}
    return {p["shard_id"] for p in body.get("processors", []) if p.get("state") == "ready"}


def wait_serving(handle: ConsumerHandle, shards: set[str], timeout: float) -> None:
    """Waits until the worker serves exactly these shards; fails if it exits or takes longer."""
    deadline = time.monotonic() + timeout
    while serving_shards(handle) != shards:
        assert handle.proc.alive(), f"consumer exited; see {handle.proc.log_path}"
        assert time.monotonic() < deadline, (
            f"not serving {sorted(shards)} after {timeout:.0f} s: {sorted(serving_shards(handle))}"
        )
        time.sleep(0.5)


class Producer:
    """Sends generated events from a background thread, about `rate` records a second.

    `sent` holds (partition key, input position) in the order the records were put, so the
    send order of one partition key is its input order. It sends until `stop()`, or until
    `count` records or `seconds` have gone by (then `join()` waits for the end): a producer
    the stream cannot keep up with stops on time, and `sent` says how far it got.
    """

    def __init__(
        self,
        streams: Streams,
        make_events: Callable[[int, int], list[tuple[str, bytes]]],
        *,
        rate: float,
        batch: int = 100,
        count: int | None = None,
        seconds: float | None = None,
    ) -> None:
        self._streams = streams
        self._count = count
        self._seconds = seconds
        self.started_at = 0.0
        self._make_events = make_events
        self._interval = batch / rate
        self._batch = batch
        self.sent: list[tuple[str, Position]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)

    @property
    def positions(self) -> list[Position]:
        return [position for _, position in self.sent]

    def start(self) -> Producer:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        seed = 0
        self.started_at = next_at = time.monotonic()
        deadline = None if self._seconds is None else self.started_at + self._seconds
        try:
            while not self._stop.is_set():
                size = self._batch
                if self._count is not None:
                    size = min(size, self._count - len(self.sent))
                if size <= 0 or (deadline is not None and time.monotonic() >= deadline):
                    return
                batch = self._make_events(size, seed)
                seed += 1
                positions = self._streams.put(batch)
                self.sent += [(key, pos) for (key, _), pos in zip(batch, positions, strict=True)]
                next_at += self._interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # surfaced by stop(): a test must not pass on a dead producer
            self.error = exc

    def wait_until(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.sent) < count:
            assert self.error is None, f"producer failed: {self.error!r}"
            assert time.monotonic() < deadline, f"only {len(self.sent)} of {count} records sent"
            time.sleep(0.2)

    def join(self) -> float:
        """Waits until the producer ends by itself (count or seconds); the seconds it sent."""
        self._thread.join()
        if self.error is not None:
            raise RuntimeError(f"the producer stopped after {len(self.sent)} records") from (
                self.error
            )
        return time.monotonic() - self.started_at

    def stop(self) -> list[Position]:
        self._stop.set()
        self._thread.join(timeout=60)
        assert self.error is None, f"producer failed: {self.error!r}"
        return self.positions


def redelivered(streams: Streams, positions: Iterable[Position]) -> dict[str, list[int]]:
    """Per input shard, the ranks (in the shard's sequence order) of records output twice or more.

    One re-delivered batch is a contiguous run of ranks; a shard absent from the answer had no
    duplicate.
    """
    by_shard: dict[str, list[int]] = {}
    for shard, sequence in set(positions):
        by_shard.setdefault(shard, []).append(int(sequence))
    counts = Counter(
        (o["source"]["shard_id"], o["source"]["sequence_number"]) for o in streams.outputs
    )
    ranks: dict[str, list[int]] = {}
    for shard, sequences in by_shard.items():
        sequences.sort()
        twice = [i for i, seq in enumerate(sequences) if counts[(shard, str(seq))] > 1]
        if twice:
            ranks[shard] = twice
    return ranks
