"""Decode and validate one input record against the served model's contract.

The rules and reason codes are those of docs/wire-formats.md, which also says in which order
the checks run; the first failing check decides the reason. A valid record becomes one row of
float64 values in contract attribute order (NaN = missing), ready to be stacked into the model's
input frame. The validator is built once per model version and is pure (no I/O, no metrics).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson

from common.contract import Contract
from common.wire import Reason

MAX_STUDENT_ID_CHARS: Final = 128
# orjson yields integers up to this bound; larger ones cannot be encoded back either.
MAX_STUDENT_ID_INT: Final = 2**64 - 1
# An unknown attribute name is listed in the prediction; keep the listing bounded.
MAX_IGNORED_LISTED: Final = 50
MAX_NAME_CHARS: Final = 128
_DETAIL_VALUE_CHARS: Final = 64
_NAN: Final = math.nan
_MISSING: Final = object()
_MISSING_CACHE_SIZE: Final = 4096


# Per-record results: plain slotted classes (frozen dataclasses cost ~1 µs more to build).
@dataclass(slots=True)
class Accepted:
    """A valid record: its id, its model row, the names it sent that the model ignores."""

    student_id: int | str
    row: list[float]  # ints for integral values sent as JSON integers
    ignored: list[str]
    ignored_count: int


@dataclass(slots=True)
class Rejected:
    """A record that cannot be scored, with its stable reason code and a readable detail."""

    reason: Reason
    detail: str
    student_id: int | str | None = None


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for error details."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(text: str, limit: int = MAX_NAME_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _where(key: str) -> str:
    return f"student_features[{_short(key)!r}]"


class RecordValidator:
    """Validates raw record bytes against one contract; `validate` never raises."""

    def __init__(self, contract: Contract, max_record_bytes: int) -> None:
        self.contract = contract
        self.max_record_bytes = max_record_bytes
        self.attribute_names: list[str] = contract.attribute_names
        self.width = len(self.attribute_names)
        stage_index = {name: index for index, name in enumerate(contract.stages)}
        self._stages = list(contract.stages)
        self._stage_codes = np.array([stage_index[a.stage] for a in contract.attributes])
        # Per attribute name: (column, is_int, min, max, categories or None), one dict lookup
        # and one tuple unpack per value in the hot loop.
        self._specs: dict[str, tuple[int, bool, float, float, frozenset[float] | None]] = {
            a.name: (
                column,
                a.dtype == "int",
                a.min,
                a.max,
                frozenset(a.categories) if a.kind == "categorical" and a.categories else None,
            )
            for column, a in enumerate(contract.attributes)
        }
        self._required = [i for i, a in enumerate(contract.attributes) if a.required]
        # Missing-attribute lists by missing pattern: producers tend to send the same subsets.
        self._missing_cache: dict[bytes, list[str]] = {}

    # --- the record ------------------------------------------------------------------------

    def validate(self, data: bytes) -> Accepted | Rejected:
        size = len(data)
        if size > self.max_record_bytes:
            return Rejected(
                Reason.PAYLOAD_TOO_LARGE,
                f"record is {size} bytes, more than MAX_RECORD_BYTES ({self.max_record_bytes})",
            )
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as bad:
                return Rejected(
                    Reason.INVALID_ENCODING, f"not valid UTF-8: {bad.reason} at byte {bad.start}"
                )
            return Rejected(
                Reason.INVALID_JSON,
                f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            )
        if type(document) is not dict:
            return Rejected(
                Reason.NOT_AN_OBJECT, f"expected a JSON object, got {json_type(document)}"
            )
        return self.validate_object(document)

    def validate_object(self, document: dict[str, Any]) -> Accepted | Rejected:
        student_id = document.get("student_id", _MISSING)
        if student_id is _MISSING or student_id is None:
            what = "missing" if student_id is _MISSING else "null"
            return Rejected(Reason.MISSING_STUDENT_ID, f"student_id is {what}")
        sid_type = type(student_id)
        if sid_type is int:
            if not 0 <= student_id <= MAX_STUDENT_ID_INT:
                return Rejected(
                    Reason.INVALID_STUDENT_ID,
                    f"student_id: expected a non-negative integer below 2**64, got {student_id}",
                )
        elif sid_type is str:
            if not 1 <= len(student_id) <= MAX_STUDENT_ID_CHARS:
                return Rejected(
                    Reason.INVALID_STUDENT_ID,
                    f"student_id: expected 1 to {MAX_STUDENT_ID_CHARS} characters, "
                    f"got {len(student_id)}",
                )
        else:
            return Rejected(
                Reason.INVALID_STUDENT_ID,
                "student_id: expected a non-negative integer or a string, "
                f"got {json_type(student_id)}",
            )
        features = document.get("student_features", _MISSING)
        if features is _MISSING or features is None:
            what = "missing" if features is _MISSING else "null"
            return Rejected(Reason.MISSING_FEATURES, f"student_features is {what}", student_id)
        if type(features) is not dict:
            return Rejected(
                Reason.INVALID_FEATURES,
                f"student_features: expected an object, got {json_type(features)}",
                student_id,
            )
        return self._validate_features(student_id, features)

    # --- the attributes ------------------------------------------------------------------

    # One flat loop on purpose: it runs for every attribute of every record (the hot path).
    def _validate_features(
        self, student_id: int | str, features: dict[str, Any]
    ) -> Accepted | Rejected:
        specs = self._specs
        row = [_NAN] * self.width
        ignored: list[str] = []
        ignored_count = 0
        for key, value in features.items():
            spec = specs.get(key)
            if spec is None:
                spec = specs.get(key.strip())
                if spec is None:
                    ignored_count += 1
                    if ignored_count <= MAX_IGNORED_LISTED:
                        ignored.append(_short(key))
                    continue
            column, is_int, low, high, categories = spec
            if value is None:
                row[column] = _NAN
                continue
            # Ints stay ints (compared and stored exactly; numpy makes them float64 later):
            # no conversion on the common path, and no overflow for huge ones.
            value_type = type(value)
            if value_type is float:
                if is_int and not value.is_integer():
                    return self._bad_float(key, value, student_id)
            elif value_type is not int:  # bool, str, list, dict
                return Rejected(
                    Reason.WRONG_TYPE,
                    f"{_where(key)}: expected {'an integer' if is_int else 'a number'}, "
                    f"got {json_type(value)}",
                    student_id,
                )
            if not low <= value <= high:  # NaN and infinities fail too
                return Rejected(
                    Reason.OUT_OF_RANGE,
                    f"{_where(key)}: {_short(repr(value), _DETAIL_VALUE_CHARS)} is outside "
                    f"[{low:g}, {high:g}]",
                    student_id,
                )
            if categories is not None and value not in categories:
                return Rejected(
                    Reason.UNKNOWN_CATEGORY,
                    f"{_where(key)}: {_short(repr(value), _DETAIL_VALUE_CHARS)} is not a known "
                    "category of the model",
                    student_id,
                )
            row[column] = value
        for column in self._required:
            if row[column] != row[column]:  # NaN (faster than math.isnan here)
                return Rejected(
                    Reason.MISSING_REQUIRED_ATTRIBUTE,
                    f"{_where(self.attribute_names[column])}: required by the model, "
                    "absent or null",
                    student_id,
                )
        return Accepted(student_id, row, ignored, ignored_count)

    @staticmethod
    def _bad_float(key: str, value: float, student_id: int | str) -> Rejected:
        if not math.isfinite(value):
            return Rejected(
                Reason.OUT_OF_RANGE, f"{_where(key)}: {value} is not finite", student_id
            )
        return Rejected(
            Reason.WRONG_TYPE,
            f"{_where(key)}: expected an integer, got {_short(repr(value), _DETAIL_VALUE_CHARS)}",
            student_id,
        )

    # --- what the prediction says about the rows ---------------------------------------------

    def describe_rows(self, rows: np.ndarray) -> tuple[list[str | None], list[list[str]]]:
        """Per valid row (vectorised): its stage, and the attributes it did not send.

        The stage is the latest stage with any attribute present (None when none is).
        """
        if rows.shape[0] == 0:
            return [], []
        missing = np.isnan(rows)
        stage_index = np.where(missing, -1, self._stage_codes).max(axis=1)
        stages = [self._stages[i] if i >= 0 else None for i in stage_index.tolist()]
        keys = np.packbits(missing, axis=1)
        names: list[list[str]] = []
        cache = self._missing_cache
        for j in range(rows.shape[0]):
            key = keys[j].tobytes()
            listed = cache.get(key)
            if listed is None:
                listed = [self.attribute_names[i] for i in np.flatnonzero(missing[j]).tolist()]
                if len(cache) < _MISSING_CACHE_SIZE:
                    cache[key] = listed
            names.append(listed)
        return stages, names
