"""Outcome files (`dropout.outcome.v1`): parse, validate, import into the store, read back.

A file is CSV (header `student_id,outcome,decision_date,source`, comma separated, UTF-8 with an
optional BOM; other columns are ignored) or JSON lines (one object per line with those keys and
an optional `"schema": "dropout.outcome.v1"`). The format is taken from the extension (`.csv`;
`.jsonl`, `.ndjson`, `.json`), else from the content (a first character `{` means JSON lines).

Row checks and their stable reason codes (a rejected row is reported, never silently dropped):

- `missing_field`: a key or CSV cell is absent, null or empty (also: the CSV header lacks it);
- `invalid_student_id`: not a non-negative integer nor a 1..128 character string;
- `unknown_outcome`: not Dropout, Graduate or Enrolled (matched ignoring case, then normalised);
- `invalid_date`: `decision_date` is not an ISO date `YYYY-MM-DD`;
- `future_date`: `decision_date` is after `today` (injectable, so tests and replays are fixed);
- `invalid_source`: `source` is not a 1..128 character string;
- `duplicate_student`: the same student more than once in one file with any difference
  (outcome, date or source): every such row is rejected, since no row can be trusted over the
  other; identical repeats are merged into one row and counted in `duplicates_merged`;
- `invalid_json`, `not_an_object`, `wrong_schema` (JSON lines); `malformed_row` (a CSV row with
  more cells than the header); `invalid_encoding` (the file is not UTF-8: every row is lost).

CSV cells are trimmed of surrounding whitespace (spreadsheet padding); JSON strings are taken as
they are. Student ids are compared as strings: JSON `256` and CSV `256` are the same student.

`import_outcomes` uploads the normalised valid rows as JSON lines under
`outcomes/import-<sha256 of the file>.jsonl`, written only if absent: importing the same file
again changes nothing. It refuses a file without any valid row.

Precedence in `read_outcomes` (every object under `outcomes/`: imports and files dropped there
as they are): per student, the row with the LATEST `decision_date` wins, whichever file it came
from (a later decision supersedes an earlier one, e.g. Enrolled at the end of a term, then
Dropout). Rows with that same latest date and the same outcome are one decision (the one from
the first key in key order is kept); with different outcomes the student is left out and
counted as `conflicting_outcomes`, since nothing says which is right.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, Literal

import orjson
import pandas as pd

from common.capture_format import OUTCOMES_PREFIX
from common.object_store import Store, StoreError
from common.wire import OUTCOME_LABELS, OUTCOME_SCHEMA
from training.loop.problems import InputError, ProblemLog, json_object

POSITIVE_OUTCOME: Final = "Dropout"
FIELDS: Final = ("student_id", "outcome", "decision_date", "source")
MAX_CHARS: Final = 128
OUTCOME_COLUMNS: Final = ("student_id", "outcome", "decision_date", "source", "object_key")
_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BY_LOWER: Final = {label.lower(): label for label in OUTCOME_LABELS}

Format = Literal["csv", "jsonl"]


@dataclass(frozen=True, order=True)
class OutcomeRow:
    """One validated outcome, normalised (student id as a string, outcome label capitalised)."""

    student_id: str
    outcome: str
    decision_date: date
    source: str

    def to_json(self) -> dict[str, str]:
        return {
            "schema": OUTCOME_SCHEMA,
            "student_id": self.student_id,
            "outcome": self.outcome,
            "decision_date": self.decision_date.isoformat(),
            "source": self.source,
        }


@dataclass
class ParsedOutcomes:
    """A file's valid rows and what was rejected (counts per reason, examples)."""

    name: str
    sha256: str
    format: Format
    rows: list[OutcomeRow]
    rows_total: int
    duplicates_merged: int = 0
    problems: ProblemLog = field(default_factory=ProblemLog)

    @property
    def rows_rejected(self) -> int:
        return self.problems.total


@dataclass(frozen=True)
class ImportSummary:
    """The result of `import_outcomes`."""

    file: str
    sha256: str
    format: Format
    rows_total: int
    rows_valid: int
    rows_rejected: int
    duplicates_merged: int
    rejected_by_reason: dict[str, int]
    examples: tuple[str, ...]
    key: str
    already_imported: bool


class OutcomeImportError(ValueError):
    """The file cannot be imported (no valid row); `parsed` says why, row by row."""

    def __init__(self, parsed: ParsedOutcomes) -> None:
        self.parsed = parsed
        super().__init__(
            f"{parsed.name}: no valid outcome rows in {parsed.rows_total} rows; nothing was "
            f"uploaded\n{parsed.problems.describe()}"
        )


@dataclass
class OutcomeReadSummary:
    """What `read_outcomes` read, rejected, superseded and left out."""

    objects_read: int = 0
    rows_total: int = 0
    rows_valid: int = 0
    duplicates_merged: int = 0
    superseded: int = 0
    problems: ProblemLog = field(default_factory=ProblemLog)
    conflicts: ProblemLog = field(default_factory=ProblemLog)


