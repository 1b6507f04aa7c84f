"""The shard record processor with a fake checkpointer and a fake Kinesis.

Covers the processor's promises: publish everything, then checkpoint at the batch's last
position; never checkpoint past unpublished records (exit instead); never after a lost lease;
checkpoint at shard end and on shutdown; swap models only between batches; wait for a model.
"""

from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from amazon_kclpy import kcl

from common.exit_codes import ExitCode
from consumer.intake.kcl_records import to_input_record
from consumer.model.holder import ModelHolder
from consumer.observe.metrics import ConsumerMetrics
from consumer.scoring.served_model import ServedModel
from tests.support.fakes import (
    FakeKinesis,
    FakeStatus,
    kcl_record,
    lease_lost_input,
    metric_value,
    process_records_input,
    shard_ended_input,
    shutdown_requested_input,
)
from tests.support.harness import DEAD_LETTERS, PREDICTIONS, SHARD, Harness
from tests.support.model_builder import dataset_records, sample_record

GOOD = orjson.dumps(sample_record(256))
MIXED = [
    GOOD,
    b"{broken",
    orjson.dumps(sample_record(257, GDP=-3.0)),
    orjson.dumps(sample_record(258, GDP="x")),
    orjson.dumps(sample_record(259, **{"Unknown thing": 1})),
    b"\xff",
]


