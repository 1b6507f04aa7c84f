"""Student groups for the fairness audit: which attribute, which bounded set of labels.

A model of dropout risk is audited per group of students (EU AI Act, high-risk: education).
Each definition maps one UCI column to a small, fixed set of string labels plus `unknown` for a
missing or out-of-domain value, so the labels can be Prometheus label values and MLflow metric
name parts without ever growing with the data.

The definitions also have a plain JSON form: the consumer computes the same groups from a
model's contract with `common/groups.py` (`label_from_spec`, `assign_groups_from_json`), a
stand-alone reading of that JSON that shares no code with the typed path here but
`canonical_code` (the tests check both give identical labels on the UCI data). They are
re-exported here for training's callers.

Defaults and why:

- `gender` (`Gender`: 0 female, 1 male, as coded by UCI; the data has no other value).
- `age_band` (`Age at enrollment`, 17..70): "17-20" enters straight from secondary school
  (Portugal's 12th year ends at 17-18); "21-24" entered late, changed course or re-applied;
  "25-34" mature students, mostly through the over-23 access route ("Maiores de 23");
  "35+" adult learners with work or family duties. Bands are left-closed; the last is open to
  the oldest age (70 in the data). On the UCI file they hold 2,551 / 735 / 697 / 441 students,
  so every band is large enough for a stable rate; finer bands above 35 would not be.
- `nationality` (`Nacionality`: code 1 is Portuguese, every other code is "other"; 21 codes
  exist and most have under 15 students, so codes are not groups of their own).
- `international` (`International`) is defined but not selected by default: on every row of the
  UCI data it is exactly `Nacionality != 1`, so it would repeat the `nationality` figures and
  count the same disparity twice. Select it for data where the two differ.
- `displaced`, `special_needs`, `debtor`, `scholarship_holder`: the UCI yes/no flags (1 yes).
  `special_needs` has 51 students, so it is usually flagged small and shown, not gated on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, model_validator

from common.groups import (
    JSON_SCHEMA,
    LABEL_PATTERN,
    NAME_PATTERN,
    RESERVED_NAMES,
    UNKNOWN,
    assign_groups_from_json,
    canonical_code,
    check_columns,
    group_specs,
    label_from_spec,
)

__all__ = [
    "DEFAULT_GROUP_NAMES",
    "JSON_SCHEMA",
    "UNKNOWN",
    "GroupDefinition",
    "assign_groups",
    "assign_groups_from_json",
    "available_groups",
    "canonical_code",
    "definitions_from_json",
    "definitions_to_dicts",
    "definitions_to_json",
    "label_from_spec",
    "select_groups",
]


class GroupDefinition(BaseModel):
    """One sensitive attribute: a source column and its mapping to a bounded set of labels.

    Either `values` (code -> label, codes as canonical integer strings like "1"; codes not in
    the table get `other` if set, else `unknown`) or `bins` with `labels` (left-closed bands:
    `bins[i] <= value < bins[i+1]`, the last band open above; a value below `bins[0]` is
    `unknown`). A missing value is always `unknown`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    column: str
    description: str = ""
    values: dict[str, str] | None = None
    other: str | None = None
    bins: tuple[int | float, ...] | None = None
    labels: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not NAME_PATTERN.match(self.name) or self.name in RESERVED_NAMES:
            raise ValueError(f"group name {self.name!r} must be snake_case and not reserved")
        if (self.values is None) == (self.bins is None):
            raise ValueError(f"group {self.name!r}: give exactly one of values or bins")
        if self.values is not None:
            self._check_values(self.values)
        else:
            self._check_bins()
        for label in self.group_labels():
            if not LABEL_PATTERN.match(label):
                raise ValueError(f"group {self.name!r}: label {label!r} is not a short label")
        if UNKNOWN in self.group_labels()[:-1]:
            raise ValueError(f"group {self.name!r}: {UNKNOWN!r} is reserved for missing values")
        return self

    def _check_values(self, values: Mapping[str, str]) -> None:
        if not values:
            raise ValueError(f"group {self.name!r}: values is empty")
        for code in values:
            if canonical_code(code) != code:
                raise ValueError(f"group {self.name!r}: code {code!r} is not an integer string")
        if self.labels is not None:
            raise ValueError(f"group {self.name!r}: labels go with bins, not values")

    def _check_bins(self) -> None:
        bins, labels = self.bins or (), self.labels or ()
        if not bins or len(labels) != len(bins):
            raise ValueError(f"group {self.name!r}: bins and labels need the same, non-zero length")
        if any(not math.isfinite(b) for b in bins) or list(bins) != sorted(set(bins)):
            raise ValueError(f"group {self.name!r}: bins must be finite and strictly increasing")
        if self.other is not None:
            raise ValueError(f"group {self.name!r}: other goes with values, not bins")

    def group_labels(self) -> tuple[str, ...]:
        """Every label this definition can give, in display order, `unknown` last."""
        if self.labels is not None:
            found: list[str] = list(self.labels)
        else:
            found = list(dict.fromkeys((self.values or {}).values()))
            if self.other is not None and self.other not in found:
                found.append(self.other)
        return (*found, UNKNOWN)

    def assign(self, column: pd.Series) -> pd.Series:
        """The label of every value of `column` (same index), as Python strings."""
        numbers = pd.to_numeric(column, errors="coerce").astype("float64")
        labels = pd.Series(UNKNOWN, index=column.index, dtype=object)
        present = numbers.notna() & np.isfinite(numbers)
        if self.bins is not None:
            edges = np.asarray(self.bins, dtype="float64")
            position = np.searchsorted(edges, numbers[present].to_numpy(), side="right") - 1
            names = np.asarray([UNKNOWN, *(self.labels or ())], dtype=object)
            labels[present] = names[position + 1]
            return labels
        integral = present & (numbers == numbers.round())
        codes = numbers[integral].astype("int64").astype(str)
        mapped = codes.map(self.values or {})
        if self.other is not None:
            mapped = mapped.fillna(self.other)
        labels[integral] = mapped.fillna(UNKNOWN)
        return labels