@dataclass(frozen=True)
class Outcomes:
    """One row per student (after precedence): `OUTCOME_COLUMNS`; `decision_date` is midnight
    UTC of the decision day, so it compares directly with capture times."""

    frame: pd.DataFrame
    summary: OutcomeReadSummary


def outcome_key(sha256: str) -> str:
    """The key an imported file's normalised rows are stored under."""
    return f"{OUTCOMES_PREFIX}import-{sha256}.jsonl"


def encode_outcomes(rows: Iterable[OutcomeRow]) -> bytes:
    """Normalised rows as JSON lines, sorted by student id: the same rows, the same bytes."""
    return b"".join(orjson.dumps(row.to_json()) + b"\n" for row in sorted(rows))


def detect_format(data: bytes, name: str) -> Format:
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    text = data.lstrip(b"\xef\xbb\xbf").lstrip()
    return "jsonl" if text.startswith(b"{") else "csv"


def parse_outcomes(data: bytes, *, name: str, today: date) -> ParsedOutcomes:
    """Validate every row of one file; `name` is used in messages and for format detection."""
    kind = detect_format(data, name)
    parsed = ParsedOutcomes(
        name=name, sha256=hashlib.sha256(data).hexdigest(), format=kind, rows=[], rows_total=0
    )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        parsed.problems.add("invalid_encoding", name, f"not UTF-8 text (byte {exc.start})")
        return parsed
    rows_of = _csv_rows if kind == "csv" else _json_rows
    candidates = rows_of(text, parsed, today)
    parsed.rows = _drop_duplicates(candidates, parsed)
    return parsed


def import_outcomes(path: str | Path, store: Store, *, today: date) -> ImportSummary:
    """Validate a local outcome file and upload its valid rows (see the module docstring).

    Raises `OutcomeImportError` (nothing uploaded) when the file has no valid row, and
    `StoreError` when the upload fails.
    """
    source = Path(path)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise OutcomeImportError(_unreadable(str(source), exc)) from exc
    parsed = parse_outcomes(data, name=str(source), today=today)
    if not parsed.rows:
        raise OutcomeImportError(parsed)
    key = outcome_key(parsed.sha256)
    written = store.put(key, encode_outcomes(parsed.rows), if_absent=True)
    return ImportSummary(
        file=str(source),
        sha256=parsed.sha256,
        format=parsed.format,
        rows_total=parsed.rows_total,
        rows_valid=len(parsed.rows),
        rows_rejected=parsed.rows_rejected,
        duplicates_merged=parsed.duplicates_merged,
        rejected_by_reason=parsed.problems.by_reason(),
        examples=tuple(str(problem) for problem in parsed.problems.examples),
        key=key,
        already_imported=not written,
    )


def read_outcomes(store: Store, *, today: date | None = None) -> Outcomes:
    """Every outcome under `outcomes/`, validated, with the precedence rule applied.

    `today` bounds decision dates (`future_date`); by default the current UTC date.
    """
    today = today if today is not None else datetime.now(tz=UTC).date()
    summary = OutcomeReadSummary()
    by_student: dict[str, list[tuple[OutcomeRow, str]]] = defaultdict(list)
    for key in store.list(OUTCOMES_PREFIX):
        if key.endswith("/"):
            continue  # a folder marker; it holds no data
        try:
            data = store.get(key)
        except StoreError as exc:
            summary.problems.add("unreadable_object", key, str(exc))
            continue
        parsed = parse_outcomes(data, name=key, today=today)
        summary.objects_read += 1
        summary.rows_total += parsed.rows_total
        summary.rows_valid += len(parsed.rows)
        summary.duplicates_merged += parsed.duplicates_merged
        summary.problems.extend(parsed.problems)
        for row in parsed.rows:
            by_student[row.student_id].append((row, key))
    chosen: list[dict[str, Any]] = []
    for student, entries in sorted(by_student.items()):
        latest = max(row.decision_date for row, _ in entries)
        top = [(row, key) for row, key in entries if row.decision_date == latest]
        summary.superseded += len(entries) - len(top)
        outcomes = sorted({row.outcome for row, _ in top})
        if len(outcomes) > 1:
            where = ", ".join(sorted({key for _, key in top}))
            summary.conflicts.add(
                "conflicting_outcomes",
                f"student {student!r}",
                f"{' and '.join(outcomes)} both decided on {latest.isoformat()} ({where})",
            )
            continue
        row, key = min(top, key=lambda entry: entry[1])
        chosen.append({**_row_dict(row), "object_key": key})
    return Outcomes(frame=_outcome_frame(chosen), summary=summary)


