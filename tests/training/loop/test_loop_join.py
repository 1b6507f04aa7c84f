"""The join rule: last prediction per student and stage strictly before the decision date."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from common.object_store import LocalStore
from tests.training.loop.helpers import (
    at,
    dead_letter_line,
    prediction_line,
    put_batch,
    put_outcomes,
)
from training.loop.captures import read_captures
from training.loop.join import JOINED_COLUMNS, join_outcomes, pending_predictions
from training.loop.outcomes import read_outcomes

TODAY = date(2026, 12, 31)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    put_batch(
        store,
        [
            # student 1: two first-semester predictions by two versions, one enrollment one
            prediction_line(
                1,
                sequence=1,
                scored_at=at("2026-09-01"),
                stage="enrollment",
                probability=0.2,
                version="2",
            ),
            prediction_line(
                1, sequence=2, scored_at=at("2026-10-01"), probability=0.3, version="2"
            ),
            prediction_line(
                1, sequence=3, scored_at=at("2026-10-15"), probability=0.8, version="3"
            ),
            # after the decision: never counts
            prediction_line(
                1,
                sequence=4,
                scored_at=at("2026-11-30", 9),
                probability=0.99,
                stage="second_semester",
                version="3",
            ),
            # student 2: only a dead letter before the decision
            dead_letter_line(2, sequence=5, scored_at=at("2026-10-01")),
            # student 3: only predictions after the decision
            prediction_line(3, sequence=6, scored_at=at("2026-12-01"), probability=0.5),
            # student 4: no outcome yet: pending
            prediction_line(4, sequence=7, scored_at=at("2026-10-01"), probability=0.6),
            prediction_line(4, sequence=8, scored_at=at("2026-10-02"), probability=0.7),
            # student 5: graduate, one prediction the day before the decision
            prediction_line("s-5", sequence=9, scored_at=at("2026-11-29", 23), probability=0.1),
        ],
    )
    put_outcomes(
        store,
        "term.csv",
        [
            (1, "Dropout", "2026-11-30", "reg"),
            (2, "Dropout", "2026-11-30", "reg"),
            (3, "Graduate", "2026-11-30", "reg"),
            ("s-5", "Graduate", "2026-11-30", "reg"),
            (6, "Enrolled", "2026-11-30", "reg"),  # never captured
        ],
    )
    return store


def test_join_rule(store: LocalStore) -> None:
    captures = read_captures(store).frame
    outcomes = read_outcomes(store, today=TODAY).frame
    joined = join_outcomes(captures, outcomes)
    frame = joined.frame
    assert list(frame.columns) == list(JOINED_COLUMNS)
    rows = [
        (r.student_id, r.stage, r.model_version, r.probability, r.y_true, bool(r.at_risk))
        for r in frame.itertuples()
    ]
    assert rows == [
        ("1", "enrollment", "2", 0.2, 1, False),
        ("1", "first_semester", "3", 0.8, 1, True),  # the last one, by the later version
        ("s-5", "first_semester", "3", 0.1, 0, False),
    ]
    counts = joined.counts
    assert counts.students_with_outcome == 5
    assert counts.joined_students == 2
    assert counts.predicted_only_after_decision == 1  # student 3 (2 has only a dead letter)
    assert counts.never_captured == 2  # students 2 (dead letter only) and 6
    assert (frame["scored_at"] < frame["decision_date"]).all()


def test_a_prediction_at_midnight_of_the_decision_day_does_not_count(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    put_batch(store, [prediction_line(1, sequence=1, scored_at=at("2026-11-30", 0))])
    put_outcomes(store, "a.csv", [(1, "Dropout", "2026-11-30", "r")])
    joined = join_outcomes(read_captures(store).frame, read_outcomes(store, today=TODAY).frame)
    assert joined.frame.empty
    assert joined.counts.predicted_only_after_decision == 1


def test_pending_predictions_are_the_last_per_stage_of_students_without_outcome(
    store: LocalStore,
) -> None:
    pending = pending_predictions(
        read_captures(store).frame, read_outcomes(store, today=TODAY).frame
    )
    assert pending[["student_id", "stage", "probability"]].to_dict("records") == [
        {"student_id": "4", "stage": "first_semester", "probability": 0.7}
    ]


def test_empty_inputs_give_empty_frames(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    captures = read_captures(store).frame
    outcomes = read_outcomes(store, today=TODAY).frame
    joined = join_outcomes(captures, outcomes)
    assert joined.frame.empty
    assert list(joined.frame.columns) == list(JOINED_COLUMNS)
    assert pending_predictions(captures, outcomes).empty
    assert isinstance(joined.frame, pd.DataFrame)
