"""The labelled dataset: the documented choice of record, exclusions by reason, the UCI format
(rows byte-identical to the UCI file's own lines), a faithful re-read, a stable hash."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from common.object_store import LocalStore
from tests.training.loop.helpers import at, prediction_line, put_batch, put_outcomes, uci_header
from training.loop.captures import read_captures
from training.loop.dataset import build_dataset, write_dataset
from training.loop.outcomes import read_outcomes

TODAY = date(2026, 12, 31)
STUDENTS = 120
SEMESTER_2 = "Curricular units 2nd sem"


@pytest.fixture(scope="module")
def uci(uci_data_path: Path) -> tuple[list[str], list[list[str]], list[str]]:
    """Attribute names, the first data lines as cells, and the whole-number attributes."""
    names, _ = uci_header(uci_data_path)
    text = uci_data_path.read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))[1:]
    integers = [n for i, n in enumerate(names) if not any("." in row[i] for row in rows)]
    return names, rows[: STUDENTS + 10], integers


def attributes_of(names: list[str], cells: list[str]) -> dict[str, float | int]:
    return {
        name: (float(cell) if "." in cell else int(cell))
        for name, cell in zip(names, cells[:-1], strict=True)
    }


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, uci: tuple[list[str], list[list[str]], list[str]]
) -> LocalStore:
    names, rows, _ = uci
    store = LocalStore(tmp_path_factory.mktemp("dataset-store"))
    lines, outcomes = [], []
    first = [n for n in names if SEMESTER_2 not in n]
    for student, cells in enumerate(rows[:STUDENTS], start=1):
        full = attributes_of(names, cells)
        day = date(2026, 1, 1) + timedelta(days=student)
        partial = {n: v for n, v in full.items() if n in first}
        lines.append(
            prediction_line(
                student,
                sequence=3 * student,
                scored_at=at(day.isoformat()),
                stage="first_semester",
                attributes=partial,
            )
        )
        lines.append(
            prediction_line(
                student,
                sequence=3 * student + 1,
                scored_at=at((day + timedelta(days=30)).isoformat()),
                stage="second_semester",
                attributes=full,
            )
        )
        outcomes.append((student, cells[-1], "2026-11-30", "registrar-2026-T1"))
    # 1001: the latest second-semester record lacks an attribute -> incomplete_record
    full = attributes_of(names, rows[STUDENTS])
    lines.append(
        prediction_line(
            1001,
            sequence=9001,
            scored_at=at("2026-05-01"),
            stage="second_semester",
            attributes=full,
        )
    )
    lines.append(
        prediction_line(
            1001,
            sequence=9002,
            scored_at=at("2026-06-01"),
            stage="second_semester",
            attributes={k: v for k, v in full.items() if k != "GDP"},
        )
    )
    # 1002: complete, but only on the decision day -> no_capture_before_decision
    lines.append(
        prediction_line(
            1002,
            sequence=9003,
            scored_at=at("2026-11-30", 8),
            stage="second_semester",
            attributes=full,
        )
    )
    outcomes += [
        (1001, "Dropout", "2026-11-30", "r"),
        (1002, "Graduate", "2026-11-30", "r"),
        (1003, "Enrolled", "2026-11-30", "r"),
    ]  # 1003: never captured
    lines.sort(key=lambda line: line["scored_at"])
    for start in range(0, len(lines), 40):
        put_batch(store, lines[start : start + 40])
    put_outcomes(store, "registrar-2026-T1.csv", outcomes)
    return store


def build(store: LocalStore, names: list[str], integers: list[str] | None):
    captures = read_captures(store, attribute_names=names).frame
    outcomes = read_outcomes(store, today=TODAY).frame
    return build_dataset(captures, outcomes, attribute_names=names, integer_attributes=integers)


def test_rows_are_the_uci_lines_and_exclusions_are_counted(
    store: LocalStore, uci: tuple[list[str], list[list[str]], list[str]]
) -> None:
    names, rows, integers = uci
    dataset = build(store, names, integers)
    assert dataset.rows == STUDENTS
    summary = dataset.summary
    assert summary.students_with_outcome == STUDENTS + 3
    assert summary.included == STUDENTS
    assert summary.excluded_by_reason() == {
        "incomplete_record": 1,
        "no_capture_before_decision": 2,
    }
    assert "student '1001': 1 of 36 attributes missing at second_semester (first: 'GDP')" in [
        str(p).removesuffix(" [incomplete_record]") for p in summary.excluded.examples
    ]
    lines = dataset.content.decode().split("\n")
    assert lines[0].split(";") == [*names, "Target"]
    # Sorted by student id 1..120 (numerically), each line exactly the UCI file's line.
    assert lines[1:-1] == [";".join(cells) for cells in rows[:STUDENTS]]
    assert lines[-1] == ""
    assert dataset.name == f"institution-{hashlib.sha256(dataset.content).hexdigest()[:12]}.csv"


def test_re_read_gives_the_same_values_and_provenance_stays_outside(
    store: LocalStore, uci: tuple[list[str], list[list[str]], list[str]]
) -> None:
    names, rows, integers = uci
    dataset = build(store, names, integers)
    frame = pd.read_csv(io.BytesIO(dataset.content), sep=";")
    assert frame.shape == (STUDENTS, 37)
    assert list(frame.columns) == [*names, "Target"]
    expected = pd.DataFrame(
        [attributes_of(names, cells) | {"Target": cells[-1]} for cells in rows[:STUDENTS]]
    )
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
    for name in integers:
        assert frame[name].dtype == "int64", name
    assert "student_id" not in frame.columns
    provenance = dataset.provenance
    assert provenance["student_id"].tolist() == [str(i) for i in range(1, STUDENTS + 1)]
    assert set(provenance["stage"]) == {"second_semester"}
    assert set(provenance["outcome_source"]) == {"registrar-2026-T1"}
    assert provenance["outcome"].tolist() == frame["Target"].tolist()


def test_same_inputs_same_bytes_and_hash(
    store: LocalStore, uci: tuple[list[str], list[list[str]], list[str]], tmp_path: Path
) -> None:
    names, _, integers = uci
    first = build(store, names, integers)
    second = build(store, names, integers)
    assert first.content == second.content
    assert first.sha256 == second.sha256
    # The listing order of the store does not matter either: copy objects in reverse order.
    copy = LocalStore(tmp_path / "copy")
    for key in reversed(store.list()):
        copy.put(key, store.get(key))
    assert build(copy, names, integers).sha256 == first.sha256
    # Without the integer list, columns of whole values are written as integers.
    inferred = build(store, names, None)
    assert inferred.content == first.content  # no float column here is all whole numbers
    path = write_dataset(first, tmp_path / "out")
    assert Path(path).read_bytes() == first.content
    assert Path(path).name == first.name
    key = write_dataset(first, copy)
    assert key == f"datasets/{first.name}"
    assert copy.get(key) == first.content


def test_a_fraction_in_an_integer_attribute_is_excluded(
    store: LocalStore, uci: tuple[list[str], list[list[str]], list[str]]
) -> None:
    names, _, integers = uci
    captures = read_captures(store, attribute_names=names).frame
    captures.loc[captures["student_id"] == "7", "Course"] = 171.5
    outcomes = read_outcomes(store, today=TODAY).frame
    dataset = build_dataset(captures, outcomes, attribute_names=names, integer_attributes=integers)
    assert dataset.summary.excluded_by_reason()["invalid_value"] == 1
    assert "7" not in set(dataset.provenance["student_id"])
    with pytest.raises(ValueError, match="must not include the target"):
        build_dataset(captures, outcomes, attribute_names=[*names, "Target"])


_BUILD_IN_A_NEW_PROCESS = """
import json, sys
from datetime import date
from training.loop.captures import read_captures
from training.loop.dataset import build_dataset
from training.loop.outcomes import read_outcomes
from common.object_store import LocalStore
root, names, integers = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
store = LocalStore(root)
dataset = build_dataset(
    read_captures(store, attribute_names=names).frame,
    read_outcomes(store, today=date.fromisoformat(sys.argv[4])).frame,
    attribute_names=names,
    integer_attributes=integers,
)
print(dataset.sha256)
"""


def test_the_hash_is_stable_across_processes(
    store: LocalStore, uci: tuple[list[str], list[list[str]], list[str]]
) -> None:
    names, _, integers = uci
    expected = build(store, names, integers).sha256
    repo = Path(__file__).resolve().parents[3]
    for hash_seed in ("1", "2"):  # set and dict orders change with the hash seed
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                _BUILD_IN_A_NEW_PROCESS,
                str(store.root),
                json.dumps(names),
                json.dumps(integers),
                TODAY.isoformat(),
            ],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected
