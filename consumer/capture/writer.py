"""Capture: every batch's outcomes, written durably to object storage before its checkpoint.

One gzip JSON-lines object per batch per shard (common/capture_format.py): per input record the
validated attributes it sent, the prediction (probability, decision, band, top factors, stage)
or the dead letter's reason, the model name and version, the source position, the arrival time
and the schema ids. The raw payload of a dead letter is not kept here (the dead-letter stream
has it, for a day); what is kept is personal data under the retention the bucket sets
(docs/learning-loop.md).

A failed write is treated like a failed publish: retried with backoff (CAPTURE_MAX_ATTEMPTS,
CAPTURE_BACKOFF_*), counted, and never checkpointed past: when the budget runs out the caller
ends the process (exit 15) and the batch is read again after a restart.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from common.capture_format import capture_key, encode_capture_object
from common.object_store import S3Store, Store, StoreError, open_store
from common.wire import CAPTURE_SCHEMA, DEAD_LETTER_SCHEMA, INPUT_SCHEMA, PREDICTION_SCHEMA
from consumer.backoff import Retry
from consumer.capture.errors import CaptureAbandonedError, CaptureError
from consumer.config import ConsumerSettings
from consumer.observe.metrics import ConsumerMetrics
from consumer.records import OutputKind, OutputRecord
from consumer.scoring.batch import BatchResult

log = structlog.get_logger("consumer.capture.writer")


def capture_lines(result: BatchResult) -> list[dict[str, Any]]:
    """One capture line per output of the batch, in input order."""
    model = {"name": result.model_name, "version": result.model_version}
    return [_line(output, result, model, result.attribute_names) for output in result.outputs]


def _line(
    output: OutputRecord,
    result: BatchResult,
    model: dict[str, str],
    names: Sequence[str],
) -> dict[str, Any]:
    position = output.position
    prediction = output.kind is OutputKind.PREDICTION
    attributes = None
    if output.row is not None:
        # Present attributes only (NaN, the row's "missing", is left out).
        attributes = {
            name: value
            for name, value in zip(names, output.row, strict=True)
            if not (isinstance(value, float) and math.isnan(value))
        }
    return {
        "schema": CAPTURE_SCHEMA,
        "outcome": "prediction" if prediction else "dead_letter",
        "student_id": output.student_id,
        "attributes": attributes,
        "prediction": {
            "dropout_probability": output.probability,
            "at_risk": output.at_risk,
            "threshold": result.threshold,
            "risk_band": output.risk_band,
            "top_factors": output.top_factors,
            "stage": output.stage,
        }
        if prediction
        else None,
        "dead_letter": None
        if prediction
        else {"reason": output.reason.value if output.reason else None, "detail": output.detail},
        "model": model,
        "source": {
            "shard_id": position.shard_id,
            "sequence_number": position.sequence_number,
            "sub_sequence_number": position.sub_sequence_number or 0,
        },
        "arrival_timestamp_ms": position.arrival_timestamp_ms,
        "scored_at": result.scored_at,
        "schemas": {
            "input": INPUT_SCHEMA,
            "output": PREDICTION_SCHEMA if prediction else DEAD_LETTER_SCHEMA,
        },
    }


@dataclass(eq=False)
class CaptureWriter:
    """Writes one object per batch; raises CaptureError when the store keeps refusing."""

    store: Store
    retry: Retry
    metrics: ConsumerMetrics | None = None
    _: KW_ONLY
    keep_trying: Callable[[], bool] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: ConsumerSettings,
        metrics: ConsumerMetrics | None = None,
        *,
        keep_trying: Callable[[], bool] | None = None,
    ) -> CaptureWriter:
        store = open_store(settings.loop_uri, endpoint_url=settings.loop_s3_endpoint_url)
        if isinstance(store, S3Store):
            # One attempt per call: this writer retries, counts and gives up on its own terms.
            store = S3Store(
                store.bucket,
                store.prefix,
                endpoint_url=settings.loop_s3_endpoint_url,
                max_attempts=1,
            )
        retry = Retry.of(
            settings.capture_max_attempts,
            settings.capture_backoff_initial_seconds,
            settings.capture_backoff_max_seconds,
        )
        return cls(store, retry, metrics, keep_trying=keep_trying)

    def capture(self, result: BatchResult) -> str:
        """Writes the batch's object; returns its key."""
        started = time.perf_counter()
        first, last = result.first, result.last
        day = datetime.fromtimestamp(
            (first.arrival_timestamp_ms or time.time() * 1000) / 1000, tz=UTC
        ).date()
        key = capture_key(
            result.model_name,
            day,
            first.shard_id,
            (first.sequence_number, first.sub_sequence_number or 0),
            (last.sequence_number, last.sub_sequence_number or 0),
        )
        data = encode_capture_object(capture_lines(result))
        attempt = 0
        while True:
            attempt += 1
            try:
                self.store.put(key, data)
                break
            except StoreError as exc:
                error = exc.detail.split(":", 1)[0][:60] or type(exc).__name__
                if self.metrics is not None:
                    self.metrics.capture_retries.labels(error=error).inc()
                if self.retry.exhausted(attempt):
                    raise CaptureError(
                        f"capture of {key} failed after {attempt} attempt(s): {exc}"
                    ) from exc
                delay = self.retry.delay(attempt)
                log.warning(
                    "capture_retry",
                    key=key,
                    attempt=attempt,
                    error=str(exc)[:300],
                    delay_seconds=round(delay, 3),
                )
                self.retry.sleep(delay)
                if self.keep_trying is not None and not self.keep_trying():
                    raise CaptureAbandonedError(f"capture of {key} abandoned: {exc}") from exc
        if self.metrics is not None:
            counts = result.counts
            self.metrics.captured_records.labels(kind="prediction").inc(counts.predictions)
            self.metrics.captured_records.labels(kind="dead_letter").inc(counts.dead_letters)
            self.metrics.capture_duration.observe(time.perf_counter() - started)
        return key
