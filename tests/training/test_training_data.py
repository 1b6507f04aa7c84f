"""Reading and validating UCI-format files: every bad-file case names the file, column and row."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from common.attributes import ATTRIBUTE_NAMES
from common.data_files import DataFileError, local_source
from training.data.reading import Dataset, read_dataset
from training.errors import DataValidationError

BadFile = Callable[[Callable[[list[list[str]]], list[list[str]]]], Path]


def test_reads_the_uci_file(dataset: Dataset, uci_data_path: Path) -> None:
    assert dataset.features.shape == (4424, 36)
    assert list(dataset.features.columns) == list(ATTRIBUTE_NAMES)
    assert "Daytime/evening attendance" in dataset.features.columns  # trailing tab stripped
    assert (dataset.features.dtypes == "float64").all()
    assert dataset.labels.value_counts().to_dict() == {
        "Graduate": 2209,
        "Dropout": 1421,
        "Enrolled": 794,
    }
    assert int(dataset.target.sum()) == 1421
    assert dataset.source.sha256 == (
        "3ef126de5cefff26eb11fbb4237f1a1401cb64b488e2f1d598c23cedeb4c45ae"
    )


def test_accepts_lf_line_endings_without_bom(tmp_path: Path, uci_data_path: Path) -> None:
    text = uci_data_path.read_bytes().decode("utf-8-sig").replace("\r\n", "\n")
    path = tmp_path / "lf.csv"
    path.write_text(text, encoding="utf-8")
    assert read_dataset(local_source(path)).features.shape == (4424, 36)


@pytest.fixture
def rows(uci_data_path: Path) -> list[list[str]]:
    text = uci_data_path.read_bytes().decode("utf-8-sig")
    return [line.split(";") for line in text.split("\r\n") if line]


@pytest.fixture
def bad_file(tmp_path: Path, rows: list[list[str]]) -> BadFile:
    """Writes the real file after `change(rows)`; rows[0] is the header, rows[i] data row i."""

    def make(change: Callable[[list[list[str]]], list[list[str]]]) -> Path:
        changed = change([list(r) for r in rows])
        path = tmp_path / "students.csv"
        path.write_text("\r\n".join(";".join(r) for r in changed) + "\r\n", encoding="utf-8")
        return path

    return make


def _col(rows: list[list[str]], name: str) -> int:
    return [h.strip().strip('"').strip() for h in rows[0]].index(name)


def _set(row: int, column: str, value: str) -> Callable[[list[list[str]]], list[list[str]]]:
    def change(rows: list[list[str]]) -> list[list[str]]:
        rows[row][_col(rows, column)] = value
        return rows

    return change


def _drop_column(name: str) -> Callable[[list[list[str]]], list[list[str]]]:
    def change(rows: list[list[str]]) -> list[list[str]]:
        i = _col(rows, name)
        return [r[:i] + r[i + 1 :] for r in rows]

    return change


def _add_column(rows: list[list[str]]) -> list[list[str]]:
    return [[*rows[0], "Extra"]] + [[*r, "1"] for r in rows[1:]]


def _ragged(rows: list[list[str]]) -> list[list[str]]:
    rows[7] = rows[7][:-3]
    return rows


CASES = [
    # (id, change, expected column, expected row, words in the reason)
    ("missing column", _drop_column("GDP"), "GDP", None, "missing column"),
    ("extra column", _add_column, "Extra", None, "unexpected column"),
    ("non-numeric cell", _set(5, "Age at enrollment", "abc"), "Age at enrollment", 5, "'abc'"),
    ("empty cell", _set(12, "Admission grade", ""), "Admission grade", 12, "empty cell"),
    ("fraction in an int", _set(3, "Course", "9254.5"), "Course", 3, "integer"),
    ("out of range", _set(9, "Age at enrollment", "250"), "Age at enrollment", 9, "sane range"),
    ("bad target label", _set(10, "Target", "Droput"), "Target", 10, "unknown label 'Droput'"),
    ("ragged row", _ragged, None, 7, "fields"),
    ("too few rows", lambda rows: rows[:50], None, None, "training needs"),
    (
        "one class only",
        lambda rows: [rows[0], *[r for r in rows[1:] if r[-1] != "Dropout"]],
        "Target",
        None,
        "Dropout",
    ),
]


@pytest.mark.parametrize(
    ("change", "column", "row", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_file_names_file_column_and_row(
    bad_file: BadFile,
    change: Callable[[list[list[str]]], list[list[str]]],
    column: str | None,
    row: int | None,
    reason: str,
) -> None:
    path = bad_file(change)
    with pytest.raises(DataValidationError) as caught:
        read_dataset(local_source(path))
    error = caught.value
    assert error.file == str(path)
    assert error.column == column
    assert error.row == row
    assert reason in error.reason
    message = str(error)
    assert str(path) in message
    if column is not None:
        assert repr(column) in message
    if row is not None:
        assert f"row {row} (line {row + 1})" in message


def test_wrong_delimiter(tmp_path: Path, uci_data_path: Path) -> None:
    text = uci_data_path.read_bytes().decode("utf-8-sig").replace(";", ",")
    path = tmp_path / "comma.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataValidationError, match=r"single column.*','") as caught:
        read_dataset(local_source(path))
    assert caught.value.file == str(path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty"), (b"\r\n \r\n", "empty"), (b"\xff\xfe\x00junk", "not UTF-8")],
    ids=["zero bytes", "blank lines", "not text"],
)
def test_empty_or_binary_file(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(DataValidationError, match=reason):
        read_dataset(local_source(path))


def test_header_without_rows(tmp_path: Path, rows: list[list[str]]) -> None:
    path = tmp_path / "header.csv"
    path.write_text(";".join(rows[0]) + "\r\n", encoding="utf-8")
    with pytest.raises(DataValidationError, match="no data rows"):
        read_dataset(local_source(path))


def test_missing_local_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no such file"):
        local_source(tmp_path / "nope.csv")
