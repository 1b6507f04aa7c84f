"""Builders for the loop tests: capture lines and objects as the consumer writes them, outcome
files as registrars export them, and the UCI attribute names read from the data file header."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from common.capture_format import OUTCOMES_PREFIX, capture_key, encode_capture_object
from common.object_store import Store

MODEL = "student-dropout"
SHARD = "shardId-000000000001"
STAGE_ORDER = ("enrollment", "first_semester", "second_semester")


def uci_header(path: Path) -> tuple[list[str], str]:
    """The 36 attribute names (trimmed, file order) and the target's name, from the header."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle, delimiter=";"))
    names = [name.strip() for name in header]
    return names[:-1], names[-1]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def prediction_line(
    student_id: int | str | None,
    *,
    sequence: int,
    scored_at: datetime,
    probability: float = 0.5,
    threshold: float = 0.4,
    stage: str = "first_semester",
    version: str = "3",
    attributes: Mapping[str, float] | None = None,
    shard: str = SHARD,
    sub: int = 0,
    model: str = MODEL,
) -> dict[str, Any]:
    at_risk = probability >= threshold
    return {
        "schema": "dropout.capture.v1",
        "outcome": "prediction",
        "student_id": student_id,
        "attributes": dict(attributes if attributes is not None else {"GDP": 1.74}),
        "prediction": {
            "dropout_probability": probability,
            "at_risk": at_risk,
            "threshold": threshold,
            "risk_band": "high" if at_risk else "low",
            "top_factors": [],
            "stage": stage,
        },
        "dead_letter": None,
        "model": {"name": model, "version": version},
        "source": {"shard_id": shard, "sequence_number": str(sequence), "sub_sequence_number": sub},
        "arrival_timestamp_ms": int(scored_at.timestamp() * 1000) - 50,
        "scored_at": iso(scored_at),
        "schemas": {"input": "dropout.student_event.v1", "output": "dropout.prediction.v1"},
    }


def dead_letter_line(
    student_id: int | str | None, *, sequence: int, scored_at: datetime, version: str = "3"
) -> dict[str, Any]:
    return {
        "schema": "dropout.capture.v1",
        "outcome": "dead_letter",
        "student_id": student_id,
        "attributes": None,
        "prediction": None,
        "dead_letter": {"reason": "out_of_range", "detail": "GDP: 99 > 20"},
        "model": {"name": MODEL, "version": version},
        "source": {"shard_id": SHARD, "sequence_number": str(sequence), "sub_sequence_number": 0},
        "arrival_timestamp_ms": int(scored_at.timestamp() * 1000),
        "scored_at": iso(scored_at),
        "schemas": {"input": "dropout.student_event.v1", "output": "dropout.prediction.v1"},
    }


def put_batch(store: Store, lines: Sequence[Mapping[str, Any]], *, model: str = MODEL) -> str:
    """One capture object for `lines` (one batch of one shard), keyed as the consumer keys it."""
    first, last = lines[0]["source"], lines[-1]["source"]
    day = datetime.fromisoformat(lines[0]["scored_at"]).date()
    key = capture_key(
        model,
        day,
        first["shard_id"],
        (first["sequence_number"], first["sub_sequence_number"]),
        (last["sequence_number"], last["sub_sequence_number"]),
    )
    store.put(key, encode_capture_object(lines))
    return key


def outcome_csv(rows: Iterable[tuple[Any, str, str, str]], *, bom: bool = False) -> bytes:
    text = "student_id,outcome,decision_date,source\n" + "".join(
        f"{student},{outcome},{day},{source}\n" for student, outcome, day, source in rows
    )
    return ("\ufeff" if bom else "").encode() + text.encode()


def put_outcomes(store: Store, name: str, rows: Iterable[tuple[Any, str, str, str]]) -> str:
    """One registrar's outcome file `name` in the store, where the loop reads outcomes; its key."""
    key = OUTCOMES_PREFIX + name
    store.put(key, outcome_csv(rows))
    return key


def at(day: str, hour: int = 10) -> datetime:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC).replace(hour=hour)


def student_line(
    student: int, probability: float = 0.5, *, day: str = "2026-10-01", **fields: Any
) -> dict[str, Any]:
    """Student `student`'s prediction as captured on `day`, one record per student (its sequence
    number is its id); `fields` as `prediction_line` takes them."""
    return prediction_line(
        student, sequence=student, scored_at=at(day), probability=probability, **fields
    )