def _flag(name: str, column: str, description: str) -> GroupDefinition:
    return GroupDefinition(
        name=name, column=column, description=description, values={"0": "no", "1": "yes"}
    )


def _builtin() -> dict[str, GroupDefinition]:
    definitions = [
        GroupDefinition(
            name="gender",
            column="Gender",
            description="Gender as coded by UCI (0 female, 1 male).",
            values={"0": "female", "1": "male"},
        ),
        GroupDefinition(
            name="age_band",
            column="Age at enrollment",
            description=(
                "Age at enrollment: 17-20 straight from secondary school, 21-24 delayed entry, "
                "25-34 mature students (over-23 access route), 35+ adult learners."
            ),
            bins=(17, 21, 25, 35),
            labels=("17-20", "21-24", "25-34", "35+"),
        ),
        GroupDefinition(
            name="nationality",
            column="Nacionality",
            description="Portuguese (code 1) or any other nationality.",
            values={"1": "portuguese"},
            other="other",
        ),
        _flag(
            "international",
            "International",
            "International student (UCI flag). Equal to nationality != Portuguese on the UCI "
            "data, hence not selected by default.",
        ),
        _flag("displaced", "Displaced", "Displaced: studying away from the home region."),
        _flag("special_needs", "Educational special needs", "Educational special needs."),
        _flag("debtor", "Debtor", "Debtor to the institution."),
        _flag("scholarship_holder", "Scholarship holder", "Scholarship holder."),
    ]
    return {d.name: d for d in definitions}


DEFAULT_GROUP_NAMES: Final = (
    "gender",
    "age_band",
    "nationality",
    "displaced",
    "special_needs",
    "debtor",
    "scholarship_holder",
)


def available_groups() -> dict[str, GroupDefinition]:
    """Every built-in definition by name (the default selection and `international`)."""
    return _builtin()


def select_groups(names: Iterable[str] | None = None) -> tuple[GroupDefinition, ...]:
    """The built-in definitions named in `names`, in that order (None: DEFAULT_GROUP_NAMES).

    Raises ValueError naming the valid names for an unknown, repeated or empty selection.
    """
    builtin = _builtin()
    chosen = list(DEFAULT_GROUP_NAMES if names is None else names)
    valid = ", ".join(builtin)
    unknown = [n for n in chosen if n not in builtin]
    if unknown:
        raise ValueError(f"unknown fairness group(s) {', '.join(unknown)}; valid names: {valid}")
    if not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(f"select each fairness group once, at least one; valid names: {valid}")
    return tuple(builtin[n] for n in chosen)


def assign_groups(frame: pd.DataFrame, definitions: Sequence[GroupDefinition]) -> pd.DataFrame:
    """One column of string labels per definition (named by it), one row per row of `frame`.

    Raises ValueError when a definition's column is not in `frame` (a configuration error: a
    missing value in a present column is a record's `unknown`, not an error).
    """
    check_columns(frame, [(d.name, d.column) for d in definitions])
    return pd.DataFrame({d.name: d.assign(frame[d.column]) for d in definitions}, index=frame.index)


# -- the plain JSON form -------------------------------------------------------------------------


def definitions_to_dicts(definitions: Sequence[GroupDefinition]) -> list[dict[str, Any]]:
    """Plain dicts: name, column, description, and values (+ other) or bins + labels."""
    return [d.model_dump(mode="json", exclude_none=True) for d in definitions]


def definitions_to_json(definitions: Sequence[GroupDefinition]) -> str:
    """The definitions as a JSON document (`schema`, `unknown`, `groups`) for a contract."""
    document = {
        "schema": JSON_SCHEMA,
        "unknown": UNKNOWN,
        "groups": definitions_to_dicts(definitions),
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def definitions_from_json(text: str) -> tuple[GroupDefinition, ...]:
    """The typed definitions back from `definitions_to_json` (validated)."""
    return tuple(GroupDefinition.model_validate(g) for g in group_specs(json.loads(text)))
