"""The records that travel the path: an input with its source position, and the output it
becomes (a prediction or a dead letter), with what the later steps need to know about it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from common.wire import Reason


@dataclass(slots=True)
class SourcePosition:
    """Where an input record came from (shard, sequence and sub-sequence number), carried into
    its output; the three together are the key a downstream consumer de-duplicates on."""

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
    """One encoded output record and what publishing, capture and accounting need of it."""

    kind: OutputKind
    data: bytes
    partition_key: str
    position: SourcePosition
    student_id: int | str | None = None
    # Dead letters: why.
    reason: Reason | None = None
    detail: str | None = None
    # Predictions: the scores and the validated model row (NaN = absent attribute).
    at_risk: bool | None = None
    probability: float | None = None
    risk_band: str | None = None
    top_factors: Any = None
    stage: str | None = None
    row: list[float] | None = None
    ignored_count: int = 0
