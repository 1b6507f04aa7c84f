"""Publish a batch's outputs with PutRecords, retrying until every one is accepted.

Predictions go to the predictions stream and dead letters to the dead-letter stream, in calls of
at most 500 entries and 5 MiB, and at most one entry per student (partition key) per call, so
that retries keep each student's records in order. Entries PutRecords rejects
(ProvisionedThroughputExceeded, InternalFailure, KMS throttling, ...) and calls that fail as a
whole (throttling, 5xx, connection errors) are retried with exponential backoff and full
jitter, each retry counted in
`publish_retries{stream,error_code}`. When a chunk still has unaccepted entries after
PUBLISH_MAX_ATTEMPTS calls, `publish` raises `PublishError`: the caller must not checkpoint.
Before each retry it asks `keep_trying()` (the processor: is the KCL daemon still there?) and
raises `PublishAbandonedError` when the answer is no: a processor whose worker has gone must not
publish a batch the shard's next owner publishes again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import boto3
import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from consumer.batch import OutputKind, OutputRecord
from consumer.config import ConsumerSettings
from consumer.metrics import ConsumerMetrics

MAX_ENTRIES_PER_CALL: Final = 500
MAX_BYTES_PER_CALL: Final = 5 * 1024 * 1024
# `publish_retries{error_code=...}` of a chunk given up on (the processor then exits).
BUDGET_EXHAUSTED: Final = "retry_budget_exhausted"

log = structlog.get_logger("consumer.publisher")

# boto3's Kinesis client, or any object with the same put_records.
KinesisClientLike = Any


class PublishError(RuntimeError):
    """Some outputs were still not accepted when the retry budget ran out."""

    def __init__(self, stream: str, unpublished: int, attempts: int, last_error: str) -> None:
        super().__init__(
            f"{unpublished} record(s) not accepted by {stream} after {attempts} attempt(s); "
            f"last error: {last_error}"
        )
        self.stream = stream
        self.unpublished = unpublished
        self.attempts = attempts
        self.last_error = last_error


class PublishAbandonedError(PublishError):
    """Retries stopped early because `keep_trying()` said no (the daemon is gone)."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**(attempt - 1)))."""

    initial_seconds: float
    max_seconds: float

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.max_seconds, self.initial_seconds * (2 ** min(attempt - 1, 30)))
        return rng.uniform(0.0, ceiling)


def make_kinesis_client(settings: ConsumerSettings) -> Any:
    """A boto3 Kinesis client whose own retries are off: the publisher retries and counts.

    It talks to OUTPUT_KINESIS_ENDPOINT_URL when set, else to KINESIS_ENDPOINT_URL."""
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=4,
    )
    return boto3.client(
        "kinesis",
        region_name=settings.aws_region,
        endpoint_url=settings.publish_endpoint_url,
        config=config,
    )


def _chunks(records: Sequence[OutputRecord]) -> Iterator[list[OutputRecord]]:
    chunk: list[OutputRecord] = []
    size = 0
    for record in records:
        entry_size = len(record.data) + len(record.partition_key.encode("utf-8"))
        if chunk and (len(chunk) >= MAX_ENTRIES_PER_CALL or size + entry_size > MAX_BYTES_PER_CALL):
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += entry_size
    if chunk:
        yield chunk


def _rounds(records: list[OutputRecord]) -> Iterator[list[OutputRecord]]:
    """Splits records so that each round holds at most one record per partition key, in order.

    Retrying only the refused entries of a call would put a student's retried record after a
    later one of the same student that was accepted; with one record per key per round, and
    each round accepted in full before the next, the order per student holds.
    """
    remaining = records
    while remaining:
        seen: set[str] = set()
        now: list[OutputRecord] = []
        later: list[OutputRecord] = []
        for record in remaining:
            if record.partition_key in seen:
                later.append(record)
            else:
                seen.add(record.partition_key)
                now.append(record)
        yield now
        remaining = later


class Publisher:
    """Publishes outputs to their streams; returns only when every output is accepted."""

    def __init__(
        self,
        client: KinesisClientLike,
        *,
        predictions_stream: str,
        dead_letter_stream: str,
        max_attempts: int,
        backoff: Backoff,
        metrics: ConsumerMetrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        keep_trying: Callable[[], bool] | None = None,
    ) -> None:
        self._client = client
        self._streams = {
            OutputKind.PREDICTION: predictions_stream,
            OutputKind.DEAD_LETTER: dead_letter_stream,
        }
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._metrics = metrics
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not security)
        self._keep_trying = keep_trying

    @classmethod
    def from_settings(
        cls,
        settings: ConsumerSettings,
        metrics: ConsumerMetrics | None = None,
        client: KinesisClientLike | None = None,
        keep_trying: Callable[[], bool] | None = None,
    ) -> Publisher:
        return cls(
            client if client is not None else make_kinesis_client(settings),
            predictions_stream=settings.predictions_stream,
            dead_letter_stream=settings.dead_letter_stream,
            max_attempts=settings.publish_max_attempts,
            backoff=Backoff(
                settings.publish_backoff_initial_seconds, settings.publish_backoff_max_seconds
            ),
            metrics=metrics,
            keep_trying=keep_trying,
        )

    def publish(self, outputs: Sequence[OutputRecord]) -> None:
        """Publishes all outputs; raises PublishError if the retry budget runs out."""
        for kind in (OutputKind.PREDICTION, OutputKind.DEAD_LETTER):
            records = [o for o in outputs if o.kind is kind]
            for round_ in _rounds(records):
                for chunk in _chunks(round_):
                    self._put_chunk(kind, chunk)

    def _put_chunk(self, kind: OutputKind, chunk: list[OutputRecord]) -> None:
        stream = self._streams[kind]
        pending = chunk
        attempt = 0
        while True:
            attempt += 1
            failed, errors = self._call(stream, pending)
            accepted = len(pending) - len(failed)
            if accepted and self._metrics is not None:
                self._metrics.published_records.labels(stream=kind.value).inc(accepted)
            if not failed:
                return
            last_error = ", ".join(f"{code} x{count}" for code, count in errors.items())
            if attempt >= self._max_attempts:
                if self._metrics is not None:
                    self._metrics.publish_retries.labels(
                        stream=kind.value, error_code=BUDGET_EXHAUSTED
                    ).inc()
                raise PublishError(stream, len(failed), attempt, last_error)
            if self._metrics is not None:
                for code, count in errors.items():
                    self._metrics.publish_retries.labels(stream=kind.value, error_code=code).inc(
                        count
                    )
            delay = self._backoff.delay(attempt, self._rng)
            log.warning(
                "publish_retry",
                stream=stream,
                attempt=attempt,
                failed=len(failed),
                errors=last_error,
                delay_seconds=round(delay, 3),
            )
            self._sleep(delay)
            if self._keep_trying is not None and not self._keep_trying():
                raise PublishAbandonedError(
                    stream, len(failed), attempt, f"{last_error}; gave up early"
                )
            pending = failed

    def _call(
        self, stream: str, pending: list[OutputRecord]
    ) -> tuple[list[OutputRecord], dict[str, int]]:
        """One PutRecords call: (entries to retry, error code -> count)."""
        entries = [{"Data": o.data, "PartitionKey": o.partition_key} for o in pending]
        try:
            response = self._client.put_records(StreamName=stream, Records=entries)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code") or "ClientError")
            return pending, {code: 1}
        except BotoCoreError as exc:
            # Connection refused/reset, timeouts: the call as a whole is retried.
            return pending, {type(exc).__name__: 1}
        results = response.get("Records") or []
        if len(results) != len(pending):
            return pending, {"MalformedResponse": 1}
        failed: list[OutputRecord] = []
        errors: dict[str, int] = {}
        for output, result in zip(pending, results, strict=True):
            code = result.get("ErrorCode")
            if code:
                failed.append(output)
                errors[code] = errors.get(code, 0) + 1
        return failed, errors
