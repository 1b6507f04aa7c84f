"""Publish a batch's outputs with PutRecords, retrying until every one is accepted.

Predictions go to the predictions stream and dead letters to the dead-letter stream, in calls of
at most 500 entries and 5 MiB, and at most one entry per student (partition key) per call, so
that retries keep each student's records in order. What a refused entry or a failed call means
is decided by its error code (consumer/output/errors.py):

- throttled: retried with capped, jittered backoff for as long as `keep_trying()` (the KCL
  daemon is alive) and `lease_held()` (the shard's lease is still this worker's, checked once
  per THROTTLE_REPORT_INTERVAL_SECONDS); a `publish_throttled` line and the
  `publish_throttled_seconds` counter say how long;
- permanent: `OutputRefusedError` at once;
- transient: retried until PUBLISH_MAX_ATTEMPTS calls have failed so, then `PublishError`.

Every retry is counted in `publish_retries{stream,error_code}`. Whatever `publish` raises, the
caller must not checkpoint: the batch is not all out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any, Final

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from consumer.backoff import Retry
from consumer.config import ConsumerSettings
from consumer.observe.metrics import ConsumerMetrics
from consumer.output.errors import ErrorClass, classify
from consumer.records import OutputKind, OutputRecord

if TYPE_CHECKING:  # boto3-stubs is a development dependency only
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kinesis.type_defs import PutRecordsRequestEntryTypeDef

MAX_ENTRIES_PER_CALL: Final = 500
MAX_BYTES_PER_CALL: Final = 5 * 1024 * 1024
# `publish_retries{error_code=...}` of a chunk given up on (the processor then exits).
BUDGET_EXHAUSTED: Final = "retry_budget_exhausted"

log = structlog.get_logger("consumer.output.publisher")


class PublishError(RuntimeError):
    """Some outputs were still not accepted when the transient-error budget ran out."""

    def __init__(self, stream: str, unpublished: int, attempts: int, last_error: str) -> None:
        super().__init__(
            f"{unpublished} record(s) not accepted by {stream} after {attempts} attempt(s); "
            f"last error: {last_error}"
        )
        self.stream = stream
        self.unpublished = unpublished
        self.attempts = attempts
        self.last_error = last_error


class OutputRefusedError(PublishError):
    """The stream refuses for good (no permission, no such stream, a disabled KMS key, ...)."""


class PublishAbandonedError(PublishError):
    """Retries stopped because `keep_trying()` said no (the daemon is gone)."""


class LeaseLostError(PublishError):
    """Retries of a throttled batch stopped because another worker holds the shard now."""


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


class _Throttle:
    """How long a chunk has been throttled, and when to report (and check the lease) next."""

    def __init__(self, clock: Callable[[], float], report_every: float) -> None:
        self._clock = clock
        self._report_every = report_every
        self.since: float | None = None
        self._next_report = 0.0

    def start(self) -> None:
        if self.since is None:
            self.since = self._clock()
            self._next_report = self.since + self._report_every

    def seconds(self) -> float:
        return 0.0 if self.since is None else self._clock() - self.since

    def report_due(self) -> bool:
        if self.since is None or self._clock() < self._next_report:
            return False
        self._next_report = self._clock() + self._report_every
        return True


@dataclass(eq=False)
class Publisher:
    """Publishes outputs to their streams; returns only when every output is accepted."""

    client: KinesisClient | Any
    _: KW_ONLY
    predictions_stream: str
    dead_letter_stream: str
    retry: Retry
    metrics: ConsumerMetrics | None = None
    clock: Callable[[], float] = time.monotonic
    keep_trying: Callable[[], bool] | None = None
    lease_held: Callable[[], bool] | None = None
    report_interval_seconds: float = 60.0

    @classmethod
    def from_settings(
        cls,
        settings: ConsumerSettings,
        client: KinesisClient | Any,
        metrics: ConsumerMetrics | None = None,
        *,
        keep_trying: Callable[[], bool] | None = None,
        lease_held: Callable[[], bool] | None = None,
    ) -> Publisher:
        return cls(
            client,
            predictions_stream=settings.predictions_stream,
            dead_letter_stream=settings.dead_letter_stream,
            retry=Retry.of(
                settings.publish_max_attempts,
                settings.publish_backoff_initial_seconds,
                settings.publish_backoff_max_seconds,
            ),
            metrics=metrics,
            keep_trying=keep_trying,
            lease_held=lease_held,
            report_interval_seconds=settings.throttle_report_interval_seconds,
        )

    def publish(self, outputs: Sequence[OutputRecord]) -> None:
        """Publishes all outputs; raises a PublishError when it cannot (see the module)."""
        for kind in (OutputKind.PREDICTION, OutputKind.DEAD_LETTER):
            records = [o for o in outputs if o.kind is kind]
            for round_ in _rounds(records):
                for chunk in _chunks(round_):
                    self._put_chunk(kind, chunk)

    def _count_retries(self, kind: OutputKind, errors: dict[str, int]) -> None:
        if self.metrics is not None:
            for code, count in errors.items():
                self.metrics.publish_retries.labels(stream=kind.value, error_code=code).inc(count)

    def _put_chunk(self, kind: OutputKind, chunk: list[OutputRecord]) -> None:
        stream = (
            self.predictions_stream if kind is OutputKind.PREDICTION else self.dead_letter_stream
        )
        pending = chunk
        calls = transient_failures = 0
        throttle = _Throttle(self.clock, self.report_interval_seconds)
        while True:
            calls += 1
            failed, errors = self._call(stream, pending)
            accepted = len(pending) - len(failed)
            if accepted and self.metrics is not None:
                self.metrics.published_records.labels(stream=kind.value).inc(accepted)
            if not failed:
                if throttle.since is not None:
                    log.info(
                        "publish_throttle_ended",
                        stream=stream,
                        throttled_seconds=round(throttle.seconds(), 1),
                    )
                return
            last_error = ", ".join(f"{code} x{count}" for code, count in errors.items())
            classes = {classify(code) for code in errors}
            if ErrorClass.PERMANENT in classes:
                self._count_retries(kind, errors)
                log.error(
                    "output_refused",
                    stream=stream,
                    errors=last_error,
                    unpublished=len(failed),
                    hint="check the stream's name, the task role's kinesis:PutRecords and the "
                    "KMS key policy",
                )
                raise OutputRefusedError(stream, len(failed), calls, last_error)
            if ErrorClass.TRANSIENT in classes:
                transient_failures += 1
                if self.retry.exhausted(transient_failures):
                    if self.metrics is not None:
                        self.metrics.publish_retries.labels(
                            stream=kind.value, error_code=BUDGET_EXHAUSTED
                        ).inc()
                    raise PublishError(stream, len(failed), calls, last_error)
            self._count_retries(kind, errors)
            delay = self.retry.delay(calls)
            if classes == {ErrorClass.THROTTLED}:
                self._throttled(stream, kind, throttle, len(failed), calls, delay)
            else:
                log.warning(
                    "publish_retry",
                    stream=stream,
                    attempt=calls,
                    failed=len(failed),
                    errors=last_error,
                    delay_seconds=round(delay, 3),
                )
            self.retry.sleep(delay)
            if self.keep_trying is not None and not self.keep_trying():
                raise PublishAbandonedError(
                    stream, len(failed), calls, f"{last_error}; gave up early"
                )
            pending = failed

    def _throttled(
        self,
        stream: str,
        kind: OutputKind,
        throttle: _Throttle,
        failed: int,
        calls: int,
        delay: float,
    ) -> None:
        throttle.start()
        if self.metrics is not None:
            self.metrics.publish_throttled_seconds.labels(stream=kind.value).inc(delay)
        log.debug("publish_retry", stream=stream, attempt=calls, failed=failed, throttled=True)
        if throttle.report_due():
            held = self.lease_held() if self.lease_held is not None else True
            log.warning(
                "publish_throttled",
                stream=stream,
                throttled_seconds=round(throttle.seconds(), 1),
                calls=calls,
                pending=failed,
                lease_held=held,
            )
            if not held:
                raise LeaseLostError(
                    stream, failed, calls, "throttled, and the shard's lease is not ours any more"
                )

    def _call(
        self, stream: str, pending: list[OutputRecord]
    ) -> tuple[list[OutputRecord], dict[str, int]]:
        """One PutRecords call: (entries to retry, error code -> count)."""
        entries: list[PutRecordsRequestEntryTypeDef] = [
            {"Data": o.data, "PartitionKey": o.partition_key} for o in pending
        ]
        try:
            response = self.client.put_records(StreamName=stream, Records=entries)
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
