"""A labelled dataset an institution owns, in the UCI format the training job reads.

Rule, per student with an outcome (`read_outcomes`):

1. Candidates are the student's captured PREDICTIONS (never dead letters) made strictly before
   the outcome's decision date (`scored_at` earlier than midnight UTC of `decision_date`), as in
   the join rule: later records may already reflect the decision.
2. The most complete candidate is chosen: the latest stage (second_semester over
   first_semester over enrollment); among records of that stage the latest `scored_at` (then
   the latest source position, so the choice never depends on read order).
3. Only a COMPLETE chosen record (every one of `attribute_names` present) enters the file: the
   training job's validator requires every cell, and the training itself makes the partial
   (stage) views. Other students are counted by reason: `no_capture_before_decision` (never
   captured, or only on or after the decision date), `incomplete_record` (the chosen record
   lacks attributes), `invalid_value` (a whole-number attribute holds a fraction).

The file: semicolon-separated UTF-8 (no BOM, LF line ends), header = `attribute_names` in the
given order then `Target`; the target is the outcome label (Dropout, Graduate, Enrolled).
Whole-number attributes (`integer_attributes`; without it, every column whose values are all
whole) are written as integers, others as floats in Python's shortest round-trip form (`122.0`,
`13.666666666666666`, as in the UCI file). Rows are sorted by student id (numeric ids by value,
before other ids, then by text). The same inputs give byte-identical files; the file is named
by its content: `institution-<sha256[:12]>.csv`.

Provenance (student id, outcome source, decision date, model version, capture position) is NOT
a column of the file, so it can never leak into features; it is returned beside it, row for row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pandas as pd

from common.attributes import STAGE_RANK
from common.object_store import Store
from training.loop.problems import ProblemLog

TARGET: Final = "Target"
DATASETS_PREFIX: Final = "datasets/"
PROVENANCE_COLUMNS: Final = (
    "row",
    "student_id",
    "outcome",
    "decision_date",
    "outcome_source",
    "model_name",
    "model_version",
    "stage",
    "scored_at",
    "shard_id",
    "sequence_number",
    "sub_sequence_number",
)


@dataclass(frozen=True)
class DatasetSummary:
    students_with_outcome: int
    included: int
    excluded: ProblemLog = field(default_factory=ProblemLog)

    def excluded_by_reason(self) -> dict[str, int]:
        return self.excluded.by_reason()


@dataclass(frozen=True)
class LabelledDataset:
    """The file's bytes, its name and hash, the provenance of each row, and the summary."""

    content: bytes
    sha256: str
    name: str
    rows: int
    provenance: pd.DataFrame
    summary: DatasetSummary


def student_order(student_id: str) -> tuple[int, int, str]:
    """Numeric ids by value first, then other ids as text."""
    return (0, int(student_id), student_id) if student_id.isdigit() else (1, 0, student_id)


def build_dataset(
    captures: pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    attribute_names: Sequence[str],
    integer_attributes: Collection[str] | None = None,
) -> LabelledDataset:
    """Apply the rule (module docstring) to `read_captures(...).frame` and
    `read_outcomes(...).frame`."""
    names = list(attribute_names)
    if len(set(names)) != len(names) or TARGET in names:
        raise ValueError("attribute_names must be distinct and must not include the target")
    excluded = ProblemLog()
    chosen = _choose(captures, outcomes, names)
    for student in sorted(
        set(outcomes["student_id"]) - set(chosen["student_id"]), key=student_order
    ):
        excluded.add(
            "no_capture_before_decision",
            f"student {student!r}",
            "no prediction before the decision",
        )
    present = chosen.reindex(columns=names).notna()
    complete = present.all(axis=1)
    for _, row in chosen.loc[~complete].iterrows():
        missing = [n for n in names if pd.isna(row.get(n))]
        excluded.add(
            "incomplete_record",
            f"student {row['student_id']!r}",
            f"{len(missing)} of {len(names)} attributes missing at {row['stage']} "
            f"(first: {missing[0]!r})",
        )
    rows = chosen.loc[complete]
    integers = _integer_columns(rows, names, integer_attributes)
    fractional = _fractional(rows, integers)
    for _, row in rows.loc[fractional].iterrows():
        bad = [n for n in integers if not float(row[n]).is_integer()]
        excluded.add(
            "invalid_value", f"student {row['student_id']!r}", f"{bad[0]!r} is {row[bad[0]]!r}"
        )
    rows = rows.loc[~fractional]
    ids = [str(student) for student in rows["student_id"]]
    rows = rows.iloc[sorted(range(len(ids)), key=lambda i: student_order(ids[i]))]
    content = _render(rows, names, integers)
    digest = hashlib.sha256(content).hexdigest()
    provenance = (
        rows.drop(columns="outcome")  # the capture's kind ("prediction"), not the label
        .assign(row=range(1, len(rows) + 1))
        .rename(columns={"label": "outcome", "source": "outcome_source"})
    )
    return LabelledDataset(
        content=content,
        sha256=digest,
        name=f"institution-{digest[:12]}.csv",
        rows=len(rows),
        provenance=provenance.loc[:, list(PROVENANCE_COLUMNS)].reset_index(drop=True),
        summary=DatasetSummary(
            students_with_outcome=int(outcomes["student_id"].nunique()),
            included=len(rows),
            excluded=excluded,
        ),
    )


