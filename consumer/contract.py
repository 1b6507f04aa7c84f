"""The model contract (`artifacts/contract.json`, docs/model-contract.md), read as pure data.

`load_contract` validates the file with pydantic (strict types) before any code of the model
runs: a contract this consumer does not understand makes the version `incompatible`.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SUPPORTED_CONTRACT_VERSIONS = (1,)
CONTRACT_PATH = Path("artifacts") / "contract.json"

# The 36 UCI attribute names, trimmed (the UCI header has a trailing tab on one of them).
UCI_ATTRIBUTES: tuple[str, ...] = (
    "Marital status",
    "Application mode",
    "Application order",
    "Course",
    "Daytime/evening attendance",
    "Previous qualification",
    "Previous qualification (grade)",
    "Nacionality",
    "Mother's qualification",
    "Father's qualification",
    "Mother's occupation",
    "Father's occupation",
    "Admission grade",
    "Displaced",
    "Educational special needs",
    "Debtor",
    "Tuition fees up to date",
    "Gender",
    "Scholarship holder",
    "Age at enrollment",
    "International",
    "Curricular units 1st sem (credited)",
    "Curricular units 1st sem (enrolled)",
    "Curricular units 1st sem (evaluations)",
    "Curricular units 1st sem (approved)",
    "Curricular units 1st sem (grade)",
    "Curricular units 1st sem (without evaluations)",
    "Curricular units 2nd sem (credited)",
    "Curricular units 2nd sem (enrolled)",
    "Curricular units 2nd sem (evaluations)",
    "Curricular units 2nd sem (approved)",
    "Curricular units 2nd sem (grade)",
    "Curricular units 2nd sem (without evaluations)",
    "Unemployment rate",
    "Inflation rate",
    "GDP",
)
_KNOWN = frozenset(UCI_ATTRIBUTES)


class ContractError(ValueError):
    """contract.json is missing, unreadable or not a contract this consumer supports."""


class _Strict(BaseModel):
    # Unknown extra fields are ignored (additive changes stay compatible); types are strict:
    # a string is never a number and a boolean never an integer.
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class Attribute(_Strict):
    name: str
    dtype: Literal["int", "float"]
    kind: Literal["numeric", "categorical"]
    categories: list[float] | None = None
    min: float
    max: float
    required: bool
    stage: str

    @model_validator(mode="after")
    def _check(self) -> Attribute:
        if self.name not in _KNOWN:
            raise ValueError(f"unknown attribute name {self.name!r}")
        if not (math.isfinite(self.min) and math.isfinite(self.max) and self.min <= self.max):
            raise ValueError(f"{self.name}: min/max must be finite with min <= max")
        if self.kind == "categorical":
            if not self.categories:
                raise ValueError(f"{self.name}: a categorical attribute needs categories")
            if self.dtype == "int" and any(not float(c).is_integer() for c in self.categories):
                raise ValueError(f"{self.name}: categories of an int attribute must be integers")
        return self


class RiskBand(_Strict):
    name: str = Field(min_length=1)
    lower: float
    upper: float


class Reference(_Strict):
    """Training distribution of one attribute (for drift).

    Either `edges` (ascending bin edges, numpy.histogram bins: [e_i, e_i+1), the last closed;
    `len(edges) == len(proportions) + 1`) or `categories` (one proportion per code).
    """

    edges: list[float] | None = None
    categories: list[float] | None = None
    proportions: list[float]
    missing_share: float = 0.0

    @model_validator(mode="after")
    def _check(self) -> Reference:
        if (self.edges is None) == (self.categories is None):
            raise ValueError("a reference needs exactly one of edges or categories")
        if self.edges is not None:
            if len(self.edges) != len(self.proportions) + 1:
                raise ValueError("len(edges) must be len(proportions) + 1")
            if any(b < a for a, b in zip(self.edges, self.edges[1:], strict=False)):
                raise ValueError("edges must be ascending")
        if self.categories is not None and len(self.categories) != len(self.proportions):
            raise ValueError("len(categories) must be len(proportions)")
        if not self.proportions or any(p < 0 for p in self.proportions):
            raise ValueError("proportions must be non-empty and non-negative")
        return self


class Contract(_Strict):
    contract_version: int
    model_name: str
    model_kind: str
    created_at: str
    training: dict[str, Any] = Field(default_factory=dict)
    threshold: float
    risk_bands: list[RiskBand]
    top_k_factors: int = Field(ge=0)
    contributions: str
    attributes: list[Attribute]
    stages: list[str]
    features: list[dict[str, Any]] = Field(default_factory=list)
    # Parsed leniently: a reference the consumer cannot read only disables drift for that
    # attribute (see `drift_references`); it never makes a model unservable.
    reference: dict[str, Any] = Field(default_factory=dict)
    input_example: list[dict[str, Any]]
    expected_example_output: list[float]
    metrics: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Contract:
        if self.contract_version not in SUPPORTED_CONTRACT_VERSIONS:
            raise ValueError(f"contract_version {self.contract_version} is not supported")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        self._check_bands()
        names = [a.name for a in self.attributes]
        if not names or len(set(names)) != len(names):
            raise ValueError("attributes must be a non-empty list of distinct names")
        if not self.stages or len(set(self.stages)) != len(self.stages):
            raise ValueError("stages must be a non-empty list of distinct names")
        for attribute in self.attributes:
            if attribute.stage not in self.stages:
                raise ValueError(f"{attribute.name}: stage {attribute.stage!r} is not in stages")
        if not self.input_example or len(self.input_example) != len(self.expected_example_output):
            raise ValueError("input_example and expected_example_output must pair one to one")
        return self

    def _check_bands(self) -> None:
        bands = self.risk_bands
        if not bands:
            raise ValueError("risk_bands must not be empty")
        if bands[0].lower != 0.0 or bands[-1].upper != 1.0:
            raise ValueError("risk_bands must cover [0, 1]")
        for band in bands:
            if not band.lower < band.upper:
                raise ValueError(f"risk band {band.name!r}: lower must be below upper")
        for left, right in itertools.pairwise(bands):
            if left.upper != right.lower:
                raise ValueError("risk_bands must be contiguous")

    @property
    def attribute_names(self) -> list[str]:
        return [a.name for a in self.attributes]

    def drift_references(self) -> tuple[dict[str, Reference], dict[str, str]]:
        """The readable references of the model's attributes, and why the others are not."""
        names = set(self.attribute_names)
        usable: dict[str, Reference] = {}
        problems: dict[str, str] = {}
        for name, raw in self.reference.items():
            if name not in names:
                problems[name] = "not an attribute of the model"
                continue
            try:
                usable[name] = Reference.model_validate(raw, strict=False)
            except ValidationError as exc:
                problems[name] = str(exc.errors()[0]["msg"])
        return usable, problems

    def band_for(self, probability: float) -> str:
        """The band a probability falls in (lower bound inclusive, the last band closed)."""
        for band in self.risk_bands:
            if probability < band.upper:
                return band.name
        return self.risk_bands[-1].name


def parse_contract(raw: bytes | str) -> Contract:
    """Validates contract.json content; raises ContractError with a readable reason."""
    try:
        return Contract.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "contract"
        raise ContractError(
            f"contract.json: {where}: {first['msg']} ({exc.error_count()} error(s))"
        ) from exc


def load_contract(model_dir: Path) -> Contract:
    """Reads and validates `<model_dir>/artifacts/contract.json` without running model code."""
    path = model_dir / CONTRACT_PATH
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ContractError(f"cannot read {CONTRACT_PATH}: {exc.strerror or exc}") from exc
    return parse_contract(raw)