def test_batch_is_published_then_checkpointed_at_its_last_position(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    h = Harness(metrics, fake_served)
    h.batch(MIXED, first_sequence=100)
    predictions, dead = h.outputs(PREDICTIONS), h.outputs(DEAD_LETTERS)
    assert [p["student_id"] for p in predictions] == [256, 257, 259]
    assert [d["reason"] for d in dead] == ["invalid_json", "wrong_type", "invalid_encoding"]
    assert {p["source"]["shard_id"] for p in predictions + dead} == {SHARD}
    # Publishing first, then one checkpoint at the last record's sequence and sub-sequence.
    assert [e[0] for e in h.events] == ["put_records", "put_records", "checkpoint"]
    assert h.events[-1] == ("checkpoint", ("105", 2))
    assert h.handler.published == ("105", 2)
    assert h.status.states[0][0] == "starting"
    assert h.status.states[-1] == ("ready", "1")

    m = metrics
    assert metric_value(m, "dropout_consumer_records_received_total", shard_id=SHARD) == 6
    assert (
        metric_value(m, "dropout_consumer_predictions_total", decision="at_risk", model_version="1")
        == 2
    )
    assert (
        metric_value(
            m, "dropout_consumer_predictions_total", decision="not_at_risk", model_version="1"
        )
        == 1
    )
    assert metric_value(m, "dropout_consumer_dead_letters_total", reason="invalid_json") == 1
    assert metric_value(m, "dropout_consumer_dead_letters_total", reason="invalid_encoding") == 1
    assert metric_value(m, "dropout_consumer_ignored_attributes_total") == 1
    assert metric_value(m, "dropout_consumer_published_records_total", stream="predictions") == 3
    assert metric_value(m, "dropout_consumer_published_records_total", stream="dead_letters") == 3
    assert metric_value(m, "dropout_consumer_checkpoints_total", outcome="success") == 1
    assert metric_value(m, "dropout_consumer_behind_latest_seconds", shard_id=SHARD) == 1.5
    assert metric_value(m, "dropout_consumer_batch_size_records_sum") == 6
    assert metric_value(m, "dropout_consumer_batch_duration_seconds_count") == 1
    assert metric_value(m, "dropout_consumer_scoring_duration_seconds_count") == 1
    assert metric_value(m, "dropout_consumer_record_age_seconds_count") == 6
    assert metric_value(m, "dropout_consumer_dropout_probability_count") == 3
    assert metric_value(m, "dropout_consumer_processor_ready", shard_id=SHARD) == 1
    assert (
        metric_value(
            m, "dropout_consumer_model_info", model_name="student-dropout", model_version="1"
        )
        == 1
    )


def test_partial_put_failures_are_retried_before_the_checkpoint(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    def throttle_first(entries: list[dict[str, Any]]) -> list[str | None]:
        return ["ProvisionedThroughputExceededException"] + [None] * (len(entries) - 1)

    h = Harness(metrics, fake_served, kinesis=FakeKinesis(script=[throttle_first]))
    h.batch([orjson.dumps(sample_record(i)) for i in (1, 2, 3)])
    assert [e[0] for e in h.events] == ["put_records", "put_records", "checkpoint"]
    assert [p["student_id"] for p in h.outputs(PREDICTIONS)] == [2, 3, 1]
    assert (
        metric_value(
            metrics,
            "dropout_consumer_publish_retries_total",
            stream="predictions",
            error_code="ProvisionedThroughputExceededException",
        )
        == 1
    )


def test_publish_budget_exhausted_exits_without_checkpoint(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    kinesis = FakeKinesis(always_fail_with="InternalFailure")
    h = Harness(metrics, fake_served, kinesis=kinesis, publish_attempts=2)
    with pytest.raises(SystemExit) as exited:
        h.batch([GOOD, b"{"])
    assert exited.value.code == ExitCode.PUBLISH_FAILED
    assert h.checkpointer.calls == []
    assert h.handler.published is None


def test_an_unexpected_error_exits_without_checkpoint(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    def explode(stream: str, entries: list[dict[str, Any]]) -> None:
        raise RuntimeError("a bug")

    h = Harness(metrics, fake_served, kinesis=FakeKinesis(on_call=explode))
    with pytest.raises(SystemExit) as exited:
        h.batch([GOOD])
    assert exited.value.code == ExitCode.PROCESSOR_ERROR
    assert h.checkpointer.calls == []


class BrokenStatus(FakeStatus):
    def update(
        self, state: str, *, model_version: str | None = None, detail: str | None = None
    ) -> None:
        raise OSError(28, "No space left on device")


def test_a_status_file_that_cannot_be_written_does_not_stop_scoring(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    h = Harness(metrics, fake_served, status=BrokenStatus())
    h.batch([GOOD])
    assert [e[0] for e in h.events] == ["put_records", "checkpoint"]
    assert metric_value(metrics, "dropout_consumer_processor_ready", shard_id=SHARD) == 1


def test_a_failing_initialize_ends_the_process(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    """kclpy would swallow the error and leave the shard with a processor that never serves."""
    h = Harness(metrics, fake_served, initialize=False)

    def broken_factory(shard_id: str) -> FakeStatus:
        raise PermissionError(13, "state dir not writable")

    h.processor.status_factory = broken_factory
    with pytest.raises(SystemExit) as exited:
        h.initialize()
    assert exited.value.code == ExitCode.PROCESSOR_ERROR


def test_bookkeeping_after_publish_cannot_cause_a_republish(
    metrics: ConsumerMetrics, fake_served: ServedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(metrics, fake_served)

    def broken(result: object) -> None:
        raise RuntimeError("a metrics bug")

    monkeypatch.setattr(h.handler, "_count", broken)
    h.batch([GOOD, GOOD], first_sequence=7)
    # Published and checkpointed; the process goes on (exiting would publish it again).
    assert [e[0] for e in h.events] == ["put_records", "put_records", "checkpoint"]
    assert h.events[-1] == ("checkpoint", ("8", 1))


def test_a_batch_whose_daemon_went_away_is_not_published(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    h = Harness(metrics, fake_served, daemon_alive=lambda: False)
    with pytest.raises(SystemExit) as exited:
        h.batch([GOOD])
    assert exited.value.code == ExitCode.DAEMON_GONE
    assert h.events == []


def _protocol_lines(*messages: dict[str, Any]) -> io.StringIO:
    return io.StringIO("".join(json.dumps(m) + "\n" for m in messages))


def _kcl_records(payloads: list[bytes], first: int = 10) -> list[dict[str, Any]]:
    return [
        {
            "action": "record",
            "data": __import__("base64").b64encode(p).decode(),
            "partitionKey": "pk",
            "sequenceNumber": str(first + i),
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": 1_764_151_200_000,
        }
        for i, p in enumerate(payloads)
    ]


def test_kclpy_cannot_swallow_a_publish_failure(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    """KCLProcess swallows exceptions and reports the action done; our exit is not one."""
    kinesis = FakeKinesis(always_fail_with="InternalFailure")
    h = Harness(metrics, fake_served, kinesis=kinesis, publish_attempts=2)
    stdin = _protocol_lines(
        {"action": "processRecords", "records": _kcl_records([GOOD]), "millisBehindLatest": 0},
    )
    stdout = io.StringIO()
    with pytest.raises(SystemExit):
        kcl.KCLProcess(h.processor, input_file=stdin, output_file=stdout).run()
    # No checkpoint action and no "done" status for the batch were sent to the daemon.
    assert "checkpoint" not in stdout.getvalue()
    assert "processRecords" not in stdout.getvalue()


def test_over_the_real_kcl_protocol(metrics: ConsumerMetrics, served_model: ServedModel) -> None:
    h = Harness(metrics, served_model)
    stdin = _protocol_lines(
        {
            "action": "processRecords",
            "records": _kcl_records([GOOD, b"[]", GOOD], first=10),
            "millisBehindLatest": 250,
        },
        {"action": "checkpoint", "sequenceNumber": "12", "subSequenceNumber": 0, "error": None},
        {"action": "shutdownRequested"},
        {"action": "checkpoint", "sequenceNumber": "12", "subSequenceNumber": 0, "error": None},
    )
    stdout = io.StringIO()
    kcl.KCLProcess(h.processor, input_file=stdin, output_file=stdout).run()
    sent = [json.loads(line) for line in stdout.getvalue().splitlines() if line.strip()]
    assert sent == [
        {"action": "checkpoint", "sequenceNumber": "12", "subSequenceNumber": 0},
        {"action": "status", "responseFor": "processRecords"},
        {"action": "checkpoint", "sequenceNumber": "12", "subSequenceNumber": 0},
        {"action": "status", "responseFor": "shutdownRequested"},
    ]
    assert len(h.outputs(PREDICTIONS)) == 2
    assert [d["reason"] for d in h.outputs(DEAD_LETTERS)] == ["not_an_object"]


def test_lease_lost_means_no_checkpoint_ever_after(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    h = Harness(metrics, fake_served)
    h.batch([GOOD], first_sequence=1)
    lease_lost_input().dispatch(None, h.processor)
    h.batch([GOOD], first_sequence=2)
    shutdown_requested_input().dispatch(h.checkpointer, h.processor)
    assert h.checkpointer.calls == [("1", 0)]
    assert len(h.outputs(PREDICTIONS)) == 1
    assert h.status.states[-1][0] == "stopping"
    assert metric_value(metrics, "dropout_consumer_processor_ready", shard_id=SHARD) == 0


def test_lease_lost_at_checkpoint_stops_checkpointing(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    h = Harness(metrics, fake_served, checkpoint_errors=["ShutdownException"])
    h.batch([GOOD], first_sequence=1)
    h.batch([GOOD], first_sequence=2)
    shutdown_requested_input().dispatch(h.checkpointer, h.processor)
    assert h.checkpointer.calls == [("1", 0)]
    assert metric_value(metrics, "dropout_consumer_checkpoints_total", outcome="shutdown") == 1


def test_shard_end_checkpoints_with_no_arguments(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    h = Harness(metrics, fake_served)
    h.batch([GOOD], first_sequence=5)
    shard_ended_input().dispatch(h.checkpointer, h.processor)
    assert h.checkpointer.calls == [("5", 0), (None, None)]
    assert h.status.states[-1][0] == "stopping"


@pytest.mark.parametrize(
    ("errors", "attempts"),
    [
        (["ThrottlingException"] * 3, 3),  # retried past its budget
        (["InvalidStateException"], 1),  # not retried
    ],
)
def test_a_shard_end_that_cannot_be_checkpointed_exits_non_zero(
    metrics: ConsumerMetrics,
    fake_served: ServedModel,
    log_lines: io.StringIO,
    errors: list[str | None],
    attempts: int,
) -> None:
    """The daemon never calls shard_ended again and the child shards wait for this checkpoint:
    a processor that simply returned would stall them until some restart. It must exit
    non-zero, so that the worker restarts and the shard end is retried."""
    h = Harness(metrics, fake_served, checkpoint_errors=[None, *errors])
    h.batch([GOOD], first_sequence=5)
    with pytest.raises(SystemExit) as exited:
        shard_ended_input().dispatch(h.checkpointer, h.processor)
    assert exited.value.code == ExitCode.SHARD_END_NOT_CHECKPOINTED
    assert h.checkpointer.calls == [("5", 0)] + [(None, None)] * attempts
    events = [json.loads(line)["event"] for line in log_lines.getvalue().splitlines()]
    assert "shard_end_not_checkpointed_exiting" in events
    assert "shard_ended" not in events


def test_shutdown_requested_checkpoints_the_last_published_position(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    # The batch's own checkpoint is throttled past its budget (3 attempts).
    h = Harness(metrics, fake_served, checkpoint_errors=["ThrottlingException"] * 3)
    h.batch([GOOD, GOOD], first_sequence=20)
    shutdown_requested_input().dispatch(h.checkpointer, h.processor)
    assert h.checkpointer.calls[-1] == ("21", 1)
    assert h.events[-1] == ("checkpoint", ("21", 1))
    # Nothing new is processed once shutdown was requested ...
    h.batch([GOOD], first_sequence=22)
    assert len(h.outputs(PREDICTIONS)) == 2
    # ... and a shard end after a skipped batch is not checkpointed: the process exits, so
    # the worker restarts and the skipped batch (then the shard end) is handled again.
    with pytest.raises(SystemExit) as exited:
        shard_ended_input().dispatch(h.checkpointer, h.processor)
    assert exited.value.code == ExitCode.SHARD_END_NOT_CHECKPOINTED
    assert h.checkpointer.calls[-1] == ("21", 1)


def test_shutdown_requested_before_any_batch_does_not_checkpoint(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    h = Harness(metrics, fake_served)
    shutdown_requested_input().dispatch(h.checkpointer, h.processor)
    assert h.checkpointer.calls == []


def test_checkpoint_throttling_is_retried_within_a_batch(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    h = Harness(metrics, fake_served, checkpoint_errors=["ThrottlingException", None])
    h.batch([GOOD], first_sequence=3)
    assert h.checkpointer.calls == [("3", 0), ("3", 0)]
    assert metric_value(metrics, "dropout_consumer_checkpoints_total", outcome="throttled") == 1
    assert metric_value(metrics, "dropout_consumer_checkpoints_total", outcome="success") == 1


def test_model_swap_happens_between_batches_only(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    v2 = replace(fake_served, version="2")
    holder_ref: list[ModelHolder] = []

    def offer_v2_mid_batch(stream: str, entries: list[dict[str, Any]]) -> None:
        if holder_ref and holder_ref[0].known_version == "1":
            holder_ref[0].offer(v2)  # the poller finishing a load while the batch publishes

    h = Harness(metrics, fake_served, kinesis=FakeKinesis(on_call=offer_v2_mid_batch))
    holder_ref.append(h.holder)
    h.batch([GOOD, b"{", GOOD], first_sequence=1)
    first = h.outputs(PREDICTIONS) + h.outputs(DEAD_LETTERS)
    assert {o["model"]["version"] for o in first} == {"1"}
    h.batch([GOOD, b"{", GOOD], first_sequence=4)
    everything = h.outputs(PREDICTIONS) + h.outputs(DEAD_LETTERS)
    second = [o for o in everything if int(o["source"]["sequence_number"]) >= 4]
    assert len(second) == 3
    assert {o["model"]["version"] for o in second} == {"2"}
    info = "dropout_consumer_model_info"
    assert metric_value(metrics, info, model_name="student-dropout", model_version="1") == 0
    assert metric_value(metrics, info, model_name="student-dropout", model_version="2") == 1
    assert (
        metric_value(
            metrics, "dropout_consumer_predictions_total", decision="at_risk", model_version="2"
        )
        == 2
    )
    assert h.status.states[-1] == ("ready", "2")


def test_without_a_model_the_processor_waits_and_reports_not_ready(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    h = Harness(metrics, model=None)
    worker = threading.Thread(target=h.batch, args=([GOOD, b"{"],))
    worker.start()
    deadline = time.monotonic() + 5
    while ("waiting_for_model", None) not in h.status.states and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ("waiting_for_model", None) in h.status.states
    time.sleep(0.2)
    assert worker.is_alive()
    assert h.kinesis.calls == []  # nothing scored, nothing dead-lettered
    assert h.checkpointer.calls == []
    assert metric_value(metrics, "dropout_consumer_processor_ready", shard_id=SHARD) == 0
    h.holder.offer(fake_served)
    worker.join(5)
    assert not worker.is_alive()
    assert len(h.outputs(PREDICTIONS)) == 1
    assert len(h.outputs(DEAD_LETTERS)) == 1
    assert h.status.states[-1] == ("ready", "1")
    assert metric_value(metrics, "dropout_consumer_processor_ready", shard_id=SHARD) == 1


def test_drift_gauges_follow_the_scored_records(
    metrics: ConsumerMetrics, served_model: ServedModel, data_path: Path
) -> None:
    h = Harness(metrics, served_model, drift_update_every=100)
    h.batch(dataset_records(data_path, 120))
    psi = metric_value(metrics, "dropout_consumer_feature_psi", attribute="Course")
    assert 0.0 <= psi < 0.5
    assert metric_value(metrics, "dropout_consumer_attribute_missing_ratio", attribute="GDP") == 0
    assert h.models.drift is not None
    assert h.models.drift.records == 120


def test_empty_batches_only_update_lag(metrics: ConsumerMetrics, fake_served: ServedModel) -> None:
    h = Harness(metrics, fake_served)
    process_records_input([], millis_behind_latest=4000).dispatch(h.checkpointer, h.processor)
    assert h.checkpointer.calls == []
    assert metric_value(metrics, "dropout_consumer_behind_latest_seconds", shard_id=SHARD) == 4


def test_kcl_records_become_input_records() -> None:
    record = to_input_record(kcl_record(b"abc", "4959", sub_sequence=3, arrival_ms=17), SHARD)
    assert record.data == b"abc"
    assert record.position.sequence_number == "4959"
    assert record.position.sub_sequence_number == 3
    assert record.position.arrival_timestamp_ms == 17
    plain = to_input_record(kcl_record(b"abc", "1"), SHARD)
    assert plain.position.sub_sequence_number == 0


def test_each_batch_logs_its_context_as_json(
    metrics: ConsumerMetrics, fake_served: ServedModel, log_lines: io.StringIO
) -> None:
    h = Harness(metrics, fake_served)
    h.batch([GOOD, b"{"], first_sequence=40)
    events = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    [batch] = [e for e in events if e["event"] == "batch_processed"]
    assert batch["shard_id"] == SHARD
    assert batch["logger"] == "consumer.batch_handler"
    assert batch["first_sequence"] == "40"
    assert batch["last_sequence"] == "41"
    assert batch["batch_size"] == 2
    assert batch["model_version"] == "1"
    assert batch["reasons"] == {"invalid_json": 1}
    assert batch["level"] == "info"
    assert "timestamp" in batch


def test_an_idle_processor_swaps_as_soon_as_a_model_is_offered(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    h = Harness(metrics, model=None)
    assert metric_value(metrics, "dropout_consumer_processor_ready", shard_id=SHARD) == 0
    h.holder.offer(fake_served)  # what the poller thread does once a load succeeds
    assert h.holder.current is fake_served
    assert h.status.states[-1] == ("ready", "1")
    assert metric_value(metrics, "dropout_consumer_processor_ready", shard_id=SHARD) == 1
    info = "dropout_consumer_model_info"
    assert metric_value(metrics, info, model_name="student-dropout", model_version="1") == 1
    h.holder.offer(replace(fake_served, version="2"))
    assert metric_value(metrics, info, model_name="student-dropout", model_version="2") == 1
    h.batch([GOOD])
    assert {p["model"]["version"] for p in h.outputs(PREDICTIONS)} == {"2"}


def test_no_swap_after_the_processor_stopped(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    h = Harness(metrics, fake_served)
    h.batch([GOOD])
    lease_lost_input().dispatch(None, h.processor)
    h.holder.offer(replace(fake_served, version="2"))
    assert h.holder.current is not None
    assert h.holder.current.version == "1"
    assert h.status.states[-1][0] == "stopping"
