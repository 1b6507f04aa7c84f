"""One batch of one shard, in named steps: prepare -> score -> publish -> capture -> checkpoint
-> account (in the spirit of AWS Powertools' batch processor, but a batch is all or nothing).

A checkpoint comes only after every output of the batch was accepted by PutRecords and captured.
When that cannot happen, the processor ends its process at once with an exit code that says why
(common/exit_codes.py), without checkpointing: the daemon exits too, the orchestrator restarts
the worker, and the shard resumes from its last checkpoint (an exception would be swallowed by
amazon_kclpy and the daemon would move on past the batch). What follows the checkpoint
(metrics, drift, the log line) is bookkeeping: its failure is logged, never fatal, so it can
never make a restart publish a checkpointed batch again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn, Protocol

import structlog

from common.exit_codes import ExitCode
from consumer.capture.errors import CaptureAbandonedError, CaptureError
from consumer.checkpoint.checkpointer import CheckpointOutcome, KclCheckpointer, ShardCheckpointer
from consumer.intake.kcl_records import KclRecord, to_input_record
from consumer.model.handoff import ModelHandOff
from consumer.observe.fairness import GroupRates
from consumer.observe.metrics import ConsumerMetrics
from consumer.output.publisher import (
    LeaseLostError,
    OutputRefusedError,
    PublishAbandonedError,
    Publisher,
    PublishError,
)
from consumer.records import InputRecord, OutputKind
from consumer.scoring.batch import BatchResult, run_batch

log = structlog.get_logger("consumer.batch_handler")


class CaptureStep(Protocol):
    """Keeps a batch's outcomes durably (consumer/capture); raises CaptureError when it cannot."""

    def capture(self, result: BatchResult) -> str: ...


