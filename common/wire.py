"""The records the parts exchange (docs/wire-formats.md): schema ids, dead-letter reason codes,
the columns a model's predict returns, outcome labels, and the source position every output
carries (the key a downstream consumer de-duplicates on)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

INPUT_SCHEMA: Final = "dropout.student_event.v1"
PREDICTION_SCHEMA: Final = "dropout.prediction.v1"
DEAD_LETTER_SCHEMA: Final = "dropout.dead_letter.v1"
CAPTURE_SCHEMA: Final = "dropout.capture.v1"
OUTCOME_SCHEMA: Final = "dropout.outcome.v1"

# What a registered model's predict returns, per input row (docs/model-contract.md).
OUTPUT_COLUMNS: Final = ("dropout_probability", "at_risk", "risk_band", "top_factors")

# Outcomes a registrar reports; the model predicts the first against the other two.
OUTCOME_LABELS: Final = ("Dropout", "Enrolled", "Graduate")
POSITIVE_OUTCOME: Final = "Dropout"


class Reason(StrEnum):
    """Stable dead-letter reason codes; dashboards and alerts key on them."""

    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_ENCODING = "invalid_encoding"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_STUDENT_ID = "missing_student_id"
    INVALID_STUDENT_ID = "invalid_student_id"
    MISSING_FEATURES = "missing_features"
    INVALID_FEATURES = "invalid_features"
    MISSING_REQUIRED_ATTRIBUTE = "missing_required_attribute"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_CATEGORY = "unknown_category"
    SCORING_FAILED = "scoring_failed"


@dataclass(frozen=True, slots=True)
class SourceKey:
    """Where an input record came from: shard, sequence and sub-sequence number.

    A KPL-aggregated Kinesis record carries several user records under one sequence number,
    told apart by their sub-sequence numbers (0 for a plain record), so all three together are
    the unique key of an input, and the de-duplication key of its output.
    """

    shard_id: str
    sequence_number: str
    sub_sequence_number: int = 0

    @classmethod
    def of(cls, source: dict[str, Any]) -> SourceKey:
        """The key of an output's `source` object."""
        return cls(
            str(source["shard_id"]),
            str(source["sequence_number"]),
            int(source.get("sub_sequence_number") or 0),
        )