def _row_dict(row: OutcomeRow) -> dict[str, Any]:
    return {
        "student_id": row.student_id,
        "outcome": row.outcome,
        "decision_date": pd.Timestamp(row.decision_date, tz=UTC),
        "source": row.source,
    }


def _outcome_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=list(OUTCOME_COLUMNS))
    frame["student_id"] = frame["student_id"].astype("object")
    frame["decision_date"] = pd.to_datetime(frame["decision_date"], utc=True)
    return frame


def _unreadable(name: str, exc: OSError) -> ParsedOutcomes:
    parsed = ParsedOutcomes(name=name, sha256="", format="csv", rows=[], rows_total=0)
    parsed.problems.add("unreadable_file", name, str(exc))
    return parsed


# -- parsing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    row: OutcomeRow
    where: str


def _csv_rows(text: str, parsed: ParsedOutcomes, today: date) -> list[_Candidate]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    out: list[_Candidate] = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue  # blank lines carry nothing
        if header is None:
            header = [cell.strip().lower() for cell in cells]
            continue
        parsed.rows_total += 1
        where = f"{parsed.name} line {reader.line_num}"
        try:
            if len(cells) > len(header):
                raise InputError(
                    "malformed_row", f"{len(cells)} cells where the header has {len(header)}"
                )
            values = {
                name: cells[index].strip() if index < len(cells) else None
                for index, name in enumerate(header)
            }
            missing = [name for name in FIELDS if name not in header]
            if missing:
                raise InputError(
                    "missing_field", f"the header has no column {', '.join(map(repr, missing))}"
                )
            out.append(_Candidate(_validate(values, today), where))
        except InputError as bad:
            parsed.problems.add(bad.reason, where, bad.message)
    return out


def _json_rows(text: str, parsed: ParsedOutcomes, today: date) -> list[_Candidate]:
    out: list[_Candidate] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parsed.rows_total += 1
        where = f"{parsed.name} line {number}"
        try:
            record = json_object(line)
            schema = record.get("schema", OUTCOME_SCHEMA)
            if schema != OUTCOME_SCHEMA:
                raise InputError("wrong_schema", f"schema {schema!r}, expected {OUTCOME_SCHEMA!r}")
            out.append(_Candidate(_validate(record, today), where))
        except InputError as bad:
            parsed.problems.add(bad.reason, where, bad.message)
    return out


def _validate(values: Mapping[str, Any], today: date) -> OutcomeRow:
    for name in FIELDS:
        value = values.get(name)
        if value is None or value == "":
            raise InputError("missing_field", f"{name} is missing or empty")
    return OutcomeRow(
        student_id=_student_id(values["student_id"]),
        outcome=_outcome(values["outcome"]),
        decision_date=_decision_date(values["decision_date"], today),
        source=_source(values["source"]),
    )


def _student_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise InputError("invalid_student_id", f"student_id {value} is negative")
        return str(value)
    if not isinstance(value, str):
        raise InputError("invalid_student_id", f"student_id {value!r} is not an integer or string")
    if len(value) > MAX_CHARS:
        raise InputError("invalid_student_id", f"student_id has {len(value)} characters (max 128)")
    return value


def _outcome(value: Any) -> str:
    label = _BY_LOWER.get(value.strip().lower()) if isinstance(value, str) else None
    if label is None:
        raise InputError(
            "unknown_outcome", f"outcome {value!r} is not one of {', '.join(OUTCOME_LABELS)}"
        )
    return label


def _decision_date(value: Any, today: date) -> date:
    try:
        if not isinstance(value, str) or not _DATE.match(value):
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise InputError(
            "invalid_date", f"decision_date {value!r} is not a date YYYY-MM-DD"
        ) from None
    if day > today:
        raise InputError(
            "future_date", f"decision_date {value} is after today ({today.isoformat()})"
        )
    return day


def _source(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_CHARS:
        raise InputError("invalid_source", "source must be a string of 1 to 128 characters")
    return value


def _drop_duplicates(candidates: list[_Candidate], parsed: ParsedOutcomes) -> list[OutcomeRow]:
    groups: dict[str, list[_Candidate]] = defaultdict(list)
    for candidate in candidates:
        groups[candidate.row.student_id].append(candidate)
    kept: list[OutcomeRow] = []
    for student, group in groups.items():
        distinct = {candidate.row for candidate in group}
        if len(distinct) == 1:
            kept.append(group[0].row)
            parsed.duplicates_merged += len(group) - 1
            continue
        lines = ", ".join(candidate.where.rsplit(" ", 1)[-1] for candidate in group)
        for candidate in group:
            parsed.problems.add(
                "duplicate_student",
                candidate.where,
                f"student {student!r} appears on lines {lines} with different values "
                f"({candidate.row.outcome}, {candidate.row.decision_date.isoformat()}, "
                f"{candidate.row.source!r}); none is kept",
            )
    return sorted(kept)
