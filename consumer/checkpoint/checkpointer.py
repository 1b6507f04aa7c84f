"""Checkpoints through the KCL, with the KCL's failure modes handled.

The MultiLangDaemon answers a checkpoint with the simple name of the Java exception it met:

- `ThrottlingException` (and `KinesisClientLibDependencyException`, DynamoDB trouble): retried
  with backoff (CHECKPOINT_BACKOFF_*), at most CHECKPOINT_MAX_ATTEMPTS times. If it still
  fails, the published records are simply checkpointed by a later batch (or re-read after a
  restart: duplicates, never loss).
- `ShutdownException`: the lease is gone. This processor never checkpoints again.
- `InvalidStateException`: logged and counted; not retried.
Outcomes are counted in `checkpoints{outcome}`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

import structlog
from amazon_kclpy.checkpoint_error import CheckpointError

from consumer.backoff import Retry
from consumer.config import ConsumerSettings
from consumer.observe.metrics import ConsumerMetrics

log = structlog.get_logger("consumer.checkpoint.checkpointer")

_RETRYABLE = frozenset({"ThrottlingException", "KinesisClientLibDependencyException"})


class CheckpointOutcome(StrEnum):
    SUCCESS = "success"
    THROTTLED = "throttled"
    SHUTDOWN = "shutdown"
    INVALID_STATE = "invalid_state"
    ERROR = "error"


def _outcome_of(error: str) -> CheckpointOutcome:
    if error == "ThrottlingException":
        return CheckpointOutcome.THROTTLED
    if error == "ShutdownException":
        return CheckpointOutcome.SHUTDOWN
    if error == "InvalidStateException":
        return CheckpointOutcome.INVALID_STATE
    return CheckpointOutcome.ERROR


class KclCheckpointer(Protocol):
    """What amazon_kclpy hands a processor to checkpoint with (`kcl.Checkpointer`)."""

    def checkpoint(
        self, sequence_number: str | None = None, sub_sequence_number: int | None = None
    ) -> None: ...


class ShardCheckpointer:
    """Checkpoints one shard; remembers a lost lease and refuses to checkpoint after it."""

    def __init__(
        self,
        retry: Retry,
        metrics: ConsumerMetrics | None = None,
    ) -> None:
        self._retry = retry
        self._metrics = metrics
        self.lease_lost = False
        self.last_checkpoint: tuple[str | None, int | None] | None = None

    @classmethod
    def from_settings(
        cls, settings: ConsumerSettings, metrics: ConsumerMetrics | None = None
    ) -> ShardCheckpointer:
        retry = Retry.of(
            settings.checkpoint_max_attempts,
            settings.checkpoint_backoff_initial_seconds,
            settings.checkpoint_backoff_max_seconds,
        )
        return cls(retry, metrics)

    def checkpoint(
        self,
        checkpointer: KclCheckpointer,
        sequence_number: str | None = None,
        sub_sequence_number: int | None = None,
    ) -> CheckpointOutcome:
        """Checkpoints at the given position (or, with none, at the end of what was delivered)."""
        if self.lease_lost:
            log.warning("checkpoint_skipped_lease_lost", sequence_number=sequence_number)
            return CheckpointOutcome.SHUTDOWN
        attempt = 0
        while True:
            attempt += 1
            try:
                checkpointer.checkpoint(sequence_number, sub_sequence_number)
            except CheckpointError as exc:
                error = str(exc.value)
                outcome = _outcome_of(error)
            else:
                self._count(CheckpointOutcome.SUCCESS)
                self.last_checkpoint = (sequence_number, sub_sequence_number)
                return CheckpointOutcome.SUCCESS
            self._count(outcome)
            if outcome is CheckpointOutcome.SHUTDOWN:
                self.lease_lost = True
                log.warning("checkpoint_lease_lost", sequence_number=sequence_number)
                return outcome
            if error not in _RETRYABLE or self._retry.exhausted(attempt):
                log.error(
                    "checkpoint_failed",
                    error=error,
                    attempts=attempt,
                    sequence_number=sequence_number,
                    sub_sequence_number=sub_sequence_number,
                )
                return outcome
            delay = self._retry.delay(attempt)
            log.warning("checkpoint_retry", error=error, attempt=attempt, delay_seconds=delay)
            self._retry.sleep(delay)

    def _count(self, outcome: CheckpointOutcome) -> None:
        if self._metrics is not None:
            self._metrics.checkpoints.labels(outcome=outcome.value).inc()
