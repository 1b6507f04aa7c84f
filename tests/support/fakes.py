"""Test doubles of the consumer's collaborators: Kinesis, the KCL checkpointer, status files,
and the log output.

`FakeKinesis` and `FakeCheckpointer` share an event list so tests can check the order of
publishing and checkpointing. KCL messages are built with amazon_kclpy's own classes, so the
processor sees exactly what the daemon's JSON turns into.
"""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import structlog
from amazon_kclpy import messages
from amazon_kclpy.checkpoint_error import CheckpointError
from botocore.exceptions import ClientError

from consumer.observe.logs import configure_logging
from consumer.observe.metrics import ConsumerMetrics

Event = tuple[str, Any]


def metric_value(metrics: ConsumerMetrics, name: str, **labels: str) -> float:
    """A sample's value in the metrics' registry (0 when it was never set)."""
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@contextlib.contextmanager
def logs_in_memory(level: str) -> Iterator[io.StringIO]:
    """The JSON log lines, rendered exactly as in the service, kept in memory."""
    sink = io.StringIO()
    configure_logging(level, fallback=sink)
    try:
        yield sink
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def client_error(code: str, operation: str = "PutRecords") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


@dataclass
class FakeKinesis:
    """put_records that accepts everything unless told otherwise.

    `script` is consumed one item per call: an Exception to raise for the whole call, a callable
    taking the entries and returning per-entry error codes (None = accepted), or None.
    """

    events: list[Event] = field(default_factory=list)
    script: list[Any] = field(default_factory=list)
    always_fail_with: str | None = None
    on_call: Callable[[str, list[dict[str, Any]]], None] | None = None
    accepted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)

    # A publisher that never stops retrying (a test's mistake) fails fast, not out of memory.
    max_calls: int = 20_000

    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls.append((StreamName, len(Records)))
        if len(self.calls) > self.max_calls:
            raise AssertionError(f"more than {self.max_calls} PutRecords calls: runaway retries")
        if self.on_call is not None:
            self.on_call(StreamName, Records)
        step = self.script.pop(0) if self.script else None
        if self.always_fail_with is not None:
            step = lambda entries: [self.always_fail_with] * len(entries)  # noqa: E731
        if isinstance(step, BaseException):
            self.events.append(("put_records_failed", StreamName))
            raise step
        codes: list[str | None] = step(Records) if callable(step) else [None] * len(Records)
        results = []
        for entry, code in zip(Records, codes, strict=True):
            if code is None:
                self.accepted.setdefault(StreamName, []).append(entry)
                results.append({"SequenceNumber": "1", "ShardId": "shardId-000000000000"})
            else:
                results.append({"ErrorCode": code, "ErrorMessage": code})
        self.events.append(("put_records", (StreamName, len(Records) - sum(map(bool, codes)))))
        return {"FailedRecordCount": sum(map(bool, codes)), "Records": results}

    def records(self, stream: str) -> list[bytes]:
        return [entry["Data"] for entry in self.accepted.get(stream, [])]


@dataclass
class FakeCheckpointer:
    """The kclpy checkpointer: records calls; `errors` scripts CheckpointError names per call."""

    events: list[Event] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    calls: list[tuple[str | None, int | None]] = field(default_factory=list)

    def checkpoint(
        self, sequence_number: str | None = None, sub_sequence_number: int | None = None
    ) -> None:
        self.calls.append((sequence_number, sub_sequence_number))
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            self.events.append(("checkpoint_failed", error))
            raise CheckpointError(error)
        self.events.append(("checkpoint", (sequence_number, sub_sequence_number)))


@dataclass
class FakeStatus:
    states: list[tuple[str, str | None]] = field(default_factory=list)
    removed: bool = False

    def update(
        self, state: str, *, model_version: str | None = None, detail: str | None = None
    ) -> None:
        self.states.append((state, model_version))

    def remove(self) -> None:
        self.removed = True


def kcl_record(
    data: bytes, sequence: int | str, *, sub_sequence: int = 0, arrival_ms: int | None = None
) -> messages.Record:
    return messages.Record(
        {
            "action": "record",
            "data": base64.b64encode(data).decode("ascii"),
            "partitionKey": "pk",
            "sequenceNumber": str(sequence),
            "subSequenceNumber": sub_sequence,
            "approximateArrivalTimestamp": arrival_ms
            if arrival_ms is not None
            else 1_764_151_200_000,
        }
    )


def process_records_input(
    records: Iterable[messages.Record], millis_behind_latest: int = 1500
) -> messages.ProcessRecordsInput:
    return messages.ProcessRecordsInput(
        {
            "action": "processRecords",
            "records": list(records),
            "millisBehindLatest": millis_behind_latest,
        }
    )


def initialize_input(shard_id: str = "shardId-000000000001") -> messages.InitializeInput:
    return messages.InitializeInput(
        {
            "action": "initialize",
            "shardId": shard_id,
            "sequenceNumber": "TRIM_HORIZON",
            "subSequenceNumber": 0,
        }
    )


def shutdown_requested_input() -> messages.ShutdownRequestedInput:
    return messages.ShutdownRequestedInput({"action": "shutdownRequested"})


def shard_ended_input() -> messages.ShardEndedInput:
    return messages.ShardEndedInput({"action": "shardEnded"})


def lease_lost_input() -> messages.LeaseLostInput:
    return messages.LeaseLostInput({"action": "leaseLost"})


class FakeModel:
    """A predict function honouring the output contract, with scripted failures.

    P(dropout) = GDP-based logistic; a row whose GDP equals `poison` makes predict raise (so a
    batch containing it fails, and the row alone fails too).
    """

    def __init__(self, poison: float | None = None, threshold: float = 0.42) -> None:
        self.poison = poison
        self.threshold = threshold
        self.calls: list[int] = []

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.calls.append(len(frame))
        gdp = frame["GDP"].to_numpy(dtype=np.float64)
        if self.poison is not None and np.any(gdp == self.poison):
            raise ValueError("poisoned row")
        probability = 1.0 / (1.0 + np.exp(-np.nan_to_num(gdp, nan=0.0)))
        return pd.DataFrame(
            {
                "dropout_probability": probability,
                "at_risk": probability >= self.threshold,
                "risk_band": ["high" if p >= self.threshold else "low" for p in probability],
                "top_factors": [
                    [{"feature": "GDP", "label": "GDP", "value": g, "contribution": 1.0}]
                    for g in gdp.tolist()
                ],
            }
        )
