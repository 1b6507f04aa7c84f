"""The model contract (`artifacts/contract.json`, docs/model-contract.md), with every rule in
one place.

The training job builds the contract and validates it with `Contract` before anything is
logged; the consumer validates the same file with the same model before any code of the model
runs (a contract it does not accept makes the version `incompatible`). `registration_problems`
adds what only a new version must also satisfy: a usable drift reference for every attribute
(an older or newer model whose reference the consumer cannot read only loses drift for those
attributes). Types are strict: a string is never a number and a boolean never an integer.
Unknown extra fields are ignored, so additive changes stay compatible.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.attributes import ATTRIBUTE_NAMES, STAGES

CONTRACT_VERSION: Final = 1
SUPPORTED_CONTRACT_VERSIONS: Final = (1,)
CONTRACT_PATH: Final = Path("artifacts") / "contract.json"
CONTRIBUTION_METHODS: Final = ("tree_shap", "saabas", "linear")
REQUIRED_METRICS: Final = ("roc_auc", "f1_dropout", "brier", "per_stage")
_KNOWN: Final = frozenset(ATTRIBUTE_NAMES)


class ContractError(ValueError):
    """contract.json is missing, unreadable or breaks a rule; the message says which."""


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class Attribute(_Strict):
    name: str
    dtype: Literal["int", "float"]
    kind: Literal["numeric", "categorical"]
    categories: list[float] | None = None
    min: float
    max: float
    required: bool
    stage: Literal["enrollment", "first_semester", "second_semester"]

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
            if any(not self.min <= c <= self.max for c in self.categories):
                raise ValueError(f"{self.name}: categories must lie within [min, max]")
        elif self.categories is not None:
            raise ValueError(f"{self.name}: a numeric attribute has categories null")
        return self


class RiskBand(_Strict):
    name: str = Field(min_length=1)
    lower: float
    upper: float


class Feature(_Strict):
    """A model feature that is not a raw attribute: its readable label and source attributes."""

    name: str
    label: str
    sources: list[str]


class TrainingInfo(BaseModel):
    """Where the version came from. Lenient: a later job may add provenance fields."""

    model_config = ConfigDict(strict=True, frozen=True, extra="allow")

    run_id: str
    data_sha256: str
    git_commit: str
    split_seed: int
    test_size: float
    n_train: int
    n_test: int


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
            if any(b <= a for a, b in itertools.pairwise(self.edges)):
                raise ValueError("edges must increase")
        if self.categories is not None and len(self.categories) != len(self.proportions):
            raise ValueError("len(categories) must be len(proportions)")
        if not self.proportions or any(p < 0 for p in self.proportions):
            raise ValueError("proportions must be non-empty and non-negative")
        if abs(sum(self.proportions) - 1.0) > 1e-3:
            raise ValueError("proportions must sum to 1")
        if not 0.0 <= self.missing_share <= 1.0:
            raise ValueError("missing_share must be in [0, 1]")
        return self


class Contract(_Strict):
    contract_version: int
    model_name: str = Field(min_length=1)
    model_kind: str
    created_at: str
    training: TrainingInfo
    threshold: float
    risk_bands: list[RiskBand]
    top_k_factors: int = Field(ge=1)
    contributions: Literal["tree_shap", "saabas", "linear"]
    attributes: list[Attribute]
    stages: list[str]
    features: list[Feature] = Field(default_factory=list)
    # Parsed leniently: see `drift_references`.
    reference: dict[str, Any] = Field(default_factory=dict)
    input_example: list[dict[str, Any]]
    expected_example_output: list[float]
    metrics: dict[str, Any]
    # Optional sections, used when present: the student groups and their training flag rates
    # (fairness, watched live per group), and the calibration map of the held-out predictions
    # (the learning loop's performance estimate while outcomes are pending).
    fairness: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> Contract:
        if self.contract_version not in SUPPORTED_CONTRACT_VERSIONS:
            raise ValueError(f"contract_version {self.contract_version} is not supported")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        self._check_bands()
        names = [a.name for a in self.attributes]
        if len(set(names)) != len(names):
            raise ValueError("attributes must be distinct")
        if names != list(ATTRIBUTE_NAMES):
            raise ValueError("attributes must list the 36 UCI attributes in the data file's order")
        if self.stages != list(STAGES):
            raise ValueError(f"stages must be {list(STAGES)}")
        for feature in self.features:
            if not set(feature.sources) <= _KNOWN:
                raise ValueError(f"feature {feature.name!r} has unknown sources")
        if not self.input_example or len(self.input_example) != len(self.expected_example_output):
            raise ValueError("input_example and expected_example_output must pair one to one")
        for record in self.input_example:
            if not set(record) <= _KNOWN:
                raise ValueError(f"input_example has unknown attributes {set(record) - _KNOWN}")
        if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in self.expected_example_output):
            raise ValueError("expected_example_output must be probabilities")
        missing = [key for key in REQUIRED_METRICS if key not in self.metrics]
        if missing:
            raise ValueError(f"metrics lacks {missing}")
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
        if len({band.name for band in bands}) != len(bands):
            raise ValueError("risk band names must be distinct")
        if bands[-1].lower != self.threshold:
            raise ValueError("the highest risk band must start at the threshold")

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
            if isinstance(raw, dict) and raw.get("missing_share") == 1.0 and not raw.get("edges"):
                problems[name] = "no training value (missing in every row)"
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


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "contract"
    return f"contract.json: {where}: {first['msg']} ({exc.error_count()} error(s))"


def parse_contract(raw: bytes | str) -> Contract:
    """Validates contract.json content; raises ContractError with a readable reason."""
    try:
        return Contract.model_validate_json(raw)
    except ValidationError as exc:
        raise ContractError(_first_error(exc)) from exc


def validate_contract(contract: dict[str, Any]) -> Contract:
    """Validates a contract built in memory (JSON types: as the file will hold it)."""
    import json

    return parse_contract(json.dumps(contract))


def registration_problems(contract: Contract) -> list[str]:
    """What a new version must also satisfy: a usable reference for every attribute (or, for
    an attribute no training row had, a reference that says so)."""
    usable, problems = contract.drift_references()
    never_seen = {
        name
        for name, raw in contract.reference.items()
        if isinstance(raw, dict) and raw.get("missing_share") == 1.0 and not raw.get("edges")
    }
    found = [
        f"reference of {name!r}: {why}" for name, why in problems.items() if name not in never_seen
    ]
    found += [
        f"reference of {name!r} is missing"
        for name in contract.attribute_names
        if name not in usable and name not in problems and name not in never_seen
    ]
    return found


def load_contract(model_dir: Path) -> Contract:
    """Reads and validates `<model_dir>/artifacts/contract.json` without running model code."""
    path = model_dir / CONTRACT_PATH
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ContractError(f"cannot read {CONTRACT_PATH}: {exc.strerror or exc}") from exc
    return parse_contract(raw)