@dataclass(kw_only=True, eq=False)
class BatchHandler:
    models: ModelHandOff
    publisher: Publisher
    checkpointer: ShardCheckpointer
    metrics: ConsumerMetrics
    daemon_alive: Callable[[], bool]
    exit_process: Callable[[int], NoReturn]
    capture: CaptureStep | None = None
    clock: Callable[[], float] = time.time
    shard_id: str = field(default="unknown", init=False)
    # The last position whose outputs (and all before it) were accepted and captured.
    published: tuple[str, int | None] | None = field(default=None, init=False)

    def handle(
        self,
        records: Sequence[KclRecord],
        checkpointer: KclCheckpointer,
        millis_behind_latest: int | None,
    ) -> CheckpointOutcome | None:
        """Runs the steps; returns the checkpoint's outcome (None for an empty batch)."""
        if millis_behind_latest is not None:
            self.metrics.behind_latest.labels(shard_id=self.shard_id).set(
                millis_behind_latest / 1000.0
            )
        if not records:
            return None
        inputs = self.prepare(records)
        model = self.models.await_model()
        started = time.perf_counter()  # the batch's own time, not the wait for a first model
        result = run_batch(model, inputs, clock=self.clock)
        self.publish(result)
        self.capture_outcomes(result)
        last = result.last
        self.published = (last.sequence_number, last.sub_sequence_number)
        outcome = self.checkpoint(checkpointer, result)
        self.account(result, outcome, started)
        return outcome

    # --- the steps -----------------------------------------------------------------------

    def prepare(self, records: Sequence[KclRecord]) -> list[InputRecord]:
        inputs = [to_input_record(record, self.shard_id) for record in records]
        self.metrics.records_received.labels(shard_id=self.shard_id).inc(len(inputs))
        self.metrics.batch_size.observe(len(inputs))
        return inputs

    def publish(self, result: BatchResult) -> None:
        where = {
            "first_sequence": result.first.sequence_number,
            "last_sequence": result.last.sequence_number,
            "batch_size": len(result.outputs),
            "model_version": result.model_version,
        }
        if not self.daemon_alive():
            # The worker is gone (the model may have arrived just as it went): the shard's
            # next owner publishes this batch, so we must not.
            log.error("daemon_gone_exiting_without_checkpoint", **where)
            self.exit_process(ExitCode.DAEMON_GONE)
        try:
            self.publisher.publish(result.outputs)
        except PublishAbandonedError as exc:
            log.error("daemon_gone_exiting_without_checkpoint", error=str(exc), **where)
            self.exit_process(ExitCode.DAEMON_GONE)
        except LeaseLostError as exc:
            log.error("lease_lost_exiting_without_checkpoint", error=str(exc), **where)
            self.exit_process(ExitCode.LEASE_LOST_WHILE_PUBLISHING)
        except OutputRefusedError as exc:
            log.error(
                "output_refused_exiting_without_checkpoint",
                stream=exc.stream,
                error=str(exc),
                **where,
            )
            self.exit_process(ExitCode.OUTPUT_REFUSED)
        except PublishError as exc:
            log.error("publish_failed_exiting_without_checkpoint", error=str(exc), **where)
            self.exit_process(ExitCode.PUBLISH_FAILED)

    def capture_outcomes(self, result: BatchResult) -> None:
        if self.capture is None:
            return
        try:
            self.capture.capture(result)
        except CaptureAbandonedError as exc:
            log.error("daemon_gone_exiting_without_checkpoint", error=str(exc))
            self.exit_process(ExitCode.DAEMON_GONE)
        except CaptureError as exc:
            log.error(
                "capture_failed_exiting_without_checkpoint",
                error=str(exc),
                first_sequence=result.first.sequence_number,
                last_sequence=result.last.sequence_number,
            )
            self.exit_process(ExitCode.CAPTURE_FAILED)

    def checkpoint(self, checkpointer: KclCheckpointer, result: BatchResult) -> CheckpointOutcome:
        last = result.last
        outcome = self.checkpointer.checkpoint(
            checkpointer, last.sequence_number, last.sub_sequence_number
        )
        if outcome not in (CheckpointOutcome.SUCCESS, CheckpointOutcome.SHUTDOWN):
            # Published, so nothing is lost: the next batch's checkpoint covers this one.
            log.error(
                "checkpoint_failed", checkpoint=outcome.value, last_sequence=last.sequence_number
            )
        return outcome

    def account(self, result: BatchResult, outcome: CheckpointOutcome, started: float) -> None:
        try:
            self._count(result)
            if self.models.drift is not None:
                self.models.drift.add(result.scored_rows)
            groups = self.models.groups
            if groups is not None and groups.version == result.model_version:
                self._count_groups(groups, result)
        except Exception:
            log.exception(
                "batch_bookkeeping_failed",
                first_sequence=result.first.sequence_number,
                last_sequence=result.last.sequence_number,
            )
        self.metrics.batch_duration.observe(time.perf_counter() - started)
        counts = result.counts
        log.info(
            "batch_processed",
            first_sequence=result.first.sequence_number,
            last_sequence=result.last.sequence_number,
            batch_size=len(result.outputs),
            model_version=result.model_version,
            predictions=counts.predictions,
            dead_letters=counts.dead_letters,
            reasons=counts.reasons or None,
            scored_alone=result.scored_alone or None,
            checkpoint=outcome.value,
            validate_ms=round(result.validation_seconds * 1000, 2),
            score_ms=round(result.scoring_seconds * 1000, 2),
            encode_ms=round(result.encoding_seconds * 1000, 2),
        )

    @staticmethod
    def _count_groups(groups: GroupRates, result: BatchResult) -> None:
        # Predictions and scored rows are in the same order (consumer/scoring/batch.py).
        predictions = [o for o in result.outputs if o.kind is OutputKind.PREDICTION]
        groups.add(
            result.scored_rows,
            [bool(o.at_risk) for o in predictions],
            [o.stage for o in predictions],
        )

    def _count(self, result: BatchResult) -> None:
        metrics = self.metrics
        metrics.scoring_duration.observe(result.scoring_seconds)
        counts = result.counts
        now_ms = self.clock() * 1000.0
        for output in result.outputs:
            arrival = output.position.arrival_timestamp_ms
            if arrival is not None:
                metrics.record_age.observe(max(0.0, (now_ms - arrival) / 1000.0))
            if output.kind is OutputKind.PREDICTION and output.probability is not None:
                metrics.probability.observe(output.probability)
        for decision, count in (("at_risk", counts.at_risk), ("not_at_risk", counts.not_at_risk)):
            if count:
                metrics.predictions.labels(
                    decision=decision, model_version=result.model_version
                ).inc(count)
        for reason, count in counts.reasons.items():
            metrics.dead_letters.labels(reason=reason).inc(count)
        if counts.ignored_attributes:
            metrics.ignored_attributes.inc(counts.ignored_attributes)
