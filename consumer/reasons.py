"""Stable dead-letter reason codes (docs/wire-formats.md); dashboards and alerts key on them."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
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