def _choose(captures: pd.DataFrame, outcomes: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    keep = (captures["outcome"] == "prediction") & captures["student_id"].notna()
    predictions = captures.loc[keep].reindex(
        columns=[*captures.columns, *[n for n in names if n not in captures.columns]]
    )
    labelled = predictions.merge(
        outcomes[["student_id", "outcome", "decision_date", "source"]].rename(
            columns={"outcome": "label"}
        ),
        on="student_id",
        how="inner",
        validate="many_to_one",
    )
    before = labelled.loc[labelled["scored_at"] < labelled["decision_date"]]
    ranked = before.assign(_stage=before["stage"].map(STAGE_RANK)).sort_values(
        ["_stage", "scored_at", "shard_id", "sequence_number", "sub_sequence_number"],
        kind="mergesort",
    )
    return ranked.groupby("student_id", sort=False).tail(1).drop(columns="_stage")


def _integer_columns(
    rows: pd.DataFrame, names: list[str], integer_attributes: Collection[str] | None
) -> list[str]:
    if integer_attributes is not None:
        unknown = set(integer_attributes) - set(names)
        if unknown:
            raise ValueError(f"integer_attributes not among attribute_names: {sorted(unknown)}")
        return [n for n in names if n in integer_attributes]
    return [n for n in names if all(float(v).is_integer() for v in rows[n])]


def _fractional(rows: pd.DataFrame, integers: list[str]) -> pd.Series:
    flags = pd.Series(False, index=rows.index)
    for name in integers:
        flags |= rows[name].map(lambda v: not float(v).is_integer())
    return flags


def _cell(value: float, integer: bool) -> str:
    if integer:
        return str(int(value))
    number = float(value)
    return repr(0.0 if number == 0 else number)  # no "-0.0"


def _render(rows: pd.DataFrame, names: list[str], integers: list[str]) -> bytes:
    whole = set(integers)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\n")
    writer.writerow([*names, TARGET])
    for _, row in rows.iterrows():
        values = [row[n] for n in names]
        if any(not math.isfinite(float(v)) for v in values):
            raise ValueError(f"student {row['student_id']!r} has a non-finite attribute")
        writer.writerow([*(_cell(row[n], n in whole) for n in names), row["label"]])
    return buffer.getvalue().encode("utf-8")


def write_dataset(dataset: LabelledDataset, destination: Store | str | Path) -> str:
    """Write the file into a store (`datasets/<name>`, only if absent: the name is the content)
    or a local folder (`<folder>/<name>`); returns the key or path written."""
    if isinstance(destination, str | Path):
        folder = Path(destination)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / dataset.name
        temp = path.with_name(f".{dataset.name}.tmp")
        temp.write_bytes(dataset.content)
        temp.replace(path)
        return str(path)
    key = f"{DATASETS_PREFIX}{dataset.name}"
    destination.put(key, dataset.content, if_absent=True)
    return key
