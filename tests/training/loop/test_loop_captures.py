"""Reading capture objects: the table, skipped objects and lines by reason, de-duplication."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import orjson
import pandas as pd
import pytest

from common.capture_format import capture_key
from common.object_store import LocalStore
from tests.training.loop.helpers import (
    MODEL,
    at,
    dead_letter_line,
    prediction_line,
    put_batch,
)
from training.loop.captures import BASE_COLUMNS, read_captures


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def test_one_row_per_record_with_typed_columns(store: LocalStore) -> None:
    put_batch(
        store,
        [
            prediction_line(
                256,
                sequence=1,
                scored_at=at("2026-11-26"),
                probability=0.73,
                attributes={"GDP": 1.74, "Course": 171},
            ),
            prediction_line("s-1", sequence=2, scored_at=at("2026-11-26", 11), stage="enrollment"),
            dead_letter_line(None, sequence=3, scored_at=at("2026-11-26", 12)),
        ],
    )
    captures = read_captures(store, attribute_names=["Course", "GDP", "Debtor"])
    frame = captures.frame
    assert list(frame.columns) == [*BASE_COLUMNS, "Course", "GDP", "Debtor"]
    assert frame["student_id"].tolist() == ["256", "s-1", None]
    assert frame["outcome"].tolist() == ["prediction", "prediction", "dead_letter"]
    assert frame["stage"].tolist()[:2] == ["first_semester", "enrollment"]
    assert frame.loc[0, "probability"] == 0.73
    assert bool(frame.loc[0, "at_risk"]) is True
    assert pd.isna(frame.loc[2, "at_risk"])
    assert frame.loc[2, "dead_letter_reason"] == "out_of_range"
    assert str(frame["scored_at"].dtype) == "datetime64[ns, UTC]"
    assert frame.loc[0, "scored_at"] == pd.Timestamp("2026-11-26T10:00:00Z")
    assert frame.loc[0, "Course"] == 171.0
    assert pd.isna(frame.loc[0, "Debtor"])
    assert frame["model_version"].tolist() == ["3", "3", "3"]
    assert captures.summary.records == 3
    assert captures.summary.skipped == 0


def test_replayed_batch_with_other_boundaries_counts_each_record_once(store: LocalStore) -> None:
    lines = [prediction_line(i, sequence=100 + i, scored_at=at("2026-11-26", 10)) for i in range(6)]
    put_batch(store, lines[:4])
    # After a restart the same records come again, cut differently and scored a bit later.
    replay = [
        prediction_line(i, sequence=100 + i, scored_at=at("2026-11-26", 11), version="4")
        for i in range(2, 6)
    ]
    put_batch(store, replay[:1])
    put_batch(store, replay[1:])
    put_batch(store, lines[4:])
    captures = read_captures(store)
    assert len(store.list("captures/")) == 4
    assert captures.summary.duplicates == 4
    assert captures.summary.records == 6
    assert sorted(captures.frame["student_id"]) == [str(i) for i in range(6)]
    # The first scoring is kept, whatever the listing order.
    assert set(captures.frame["model_version"]) == {"3"}


def test_a_prediction_is_kept_over_a_dead_letter_of_the_same_record(store: LocalStore) -> None:
    put_batch(store, [dead_letter_line(7, sequence=5, scored_at=at("2026-11-26", 9))])
    put_batch(store, [prediction_line(7, sequence=5, scored_at=at("2026-11-26", 10))])
    frame = read_captures(store).frame
    assert frame["outcome"].tolist() == ["prediction"]


def test_bad_objects_and_lines_are_counted_by_reason(store: LocalStore) -> None:
    good = prediction_line(1, sequence=1, scored_at=at("2026-11-26"))
    key = capture_key(MODEL, date(2026, 11, 26), "shardId-000000000002", ("9", 0), ("9", 0))
    bad_lines = [
        b"{not json",
        b"[1, 2]",
        orjson.dumps({**good, "schema": "dropout.capture.v0"}),
        orjson.dumps({k: v for k, v in good.items() if k != "scored_at"}),
        orjson.dumps({**good, "prediction": {**good["prediction"], "dropout_probability": 2}}),
        orjson.dumps({**good, "model": {"name": "other", "version": "1"}}),
        orjson.dumps({**good, "source": {**good["source"], "sequence_number": "77"}}),
        b"",
    ]
    store.put(key, gzip.compress(b"\n".join(bad_lines)))
    store.put(key.replace("9-0_9-0", "8-0_8-0"), b"plain text")
    store.put(key.replace("9-0_9-0", "7-0_7-0"), gzip.compress(b"x" * 100)[:20])
    store.put("captures/student-dropout/notes.txt", b"hello")
    store.put("captures/student-dropout/dt=2026-13-40/s/1-0_1-0.jsonl.gz", b"")
    captures = read_captures(store)
    summary = captures.summary
    assert summary.problems.by_reason() == {
        "corrupt_gzip": 1,
        "invalid_field": 1,
        "invalid_json": 1,
        "missing_field": 1,
        "model_mismatch": 1,
        "not_an_object": 1,
        "not_gzip": 1,
        "unexpected_key": 2,
        "wrong_schema": 1,
    }
    assert summary.records == 1  # the one good line
    assert summary.lines_read == 7
    assert summary.objects_listed == 5
    assert summary.objects_read == 1
    messages = [str(p) for p in summary.problems.examples]
    assert any("line 5" in m and "dropout_probability is 2" in m for m in messages)
    assert any("scored_at is missing" in m for m in messages)


def test_models_and_dates_filter_by_key(store: LocalStore) -> None:
    put_batch(store, [prediction_line(1, sequence=1, scored_at=at("2026-11-25"))])
    put_batch(store, [prediction_line(2, sequence=2, scored_at=at("2026-11-26"))])
    put_batch(store, [prediction_line(3, sequence=3, scored_at=at("2026-11-27"))])
    put_batch(
        store, [prediction_line(4, sequence=4, scored_at=at("2026-11-26"), model="m2")], model="m2"
    )
    ids = read_captures(store, since=date(2026, 11, 26), until=date(2026, 11, 26)).frame
    assert sorted(ids["student_id"]) == ["2", "4"]
    only = read_captures(store, models=["m2"]).frame
    assert only["student_id"].tolist() == ["4"]
    assert read_captures(store, models=[MODEL]).summary.records == 3


def test_an_empty_store_gives_an_empty_typed_frame(store: LocalStore) -> None:
    captures = read_captures(store, attribute_names=["GDP"])
    assert captures.frame.empty
    assert list(captures.frame.columns) == [*BASE_COLUMNS, "GDP"]
    assert str(captures.frame["scored_at"].dtype) == "datetime64[ns, UTC]"
