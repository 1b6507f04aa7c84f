"""Read captured predictions (`dropout.capture.v1`) from object storage into one table.

Layout (written by the consumer, one object per processed batch per shard)::

    captures/<model_name>/dt=<YYYY-MM-DD>/<shard_id>/<first_seq>-<first_sub>_<last_seq>-<last_sub>.jsonl.gz

Each object is gzip-compressed JSON lines, one line per input record (a prediction or a dead
letter). Reading is forgiving and loud: an object or line that cannot be used is skipped and
counted in the `ReadSummary` under a stable reason code, with examples:

- object level: `unexpected_key` (not the layout above), `unreadable_object` (the store failed),
  `not_gzip` (no gzip header), `corrupt_gzip` (truncated or damaged stream);
- line level: `invalid_json` (not JSON or not UTF-8), `not_an_object`, `wrong_schema`,
  `missing_field`, `invalid_field` (wrong type or value), `model_mismatch` (the line's model is
  not the one its key names).

De-duplication: delivery is at least once, and a batch replayed after a restart may come back
with other boundaries (so under another key). Records are the same input when their source
position (shard_id, sequence_number, sub_sequence_number) is the same; one is kept: a prediction
before a dead letter, then the earliest `scored_at`, then the first key and line (so the result
does not depend on listing order). The number dropped is `ReadSummary.duplicates`.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

import pandas as pd

from common.attributes import STAGES
from common.capture_format import CAPTURE_SCHEMA, CAPTURES_PREFIX
from common.object_store import Store, StoreError
from training.loop.problems import InputError, ProblemLog, json_object

OUTCOMES: Final = ("prediction", "dead_letter")
MAX_STUDENT_ID_CHARS: Final = 128
POSITION: Final = ("shard_id", "sequence_number", "sub_sequence_number")
BASE_COLUMNS: Final = (
    "student_id",
    "outcome",
    "model_name",
    "model_version",
    "stage",
    "probability",
    "at_risk",
    "threshold",
    "risk_band",
    "dead_letter_reason",
    "scored_at",
    "arrival",
    "shard_id",
    "sequence_number",
    "sub_sequence_number",
    "object_key",
    "line",
)
_KEY: Final = re.compile(
    r"^captures/(?P<model>[^/]+)/dt=(?P<day>\d{4}-\d{2}-\d{2})/(?P<shard>[^/]+)/"
    r"\d+-\d+_\d+-\d+\.jsonl\.gz$"
)
_GZIP_MAGIC: Final = b"\x1f\x8b"


@dataclass
class ReadSummary:
    """What was read and what was skipped (counts per reason, first examples)."""

    objects_listed: int = 0
    objects_read: int = 0
    lines_read: int = 0
    records: int = 0
    duplicates: int = 0
    problems: ProblemLog = field(default_factory=ProblemLog)

    @property
    def skipped(self) -> int:
        return self.problems.total


@dataclass(frozen=True)
class Captures:
    """One row per input record (after de-duplication), and the read summary."""

    frame: pd.DataFrame
    summary: ReadSummary


def read_captures(
    store: Store,
    *,
    models: Collection[str] | None = None,
    since: date | None = None,
    until: date | None = None,
    attribute_names: Sequence[str] = (),
) -> Captures:
    """Every capture under the store's `captures/` (optionally some models, and partition dates
    `since`..`until` inclusive), de-duplicated by source position.

    The frame has `BASE_COLUMNS` then one float column per attribute: `attribute_names` first
    (always present, NaN where not sent), then any other attribute seen, sorted.
    """
    summary = ReadSummary()
    prefixes = [f"{CAPTURES_PREFIX}{m}/" for m in sorted(models)] if models else [CAPTURES_PREFIX]
    keys = sorted({key for prefix in prefixes for key in store.list(prefix)})
    rows: list[dict[str, Any]] = []
    attributes: list[dict[str, float]] = []
    for key in keys:
        if key.endswith("/"):
            continue  # a folder marker some S3 consoles make; it holds no data
        summary.objects_listed += 1
        match = _KEY.match(key)
        if match is None:
            summary.problems.add("unexpected_key", key, "not captures/<model>/dt=<date>/<shard>/…")
            continue
        day = _partition_day(match["day"])
        if day is None:
            summary.problems.add("unexpected_key", key, f"dt={match['day']} is not a date")
            continue
        if (since is not None and day < since) or (until is not None and day > until):
            continue
        body = _read_object(store, key, summary.problems)
        if body is None:
            continue
        summary.objects_read += 1
        for number, raw in enumerate(body.split(b"\n"), start=1):
            if not raw.strip():
                continue
            summary.lines_read += 1
            try:
                row, values = _parse_line(raw, match["model"])
            except InputError as bad:
                summary.problems.add(bad.reason, f"{key} line {number}", bad.message)
                continue
            row["object_key"] = key
            row["line"] = number
            rows.append(row)
            attributes.append(values)
    frame = _frame(rows, attributes, attribute_names)
    frame, summary.duplicates = _deduplicate(frame)
    summary.records = len(frame)
    return Captures(frame=frame, summary=summary)


def _partition_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _read_object(store: Store, key: str, problems: ProblemLog) -> bytes | None:
    try:
        data = store.get(key)
    except StoreError as exc:
        problems.add("unreadable_object", key, str(exc))
        return None
    if not data.startswith(_GZIP_MAGIC):
        problems.add("not_gzip", key, "the object is not gzip-compressed")
        return None
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        problems.add("corrupt_gzip", key, f"cannot decompress: {exc}")
        return None


def _parse_line(raw: bytes, key_model: str) -> tuple[dict[str, Any], dict[str, float]]:
    record = json_object(raw)
    schema = _required(record, "schema")
    if schema != CAPTURE_SCHEMA:
        raise InputError("wrong_schema", f"schema {schema!r}, expected {CAPTURE_SCHEMA!r}")
    outcome = _required(record, "outcome")
    if outcome not in OUTCOMES:
        raise InputError("invalid_field", f"outcome {outcome!r} is not one of {OUTCOMES}")
    model = _object(record, "model")
    model_name = _string(model, "name", "model.name")
    if model_name != key_model:
        raise InputError("model_mismatch", f"model {model_name!r} under captures/{key_model}/")
    source = _object(record, "source")
    row: dict[str, Any] = {
        "student_id": _student_id(record, nullable=outcome == "dead_letter"),
        "outcome": outcome,
        "model_name": model_name,
        "model_version": _string(model, "version", "model.version"),
        "stage": None,
        "probability": math.nan,
        "at_risk": None,
        "threshold": math.nan,
        "risk_band": None,
        "dead_letter_reason": None,
        "scored_at": _timestamp(record),
        "arrival": _arrival(record),
        "shard_id": _string(source, "shard_id", "source.shard_id"),
        "sequence_number": _sequence(source),
        "sub_sequence_number": _count(source, "sub_sequence_number", "source.sub_sequence_number"),
    }
    values: dict[str, float] = {}
    if outcome == "prediction":
        prediction = _object(record, "prediction")
        row["probability"] = _probability(prediction, "dropout_probability")
        row["threshold"] = _probability(prediction, "threshold")
        at_risk = _required(prediction, "at_risk", "prediction.at_risk")
        if not isinstance(at_risk, bool):
            raise InputError("invalid_field", f"prediction.at_risk is {at_risk!r}, not a boolean")
        row["at_risk"] = at_risk
        row["risk_band"] = _string(prediction, "risk_band", "prediction.risk_band")
        stage = _required(prediction, "stage", "prediction.stage")
        if stage not in STAGES:
            raise InputError("invalid_field", f"prediction.stage {stage!r} is not one of {STAGES}")
        row["stage"] = stage
        values = _attributes(_object(record, "attributes"))
    else:
        dead = _object(record, "dead_letter")
        row["dead_letter_reason"] = _string(dead, "reason", "dead_letter.reason")
        if record.get("attributes") is not None:
            values = _attributes(_object(record, "attributes"))
    return row, values


def _required(record: Mapping[str, Any], key: str, label: str | None = None) -> Any:
    value = record.get(key)
    if value is None:
        raise InputError("missing_field", f"{label or key} is missing or null")
    return value


def _object(record: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = _required(record, key)
    if not isinstance(value, dict):
        raise InputError("invalid_field", f"{key} is a {type(value).__name__}, not an object")
    return value


def _string(record: Mapping[str, Any], key: str, label: str) -> str:
    value = _required(record, key, label)
    if not isinstance(value, str) or not value:
        raise InputError("invalid_field", f"{label} is {value!r}, not a non-empty string")
    return value


def _count(record: Mapping[str, Any], key: str, label: str) -> int:
    value = _required(record, key, label)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError("invalid_field", f"{label} is {value!r}, not a non-negative integer")
    return value


def _sequence(source: Mapping[str, Any]) -> str:
    value = _required(source, "sequence_number", "source.sequence_number")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if not isinstance(value, str) or not value.isdigit():
        raise InputError("invalid_field", f"source.sequence_number is {value!r}, not digits")
    return value


def _student_id(record: Mapping[str, Any], *, nullable: bool) -> str | None:
    if "student_id" not in record or (record["student_id"] is None and not nullable):
        raise InputError("missing_field", "student_id is missing or null")
    value = record["student_id"]
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and 1 <= len(value) <= MAX_STUDENT_ID_CHARS:
        return value
    raise InputError("invalid_field", f"student_id {value!r} is not an id")


def _timestamp(record: Mapping[str, Any]) -> datetime:
    value = _required(record, "scored_at")
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InputError("invalid_field", f"scored_at {value!r} is not an ISO time with a zone")
    return moment.astimezone(UTC)


def _arrival(record: Mapping[str, Any]) -> datetime | None:
    value = record.get("arrival_timestamp_ms")
    if value is None:
        return None  # offline scoring has no arrival time
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError("invalid_field", f"arrival_timestamp_ms is {value!r}, not epoch millis")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _probability(record: Mapping[str, Any], key: str) -> float:
    value = _required(record, key, f"prediction.{key}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InputError("invalid_field", f"prediction.{key} is {value!r}, not in [0, 1]")
    return float(value)


def _attributes(values: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in values.items():
        if value is None:
            continue  # the consumer writes present ones only; null is as good as absent
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError("invalid_field", f"attributes[{name!r}] is {value!r}, not a number")
        out[name] = float(value)
    return out


def _frame(
    rows: list[dict[str, Any]], attributes: list[dict[str, float]], names: Sequence[str]
) -> pd.DataFrame:
    base = pd.DataFrame.from_records(rows, columns=list(BASE_COLUMNS))
    seen = {name for values in attributes for name in values}
    order = [*names, *sorted(seen - set(names))]
    extra = pd.DataFrame.from_records(attributes, columns=order)
    extra.index = base.index
    frame = pd.concat([base, extra.astype("float64")], axis=1)
    frame["student_id"] = frame["student_id"].astype("object")
    frame["probability"] = frame["probability"].astype("float64")
    frame["threshold"] = frame["threshold"].astype("float64")
    frame["at_risk"] = frame["at_risk"].astype("boolean")
    frame["scored_at"] = pd.to_datetime(frame["scored_at"], utc=True)
    frame["arrival"] = pd.to_datetime(frame["arrival"], utc=True)
    frame["sub_sequence_number"] = frame["sub_sequence_number"].astype("int64")
    frame["line"] = frame["line"].astype("int64")
    return frame


def _deduplicate(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    ordered = frame.assign(_dead=frame["outcome"] != "prediction").sort_values(
        ["_dead", "scored_at", "object_key", "line"], kind="mergesort"
    )
    kept = ordered.drop_duplicates(subset=list(POSITION), keep="first").drop(columns="_dead")
    kept = kept.sort_values(["scored_at", "object_key", "line"], kind="mergesort")
    return kept.reset_index(drop=True), len(frame) - len(kept)
