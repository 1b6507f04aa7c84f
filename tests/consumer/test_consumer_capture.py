"""Capture: every batch's outcomes in object storage before its checkpoint, in the format the
learning loop reads, and a capture failure treated like a publish failure."""

from __future__ import annotations

import gzip
import io
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from common.exit_codes import ExitCode
from common.object_store import LocalStore, StoreError
from consumer.backoff import Backoff, Retry
from consumer.capture.errors import CaptureAbandonedError, CaptureError
from consumer.capture.writer import CaptureWriter, capture_lines
from consumer.observe.metrics import ConsumerMetrics
from consumer.records import InputRecord, SourcePosition
from consumer.scoring.batch import BatchResult, run_batch
from consumer.scoring.served_model import ServedModel
from tests.support.fakes import metric_value
from tests.support.harness import Harness
from tests.support.model_builder import sample_record
from training.loop.captures import read_captures

GOOD = orjson.dumps(sample_record(256))
ARRIVAL_MS = 1_764_151_200_000  # 2025-11-26


class FlakyStore:
    """An object store that fails its first `failures` puts, then keeps what it is given."""

    def __init__(self, failures: int = 0, events: list[tuple[str, Any]] | None = None) -> None:
        self.failures = failures
        self.objects: dict[str, bytes] = {}
        self.attempts = 0
        self.events = events if events is not None else []

    @property
    def uri(self) -> str:
        return "s3://bucket/loop/"

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            self.events.append(("capture_failed", key))
            raise StoreError(self.uri, "put", "EndpointConnectionError: unreachable", key=key)
        self.objects[key] = data
        self.events.append(("capture", key))
        return True


def batch(
    model: ServedModel, payloads: list[bytes], shard: str = "shardId-000000000001"
) -> BatchResult:
    records = [
        InputRecord(p, SourcePosition(shard, str(100 + i), i % 2, ARRIVAL_MS))
        for i, p in enumerate(payloads)
    ]
    return run_batch(model, records, clock=lambda: ARRIVAL_MS / 1000 + 1)


def writer(store: Any, metrics: ConsumerMetrics | None = None, **extra: Any) -> CaptureWriter:
    return CaptureWriter(
        store,
        Retry(
            extra.pop("max_attempts", 3), Backoff(0.001, 0.001), lambda _: None, random.Random(0)
        ),
        metrics,
        **extra,
    )


def test_one_line_per_record_with_what_the_loop_needs(fake_served: ServedModel) -> None:
    result = batch(fake_served, [GOOD, b"{broken"])
    prediction, dead = capture_lines(result)
    assert prediction["schema"] == "dropout.capture.v1"
    assert prediction["outcome"] == "prediction"
    assert prediction["student_id"] == 256
    # The attributes the student sent, and no others (a missing one is not written as NaN).
    assert prediction["attributes"] == sample_record(256)["student_features"]
    assert prediction["prediction"]["threshold"] == fake_served.contract.threshold
    assert set(prediction["prediction"]) == {
        "dropout_probability",
        "at_risk",
        "threshold",
        "risk_band",
        "top_factors",
        "stage",
    }
    assert prediction["model"] == {"name": "student-dropout", "version": "1"}
    assert prediction["source"] == {
        "shard_id": "shardId-000000000001",
        "sequence_number": "100",
        "sub_sequence_number": 0,
    }
    assert prediction["schemas"]["output"] == "dropout.prediction.v1"
    assert dead["outcome"] == "dead_letter"
    assert dead["attributes"] is None
    assert dead["prediction"] is None
    assert dead["dead_letter"]["reason"] == "invalid_json"
    assert dead["source"]["sub_sequence_number"] == 1
    # No raw payload is kept in the capture (the dead-letter stream has it, for a day).
    assert b"broken" not in orjson.dumps(dead)


def test_the_learning_loop_reads_what_the_consumer_writes(
    fake_served: ServedModel, tmp_path: Path, uci_data_path: Path
) -> None:
    """The format is shared (common/capture_format.py): writer and reader agree."""
    store = LocalStore(tmp_path)
    result = batch(fake_served, [GOOD, orjson.dumps(sample_record(257, GDP=-3.0)), b"[]"])
    key = writer(store).capture(result)
    assert key == (
        "captures/student-dropout/dt=2025-11-26/shardId-000000000001/100-0_102-0.jsonl.gz"
    )
    with gzip.open(io.BytesIO(store.get(key))) as handle:
        assert len(handle.read().splitlines()) == 3
    captures = read_captures(store, attribute_names=result.attribute_names)
    assert captures.summary.problems.total == 0
    frame = captures.frame.sort_values("sequence_number")
    assert frame["student_id"].tolist()[:2] == ["256", "257"]
    assert frame["outcome"].tolist() == ["prediction", "prediction", "dead_letter"]
    scored = [o for o in result.outputs if o.probability is not None]
    assert frame["probability"].tolist()[:2] == pytest.approx([o.probability for o in scored])
    assert frame["GDP"].tolist()[:2] == [1.74, -3.0]
    assert frame["scored_at"].iloc[0] == datetime(2025, 11, 26, 10, 0, 1, tzinfo=UTC)


def test_a_failed_write_is_retried_and_counted(
    fake_served: ServedModel, metrics: ConsumerMetrics
) -> None:
    store = FlakyStore(failures=2)
    writer(store, metrics).capture(batch(fake_served, [GOOD, b"{"]))
    assert store.attempts == 3
    assert len(store.objects) == 1
    retries = metric_value(
        metrics, "dropout_consumer_capture_retries_total", error="EndpointConnectionError"
    )
    assert retries == 2
    assert metric_value(metrics, "dropout_consumer_captured_records_total", kind="prediction") == 1
    assert metric_value(metrics, "dropout_consumer_captured_records_total", kind="dead_letter") == 1


def test_the_budget_runs_out(fake_served: ServedModel) -> None:
    store = FlakyStore(failures=10)
    with pytest.raises(CaptureError, match="after 3 attempt"):
        writer(store, max_attempts=3).capture(batch(fake_served, [GOOD]))
    assert store.objects == {}


def test_retries_stop_when_the_daemon_is_gone(fake_served: ServedModel) -> None:
    store = FlakyStore(failures=10)
    with pytest.raises(CaptureAbandonedError):
        writer(store, max_attempts=10, keep_trying=lambda: False).capture(
            batch(fake_served, [GOOD])
        )
    assert store.attempts == 1


def test_the_batch_is_captured_after_publishing_and_before_the_checkpoint(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    events: list[tuple[str, Any]] = []
    store = FlakyStore(failures=1, events=events)
    h = Harness(metrics, fake_served, capture=writer(store, metrics))
    h.kinesis.events = events
    h.checkpointer.events = events
    h.batch([GOOD, b"{"], first_sequence=10)
    assert [e[0] for e in events] == [
        "put_records",
        "put_records",
        "capture_failed",
        "capture",
        "checkpoint",
    ]


def test_a_capture_that_keeps_failing_ends_the_process_without_checkpoint(
    metrics: ConsumerMetrics, fake_served: ServedModel, log_lines: io.StringIO
) -> None:
    store = FlakyStore(failures=100)
    h = Harness(metrics, fake_served, capture=writer(store, metrics, max_attempts=3))
    with pytest.raises(SystemExit) as exited:
        h.batch([GOOD])
    assert exited.value.code == ExitCode.CAPTURE_FAILED
    assert h.checkpointer.calls == []
    assert h.handler.published is None
    events = [orjson.loads(line)["event"] for line in log_lines.getvalue().splitlines()]
    assert "capture_failed_exiting_without_checkpoint" in events
