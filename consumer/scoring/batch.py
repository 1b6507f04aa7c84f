"""The one validate -> score -> encode path, shared by the stream processor, the model's
self-test and offline scoring.

`run_batch(model, records)` turns n input records into exactly n output records, in input order:
a prediction for every valid record the model scored, a dead letter (with its reason code) for
every other. Valid records are scored in one model call; if that call fails, each of them is
retried alone and only the ones that fail alone become `scoring_failed` dead letters. Nothing
here raises for a bad record, and nothing here does I/O. What the batch came to is counted once,
in `BatchResult.counts`, which the processor's metrics and offline scoring both read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog

from common.wire import Reason
from consumer.output.encoding import (
    EncodingError,
    encode_dead_letter,
    encode_prediction,
    utc_timestamp,
)
from consumer.records import InputRecord, OutputKind, OutputRecord, SourcePosition
from consumer.scoring.scorer import Scores, ScoringError
from consumer.scoring.served_model import ServedModel
from consumer.scoring.validation import Accepted, Rejected

log = structlog.get_logger("consumer.scoring.batch")


@dataclass
class BatchCounts:
    """What a batch came to, counted once."""

    predictions: int = 0
    at_risk: int = 0
    dead_letters: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    ignored_attributes: int = 0

    @property
    def not_at_risk(self) -> int:
        return self.predictions - self.at_risk

    def add(self, output: OutputRecord) -> None:
        if output.kind is OutputKind.PREDICTION:
            self.predictions += 1
            self.at_risk += bool(output.at_risk)
            self.ignored_attributes += output.ignored_count
        else:
            self.dead_letters += 1
            if output.reason is not None:
                key = output.reason.value
                self.reasons[key] = self.reasons.get(key, 0) + 1

    def merge(self, other: BatchCounts) -> None:
        self.predictions += other.predictions
        self.at_risk += other.at_risk
        self.dead_letters += other.dead_letters
        self.ignored_attributes += other.ignored_attributes
        for reason, count in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + count


@dataclass(slots=True)
class BatchResult:
    outputs: list[OutputRecord]
    # The model rows of the records that were scored (for drift), shape (scored, attributes).
    scored_rows: np.ndarray
    model_name: str
    model_version: str
    counts: BatchCounts
    scored_at: str = ""
    threshold: float = 0.5
    # The model's attribute order: what each value of an output's `row` is.
    attribute_names: list[str] = field(default_factory=list)
    validation_seconds: float = 0.0
    scoring_seconds: float = 0.0
    encoding_seconds: float = 0.0
    scored_alone: bool = False

    @property
    def first(self) -> SourcePosition:
        return self.outputs[0].position

    @property
    def last(self) -> SourcePosition:
        return self.outputs[-1].position


# Per scored row: the scores of that row, or why the model failed on it alone.
_RowScore = tuple[float, bool, str, Any] | str


def score_rows(model: ServedModel, rows: np.ndarray) -> tuple[list[_RowScore], bool]:
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
        student_id=rejection.student_id,
        reason=rejection.reason,
        detail=rejection.detail,
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
        student_id=verdict.student_id,
        at_risk=at_risk,
        probability=probability,
        risk_band=band,
        top_factors=factors,
        stage=stage,
        row=verdict.row,
        ignored_count=verdict.ignored_count,
    )


def validate_all(model: ServedModel, records: Sequence[InputRecord]) -> list[Accepted | Rejected]:
    validator = model.validator
    return [validator.validate(record.data) for record in records]


def accepted_rows(model: ServedModel, verdicts: Sequence[Accepted | Rejected]) -> np.ndarray:
    """The model rows of the accepted verdicts, stacked (float64, NaN = missing)."""
    rows = [v.row for v in verdicts if type(v) is Accepted]
    return np.array(rows, dtype=np.float64).reshape(len(rows), model.validator.width)


def run_batch(
    model: ServedModel,
    records: Sequence[InputRecord],
    *,
    clock: Callable[[], float] = time.time,
) -> BatchResult:
    """Validates, scores and encodes a batch; one output per input, in input order."""
    started = time.perf_counter()
    verdicts = validate_all(model, records)
    accepted = [i for i, verdict in enumerate(verdicts) if type(verdict) is Accepted]
    rows = accepted_rows(model, verdicts)
    validated = time.perf_counter()

    row_scores, alone = score_rows(model, rows)
    scored = time.perf_counter()

    stages, missing = model.validator.describe_rows(rows)
    described = {i: (stages[j], missing[j]) for j, i in enumerate(accepted)}
    scores_by_index: dict[int, _RowScore] = dict(zip(accepted, row_scores, strict=True))
    context = _EncodeContext(
        model={"name": model.name, "version": model.version},
        timestamp=utc_timestamp(clock()),
        threshold=model.contract.threshold,
    )
    outputs: list[OutputRecord] = []
    scored_mask: list[bool] = []
    counts = BatchCounts()
    for i, (record, verdict) in enumerate(zip(records, verdicts, strict=True)):
        if type(verdict) is Accepted:
            stage, absent = described[i]
            output = _prediction_or_failure(
                record, verdict, scores_by_index[i], stage, absent, context
            )
            scored_mask.append(output.kind is OutputKind.PREDICTION)
        else:
            output = _dead_letter(record, verdict, context)  # type: ignore[arg-type]
        counts.add(output)
        outputs.append(output)
    finished = time.perf_counter()
    return BatchResult(
        outputs=outputs,
        scored_rows=rows if all(scored_mask) else rows[np.array(scored_mask, dtype=bool)],
        model_name=model.name,
        model_version=model.version,
        counts=counts,
        scored_at=context.timestamp,
        threshold=context.threshold,
        attribute_names=model.validator.attribute_names,
        validation_seconds=validated - started,
        scoring_seconds=scored - validated,
        encoding_seconds=finished - scored,
        scored_alone=alone,
    )
