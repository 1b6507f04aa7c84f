"""Output records (docs/wire-formats.md): predictions and dead letters, encoded with orjson.

Every encoded record fits one Kinesis record (1 MiB including the partition key): a dead letter
whose payload would not fit is cut further, and says so (`payload_truncated`).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from common.wire import DEAD_LETTER_SCHEMA, PREDICTION_SCHEMA, Reason

MAX_DEAD_LETTER_PAYLOAD_BYTES: Final = 256 * 1024
# Kinesis limits a record to 1 MiB of data plus partition key; stay well under it.
MAX_OUTPUT_RECORD_BYTES: Final = 1_000_000
_MIN_PAYLOAD_BYTES: Final = 1024
_OPTIONS: Final = orjson.OPT_SERIALIZE_NUMPY


class EncodingError(ValueError):
    """A prediction could not be encoded (a model returned values JSON cannot carry)."""


def _default(value: Any) -> Any:
    # Model outputs may carry numpy or pandas scalars that orjson does not know.
    for kind in (float, str):
        try:
            return kind(value)
        except (TypeError, ValueError):
            continue
    raise TypeError(f"cannot encode {type(value).__name__}")


def utc_timestamp(epoch_seconds: float) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as in the wire formats."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def encode_prediction(
    *,
    student_id: int | str,
    probability: float,
    at_risk: bool,
    threshold: float,
    risk_band: str,
    top_factors: Any,
    stage: str | None,
    missing_attributes: list[str],
    ignored_attributes: list[str],
    model: dict[str, str],
    source: dict[str, Any],
    scored_at: str,
) -> bytes:
    record = {
        "schema": PREDICTION_SCHEMA,
        "student_id": student_id,
        "dropout_probability": probability,
        "at_risk": at_risk,
        "threshold": threshold,
        "risk_band": risk_band,
        "top_factors": top_factors,
        "stage": stage,
        "missing_attributes": missing_attributes,
        "ignored_attributes": ignored_attributes,
        "model": model,
        "source": source,
        "scored_at": scored_at,
    }
    try:
        data = orjson.dumps(record, default=_default, option=_OPTIONS)
    except TypeError as exc:
        raise EncodingError(f"prediction cannot be encoded: {exc}") from exc
    if len(data) > MAX_OUTPUT_RECORD_BYTES:
        raise EncodingError(f"prediction is {len(data)} bytes once encoded")
    return data


def _payload_fields(payload: bytes, limit: int, utf8: bool) -> dict[str, Any]:
    truncated = len(payload) > limit
    chunk = payload[:limit] if truncated else payload
    if utf8:
        # A cut may split the last character; drop its partial bytes.
        text = chunk.decode("utf-8", "ignore") if truncated else chunk.decode("utf-8")
        return {"payload": text, "payload_base64": None, "payload_truncated": truncated}
    encoded = base64.b64encode(chunk).decode("ascii")
    return {"payload": None, "payload_base64": encoded, "payload_truncated": truncated}


def _is_utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def encode_dead_letter(
    *,
    reason: Reason,
    detail: str,
    payload: bytes,
    student_id: int | str | None,
    model: dict[str, str] | None,
    source: dict[str, Any],
    failed_at: str,
) -> bytes:
    utf8 = _is_utf8(payload)
    limit = MAX_DEAD_LETTER_PAYLOAD_BYTES
    while True:
        fields = _payload_fields(payload, limit, utf8)
        record = {
            "schema": DEAD_LETTER_SCHEMA,
            "reason": str(reason),
            "detail": detail[:2000],
            "payload": fields["payload"],
            "payload_base64": fields["payload_base64"],
            "payload_bytes": len(payload),
            "payload_truncated": fields["payload_truncated"],
            "student_id": student_id,
            "model": model,
            "source": source,
            "failed_at": failed_at,
        }
        data = orjson.dumps(record)
        # Escaping can grow text up to six times (control characters as \\u00XX).
        if len(data) <= MAX_OUTPUT_RECORD_BYTES or limit <= _MIN_PAYLOAD_BYTES:
            return data
        limit //= 2
