"""Outcome files: validation with reason codes, import (idempotent, refused when empty), and
the precedence rule when reading every import back."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson
import pandas as pd
import pytest

from common.object_store import LocalStore
from tests.training.loop.helpers import outcome_csv, put_outcomes
from training.loop.outcomes import (
    OutcomeImportError,
    encode_outcomes,
    import_outcomes,
    outcome_key,
    parse_outcomes,
    read_outcomes,
)
from training.loop.problems import ProblemLog

TODAY = date(2026, 12, 1)


def test_valid_csv_with_bom_and_padding() -> None:
    data = outcome_csv(
        [
            (256, "Dropout", "2026-11-30", "registrar-2026-T1"),
            (" s-1 ", "graduate", "2026-07-01", "r"),
        ],
        bom=True,
    )
    parsed = parse_outcomes(data, name="export.csv", today=TODAY)
    assert parsed.format == "csv"
    assert parsed.rows_total == 2
    assert parsed.rows_rejected == 0
    assert [(r.student_id, r.outcome, r.decision_date) for r in parsed.rows] == [
        ("256", "Dropout", date(2026, 11, 30)),
        ("s-1", "Graduate", date(2026, 7, 1)),
    ]


def test_every_bad_row_is_reported_with_a_reason_and_nothing_is_lost() -> None:
    data = (
        "student_id,outcome,decision_date,source\n"
        "1,Dropout,2026-11-01,r\n"  # valid
        ",Dropout,2026-11-01,r\n"  # missing_field
        "2,Expelled,2026-11-01,r\n"  # unknown_outcome
        "3,Graduate,01/11/2026,r\n"  # invalid_date
        "4,Graduate,2026-02-30,r\n"  # invalid_date (no such day)
        "5,Graduate,2027-01-01,r\n"  # future_date
        f"6,Graduate,2026-11-01,{'x' * 129}\n"  # invalid_source
        f"{'y' * 129},Graduate,2026-11-01,r\n"  # invalid_student_id
        "7,Dropout,2026-11-01,r\n"  # duplicate_student (conflict with the next)
        "7,Graduate,2026-11-01,r\n"  # duplicate_student
        "8,Enrolled,2026-11-01,r\n"  # valid, repeated identically below
        "8,Enrolled,2026-11-01,r\n"  # merged
        "9,Dropout,2026-11-01,r,extra\n"  # malformed_row
    ).encode()
    parsed = parse_outcomes(data, name="term.csv", today=TODAY)
    assert parsed.problems.by_reason() == {
        "duplicate_student": 2,
        "future_date": 1,
        "invalid_date": 2,
        "invalid_source": 1,
        "invalid_student_id": 1,
        "malformed_row": 1,
        "missing_field": 1,
        "unknown_outcome": 1,
    }
    assert [r.student_id for r in parsed.rows] == ["1", "8"]
    assert parsed.duplicates_merged == 1
    # Every row is accounted for: valid + rejected + merged.
    assert parsed.rows_total == len(parsed.rows) + parsed.rows_rejected + parsed.duplicates_merged
    messages = [str(p) for p in parsed.problems.examples]
    assert "term.csv line 3: student_id is missing or empty [missing_field]" in messages
    assert any(
        m.startswith("term.csv line 10: student '7' appears on lines 10, 11") for m in messages
    )
    assert any("line 7" in m and "after today (2026-12-01)" in m for m in messages)


def test_json_lines_with_typed_ids_and_schema() -> None:
    lines = [
        {
            "schema": "dropout.outcome.v1",
            "student_id": 256,
            "outcome": "Dropout",
            "decision_date": "2026-11-30",
            "source": "r",
        },
        {"student_id": "s-1", "outcome": "Enrolled", "decision_date": "2026-11-30", "source": "r"},
        {"student_id": -1, "outcome": "Enrolled", "decision_date": "2026-11-30", "source": "r"},
        {"student_id": 1.5, "outcome": "Enrolled", "decision_date": "2026-11-30", "source": "r"},
        {"student_id": 3, "outcome": "Enrolled", "decision_date": None, "source": "r"},
        {
            "schema": "dropout.outcome.v2",
            "student_id": 4,
            "outcome": "Enrolled",
            "decision_date": "2026-11-30",
            "source": "r",
        },
        [1],
    ]
    data = b"\n".join(orjson.dumps(line) for line in lines) + b"\n{broken\n\n"
    parsed = parse_outcomes(data, name="upload", today=TODAY)  # no extension: by content
    assert parsed.format == "jsonl"
    assert [r.student_id for r in parsed.rows] == ["256", "s-1"]
    assert parsed.problems.by_reason() == {
        "invalid_json": 1,
        "invalid_student_id": 2,
        "missing_field": 1,
        "not_an_object": 1,
        "wrong_schema": 1,
    }


def test_a_header_without_a_column_rejects_each_row_with_the_reason() -> None:
    data = b"student_id,outcome,source\n1,Dropout,r\n2,Dropout,r\n"
    parsed = parse_outcomes(data, name="no-date.csv", today=TODAY)
    assert parsed.rows == []
    assert parsed.problems.by_reason() == {"missing_field": 2}
    assert "the header has no column 'decision_date'" in str(parsed.problems.examples[0])


def test_not_utf8_is_reported() -> None:
    parsed = parse_outcomes(b"student_id\n\xff\xfe\n", name="latin.csv", today=TODAY)
    assert parsed.problems.by_reason() == {"invalid_encoding": 1}


def test_import_uploads_normalised_rows_once(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    path = tmp_path / "registrar-2026-T1.csv"
    path.write_bytes(
        outcome_csv(
            [
                (2, "dropout", "2026-11-30", "reg"),
                (1, "Graduate", "2026-11-30", "reg"),
                (3, "Unknown", "2026-11-30", "reg"),
            ]
        )
    )
    summary = import_outcomes(path, store, today=TODAY)
    assert (summary.rows_total, summary.rows_valid, summary.rows_rejected) == (3, 2, 1)
    assert summary.rejected_by_reason == {"unknown_outcome": 1}
    assert summary.key == outcome_key(summary.sha256)
    assert summary.key.startswith("outcomes/import-")
    assert summary.already_imported is False
    stored = [orjson.loads(line) for line in store.get(summary.key).splitlines()]
    assert stored == [
        {
            "schema": "dropout.outcome.v1",
            "student_id": "1",
            "outcome": "Graduate",
            "decision_date": "2026-11-30",
            "source": "reg",
        },
        {
            "schema": "dropout.outcome.v1",
            "student_id": "2",
            "outcome": "Dropout",
            "decision_date": "2026-11-30",
            "source": "reg",
        },
    ]
    again = import_outcomes(path, store, today=TODAY)
    assert again.already_imported is True
    assert again.key == summary.key
    assert store.list("outcomes/") == [summary.key]
    # The uploaded object is itself a valid outcome file.
    assert len(parse_outcomes(store.get(summary.key), name=summary.key, today=TODAY).rows) == 2


def test_import_refuses_a_file_without_valid_rows(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    path = tmp_path / "bad.csv"
    path.write_bytes(outcome_csv([(1, "Dropout", "2030-01-01", "r"), (2, "?", "2026-01-01", "r")]))
    with pytest.raises(OutcomeImportError) as caught:
        import_outcomes(path, store, today=TODAY)
    message = str(caught.value)
    assert "no valid outcome rows in 2 rows; nothing was uploaded" in message
    assert "future_date: 1, unknown_outcome: 1" in message
    assert store.list() == []
    with pytest.raises(OutcomeImportError, match="unreadable_file"):
        import_outcomes(tmp_path / "missing.csv", store, today=TODAY)


def test_read_outcomes_latest_decision_wins_and_same_day_conflicts_are_left_out(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "store")
    put_outcomes(
        store,
        "2026-T1.csv",
        [
            (1, "Enrolled", "2026-06-30", "T1"),
            (2, "Graduate", "2026-06-30", "T1"),
            (3, "Dropout", "2026-06-30", "T1"),
            (4, "Dropout", "2026-06-30", "T1"),
        ],
    )
    put_outcomes(
        store,
        "2026-T2.csv",
        [
            (1, "Dropout", "2026-11-30", "T2"),  # later: supersedes Enrolled
            (2, "Enrolled", "2026-01-15", "T2"),  # earlier: superseded by Graduate
            (3, "Graduate", "2026-06-30", "T2"),  # same day, other outcome: conflict
            (4, "Dropout", "2026-06-30", "T2b"),  # same day, same outcome: one decision
        ],
    )
    outcomes = read_outcomes(store, today=TODAY)
    frame = outcomes.frame.set_index("student_id")
    assert sorted(frame.index) == ["1", "2", "4"]
    assert frame.loc["1", "outcome"] == "Dropout"
    assert frame.loc["1", "decision_date"] == pd.Timestamp("2026-11-30", tz="UTC")
    assert frame.loc["2", "outcome"] == "Graduate"
    assert frame.loc["4", "source"] == "T1"  # the first key's row
    assert outcomes.summary.superseded == 2
    assert outcomes.summary.conflicts.by_reason() == {"conflicting_outcomes": 1}
    assert "Dropout and Graduate both decided on 2026-06-30" in str(
        outcomes.summary.conflicts.examples[0]
    )


def test_read_outcomes_reports_bad_rows_of_dropped_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.put(
        "outcomes/a.jsonl",
        encode_outcomes(
            parse_outcomes(
                outcome_csv([(1, "Dropout", "2026-11-01", "r")]), name="a.csv", today=TODAY
            ).rows
        ),
    )
    put_outcomes(store, "b.csv", [(2, "Maybe", "2026-11-01", "r")])
    outcomes = read_outcomes(store, today=TODAY)
    assert outcomes.frame["student_id"].tolist() == ["1"]
    assert outcomes.summary.problems.by_reason() == {"unknown_outcome": 1}
    assert outcomes.summary.objects_read == 2
    assert str(outcomes.frame["decision_date"].dtype) == "datetime64[ns, UTC]"


def test_problem_logs_merge_counts_and_keep_few_examples() -> None:
    first, second = ProblemLog(examples_per_reason=2), ProblemLog(examples_per_reason=2)
    for number in range(3):
        first.add("invalid_date", f"a.csv line {number}", "bad")
        second.add("invalid_date", f"b.csv line {number}", "bad")
    second.add("future_date", "b.csv line 9", "later")
    first.extend(second)
    assert first.by_reason() == {"future_date": 1, "invalid_date": 6}
    assert [p.where for p in first.examples] == ["a.csv line 0", "a.csv line 1", "b.csv line 9"]
    assert first.describe().startswith("future_date: 1, invalid_date: 6\n  a.csv line 0: bad")
