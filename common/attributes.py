"""The 36 UCI attributes as the product knows them: type, kind, sane domain, stage, required.

Shared by training (what a data file must hold, what the model is trained on) and the consumer
(through each model's contract.json, built from these). Ranges are authored here from the UCI
data dictionary (codes, grade scales, plausible economic values), never taken from the training
min/max, so a new institution's file is judged against what is possible rather than against
what one cohort happened to show. Plain data: no pandas, nothing done at import time but
building these tuples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Dtype = Literal["int", "float"]
Kind = Literal["categorical", "numeric"]
Stage = Literal["enrollment", "first_semester", "second_semester"]

STAGES: Final[tuple[Stage, ...]] = ("enrollment", "first_semester", "second_semester")
# Each stage's place in STAGES, to sort rows by stage.
STAGE_RANK: Final[dict[str, int]] = {stage: rank for rank, stage in enumerate(STAGES)}
TARGET: Final = "Target"
TARGET_LABELS: Final = ("Dropout", "Enrolled", "Graduate")
POSITIVE_LABEL: Final = "Dropout"


@dataclass(frozen=True)
class AttributeSpec:
    name: str
    dtype: Dtype
    kind: Kind
    min: float
    max: float
    stage: Stage
    required: bool = False
    # Nominal codes with many levels get a target-mean encoding; binary flags stay 0/1.
    encode: bool = False


def _cat(
    name: str, lo: int, hi: int, *, encode: bool = True, required: bool = False
) -> AttributeSpec:
    return AttributeSpec(name, "int", "categorical", lo, hi, "enrollment", required, encode)


def _flag(name: str, *, required: bool = False) -> AttributeSpec:
    return _cat(name, 0, 1, encode=False, required=required)


def _num(
    name: str, dtype: Dtype, lo: float, hi: float, stage: Stage = "enrollment"
) -> AttributeSpec:
    return AttributeSpec(name, dtype, "numeric", lo, hi, stage)


def _semester(ordinal: str, stage: Stage) -> list[AttributeSpec]:
    prefix = f"Curricular units {ordinal} sem"
    return [
        _num(f"{prefix} (credited)", "int", 0, 60, stage),
        _num(f"{prefix} (enrolled)", "int", 0, 60, stage),
        _num(f"{prefix} (evaluations)", "int", 0, 100, stage),
        _num(f"{prefix} (approved)", "int", 0, 60, stage),
        _num(f"{prefix} (grade)", "float", 0, 20, stage),  # Portuguese 0-20 scale
        _num(f"{prefix} (without evaluations)", "int", 0, 60, stage),
    ]


# File order of the UCI data set; this is also the frame order of the model's input.
ATTRIBUTES: Final[tuple[AttributeSpec, ...]] = (
    _cat("Marital status", 1, 6),
    _cat("Application mode", 1, 57),
    _num("Application order", "int", 0, 9),
    _cat("Course", 33, 9991),
    _flag("Daytime/evening attendance"),
    _cat("Previous qualification", 1, 43),
    _num("Previous qualification (grade)", "float", 0, 200),
    _cat("Nacionality", 1, 109),
    _cat("Mother's qualification", 1, 44),
    _cat("Father's qualification", 1, 44),
    _cat("Mother's occupation", 0, 195),
    _cat("Father's occupation", 0, 195),
    _num("Admission grade", "float", 0, 200),
    _flag("Displaced"),
    _flag("Educational special needs"),
    _flag("Debtor"),
    # The two administrative flags every institution knows from day one, see REQUIRED.
    _flag("Tuition fees up to date", required=True),
    _flag("Gender"),
    _flag("Scholarship holder", required=True),
    _num("Age at enrollment", "int", 15, 100),
    _flag("International"),
    *_semester("1st", "first_semester"),
    *_semester("2nd", "second_semester"),
    _num("Unemployment rate", "float", 0, 50),
    _num("Inflation rate", "float", -20, 50),
    _num("GDP", "float", -20, 20),
)

ATTRIBUTE_NAMES: Final[tuple[str, ...]] = tuple(a.name for a in ATTRIBUTES)
BY_NAME: Final[dict[str, AttributeSpec]] = {a.name: a for a in ATTRIBUTES}
REQUIRED: Final[tuple[str, ...]] = tuple(a.name for a in ATTRIBUTES if a.required)
OPTIONAL: Final[tuple[str, ...]] = tuple(a.name for a in ATTRIBUTES if not a.required)
ENCODED: Final[tuple[str, ...]] = tuple(a.name for a in ATTRIBUTES if a.encode)

# The attributes of the seed project's model and of the sample record producers already send.
SEED_FEATURES: Final[tuple[str, ...]] = (
    "GDP",
    "Inflation rate",
    "Tuition fees up to date",
    "Scholarship holder",
    "Curricular units 1st sem (approved)",
    "Curricular units 1st sem (enrolled)",
    "Curricular units 2nd sem (approved)",
)
SEED_RECORD: Final[dict[str, float]] = {
    "GDP": 1.74,
    "Inflation rate": 1.4,
    "Tuition fees up to date": 1,
    "Scholarship holder": 0,
    "Curricular units 1st sem (approved)": 5,
    "Curricular units 1st sem (enrolled)": 6,
    "Curricular units 2nd sem (approved)": 5,
}


def attributes_known_at(stage: Stage) -> tuple[str, ...]:
    """Attributes a record can carry at `stage` (those of that stage and every earlier one)."""
    upto = STAGES[: STAGES.index(stage) + 1]
    return tuple(a.name for a in ATTRIBUTES if a.stage in upto)
