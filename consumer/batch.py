"""The one validate -> score -> encode path, shared by the stream processor and offline scoring.

`run_batch(model, records)` turns n input records into exactly n output records, in input order:
a prediction for every valid record the model scored, a dead letter (with its reason code) for
every other. Valid records are scored in one model call; if that call fails, each of them is
retried alone and only the ones that fail alone become `scoring_failed` dead letters. Nothing
here raises for a bad record, and nothing here does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import structlog

from consumer.encoding import (
    EncodingError,
    encode_dead_letter,
    encode_prediction,
    utc_timestamp,
)
from consumer.reasons import Reason
from consumer.scoring import Scores, ScoringError, ServedModel
from consumer.validation import Accepted, Rejected

log = structlog.get_logger("consumer.batch")


@dataclass(slots=True)
class SourcePosition:
    """Where an input record came from (shard and sequence), carried into its output."""

    shard_id: str
    sequence_number: str
    sub_sequence_number: int | None = 0
    arrival_timestamp_ms: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "shard_id": self.shard_id,
            "sequence_number": self.sequence_number,
            "sub_sequence_number": self.sub_sequence_number,
            "arrival_timestamp_ms": self.arrival_timestamp_ms,
        }


@dataclass(slots=True)
class InputRecord:
    data: bytes
    position: SourcePosition


class OutputKind(StrEnum):
    """Which output stream a record goes to (values match the `stream` metric label)."""

    PREDICTION = "predictions"
    DEAD_LETTER = "dead_letters"


@dataclass(slots=True)
class OutputRecord:
    """One encoded output record and what the processor counts about it."""

    kind: OutputKind
    data: bytes
    partition_key: str
    position: SourcePosition
    reason: Reason | None = None
    at_risk: bool | None = None
    probability: float | None = None
    ignored_count: int = 0


@dataclass(slots=True)
class BatchResult:
    outputs: list[OutputRecord]
    # The model rows of the records that were scored (for drift), shape (scored, attributes).
    scored_rows: np.ndarray
    model_name: str
    model_version: str
    validation_seconds: float = 0.0
    scoring_seconds: float = 0.0
    encoding_seconds: float = 0.0
    scored_alone: bool = False
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def predictions(self) -> int:
        return sum(1 for o in self.outputs if o.kind is OutputKind.PREDICTION)

    @property
    def dead_letters(self) -> int:
        return len(self.outputs) - self.predictions


# Per scored row: the scores of that row, or why the model failed on it alone.
_RowScore = tuple[float, bool, str, Any] | str


def _score_rows(model: ServedModel, rows: np.ndarray) -> tuple[list[_RowScore], bool]:
    """Scores all rows in one call; on failure, each row alone. Returns (results, alone)."""
    if rows.shape[0] == 0:
        return [], False
    try:
        return _unpack(model.scorer.score(rows)), False
    except ScoringError as exc:
        log.warning(
            "batch_scoring_failed_retrying_alone",
            rows=rows.shape[0],
            error=str(exc)[:500],
            model_version=model.version,
        )
    results: list[_RowScore] = []
    for i in range(rows.shape[0]):
        try:
            results.extend(_unpack(model.scorer.score(rows[i : i + 1])))
        except ScoringError as exc:
            results.append(str(exc)[:1000])
    return results, True


def _unpack(scores: Scores) -> list[_RowScore]:
    return list(
        zip(scores.probability, scores.at_risk, scores.risk_band, scores.top_factors, strict=True)
    )


def _partition_key(student_id: int | str | None, position: SourcePosition) -> str:
    return position.sequence_number if student_id is None else str(student_id)


@dataclass(frozen=True, slots=True)
class _EncodeContext:
    model: dict[str, str]
    timestamp: str
    threshold: float


def _dead_letter(record: InputRecord, rejection: Rejected, context: _EncodeContext) -> OutputRecord:
    return OutputRecord(
        kind=OutputKind.DEAD_LETTER,
        data=encode_dead_letter(
            reason=rejection.reason,
            detail=rejection.detail,
            payload=record.data,
            student_id=rejection.student_id,
            model=context.model,
            source=record.position.as_json(),
            failed_at=context.timestamp,
        ),
        partition_key=_partition_key(rejection.student_id, record.position),
        position=record.position,
        reason=rejection.reason,
    )


def _prediction_or_failure(
    record: InputRecord,
    verdict: Accepted,
    result: _RowScore,
    stage: str | None,
    missing: list[str],
    context: _EncodeContext,
) -> OutputRecord:
    if isinstance(result, str):
        return _dead_letter(
            record, Rejected(Reason.SCORING_FAILED, result, verdict.student_id), context
        )
    probability, at_risk, band, factors = result
    try:
        data = encode_prediction(
            student_id=verdict.student_id,
            probability=probability,
            at_risk=at_risk,
            threshold=context.threshold,
            risk_band=band,
            top_factors=factors,
            stage=stage,
            missing_attributes=missing,
            ignored_attributes=verdict.ignored,
            model=context.model,
            source=record.position.as_json(),
            scored_at=context.timestamp,
        )
    except EncodingError as exc:
        return _dead_letter(
            record, Rejected(Reason.SCORING_FAILED, str(exc), verdict.student_id), context
        )
    return OutputRecord(
        kind=OutputKind.PREDICTION,
        data=data,
        partition_key=str(verdict.student_id),
        position=record.position,
        at_risk=at_risk,
        probability=probability,
        ignored_count=verdict.ignored_count,
    )


def run_batch(
    model: ServedModel,
    records: Sequence[InputRecord],
    *,
    clock: Callable[[], float] = time.time,
) -> BatchResult:
    """Validates, scores and encodes a batch; one output per input, in input order."""
    started = time.perf_counter()
    validator = model.validator
    verdicts = [validator.validate(record.data) for record in records]
    accepted = [i for i, verdict in enumerate(verdicts) if type(verdict) is Accepted]
    rows = np.array(
        [verdicts[i].row for i in accepted],  # type: ignore[union-attr]
        dtype=np.float64,
    ).reshape(len(accepted), validator.width)
    validated = time.perf_counter()

    row_scores, alone = _score_rows(model, rows)
    scored = time.perf_counter()

    stages, missing = validator.describe_rows(rows)
    described = {i: (stages[j], missing[j]) for j, i in enumerate(accepted)}
    scores_by_index: dict[int, _RowScore] = dict(zip(accepted, row_scores, strict=True))
    context = _EncodeContext(
        model={"name": model.name, "version": model.version},
        timestamp=utc_timestamp(clock()),
        threshold=model.contract.threshold,
    )
    outputs: list[OutputRecord] = []
    scored_mask: list[bool] = []
    reasons: dict[str, int] = {}
    for i, (record, verdict) in enumerate(zip(records, verdicts, strict=True)):
        if type(verdict) is Accepted:
            stage, absent = described[i]
            output = _prediction_or_failure(
                record, verdict, scores_by_index[i], stage, absent, context
            )
            scored_mask.append(output.kind is OutputKind.PREDICTION)
        else:
            output = _dead_letter(record, verdict, context)  # type: ignore[arg-type]
        if output.reason is not None:
            reasons[output.reason.value] = reasons.get(output.reason.value, 0) + 1
        outputs.append(output)
    finished = time.perf_counter()
    return BatchResult(
        outputs=outputs,
        scored_rows=rows if all(scored_mask) else rows[np.array(scored_mask, dtype=bool)],
        model_name=model.name,
        model_version=model.version,
        validation_seconds=validated - started,
        scoring_seconds=scored - validated,
        encoding_seconds=finished - scored,
        scored_alone=alone,
        reasons=reasons,
    )
