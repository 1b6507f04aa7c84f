"""`contract.json`: the data half of the registered model (docs/model-contract.md).

`build_contract` assembles it; `check_contract` applies the rules a consumer relies on, and runs
before anything is logged, so a broken contract never reaches the registry.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pandas as pd

from training.features import ModelKind, feature_label, feature_sources
from training.schema import ATTRIBUTE_NAMES, ATTRIBUTES, SEED_RECORD, STAGES, AttributeSpec

CONTRACT_VERSION: Final = 1
REFERENCE_BINS: Final = 10  # deciles for numeric attributes
CONTRIBUTION_METHODS: Final = ("tree_shap", "saabas", "linear")


def attribute_entry(spec: AttributeSpec, seen: pd.Series) -> dict[str, Any]:
    """One attribute of the schema; `seen` gives the valid codes of a categorical one."""
    number = int if spec.dtype == "int" else float
    categories = None
    if spec.kind == "categorical":
        categories = sorted(int(v) for v in np.unique(seen.dropna().to_numpy()))
    return {
        "name": spec.name,
        "dtype": spec.dtype,
        "kind": spec.kind,
        "categories": categories,
        "min": number(spec.min),
        "max": number(spec.max),
        "required": spec.required,
        "stage": spec.stage,
    }


def reference_distribution(values: pd.Series, spec: AttributeSpec) -> dict[str, Any]:
    """Bins of the training values for drift checks (numpy.histogram convention: bins are
    [edges[i], edges[i+1]) and the last one is closed). Categorical: one bin per code."""
    present = values.dropna().to_numpy(dtype="float64")
    missing_share = 1.0 - len(present) / len(values) if len(values) else 1.0
    if len(present) == 0:
        return {"edges": [], "proportions": [], "missing_share": 1.0}
    if spec.kind == "categorical":
        codes = np.unique(present)
        edges = np.concatenate([[codes[0] - 0.5], (codes[:-1] + codes[1:]) / 2, [codes[-1] + 0.5]])
    else:
        edges = np.unique(np.round(np.quantile(present, np.linspace(0, 1, REFERENCE_BINS + 1)), 6))
        if len(edges) < 2:
            edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    counts, _ = np.histogram(present, bins=edges)
    return {
        "edges": [round(float(e), 6) for e in edges],
        "proportions": [round(float(c) / len(present), 6) for c in counts],
        "missing_share": round(missing_share, 6),
    }


def wire_record(row: pd.Series) -> dict[str, float | int]:
    """A frame row as producers send it: present attributes only, codes and counts as ints."""
    out: dict[str, float | int] = {}
    for spec in ATTRIBUTES:
        value = row[spec.name]
        if pd.isna(value):
            continue
        out[spec.name] = int(value) if spec.dtype == "int" else float(value)
    return out


def example_records(x_train: pd.DataFrame, y_train: pd.Series) -> list[dict[str, float | int]]:
    """The seed's sample record, one student at enrollment and one complete record."""
    from training.schema import stage_view

    first_dropout = int(np.flatnonzero(y_train.to_numpy() == 1)[0])
    first_other = int(np.flatnonzero(y_train.to_numpy() == 0)[0])
    at_enrollment = stage_view(x_train.iloc[[first_other]], "enrollment").iloc[0]
    return [
        dict(SEED_RECORD),
        wire_record(at_enrollment),
        wire_record(x_train.iloc[first_dropout]),
    ]


def model_features(feature_names: list[str]) -> list[dict[str, Any]]:
    """Model features that are not raw attributes, with a readable label and their sources."""
    return [
        {"name": n, "label": feature_label(n), "sources": list(feature_sources(n))}
        for n in feature_names
        if n not in ATTRIBUTE_NAMES
    ]


def build_contract(
    *,
    model_name: str,
    model_kind: ModelKind,
    contributions: str,
    training: dict[str, Any],
    threshold: float,
    risk_bands: list[dict[str, Any]],
    top_k_factors: int,
    x_train: pd.DataFrame,
    code_domain: pd.DataFrame,
    feature_names: list[str],
    input_example: list[dict[str, float | int]],
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """Everything but `expected_example_output`, which the packaged model itself computes."""
    return {
        "contract_version": CONTRACT_VERSION,
        "model_name": model_name,
        "model_kind": model_kind,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "training": training,
        "threshold": threshold,
        "risk_bands": risk_bands,
        "top_k_factors": top_k_factors,
        "contributions": contributions,
        # Valid codes come from the whole validated file, not the training part: a student of a
        # course that happens to fall only in the held-out part is still a valid student. Codes
        # carry no label information; the model treats codes it never trained on as unseen.
        "attributes": [attribute_entry(spec, code_domain[spec.name]) for spec in ATTRIBUTES],
        "stages": list(STAGES),
        "features": model_features(feature_names),
        "reference": {
            spec.name: reference_distribution(x_train[spec.name], spec) for spec in ATTRIBUTES
        },
        "input_example": input_example,
        "expected_example_output": [],
        "metrics": _json_metrics(metrics),
    }


def _json_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = ("roc_auc", "f1_dropout", "brier", "precision", "recall")
    return {
        **{k: round(float(metrics[k]), 6) for k in keep},
        "per_stage": {
            stage: {k: round(float(v), 6) for k, v in values.items()}
            for stage, values in metrics["per_stage"].items()
        },
        "seed_subset": {k: round(float(v), 6) for k, v in metrics["seed_subset"].items()},
    }


# -- validation: the rules of docs/model-contract.md ------------------------------------------

_TOP_LEVEL: Final[dict[str, type | tuple[type, ...]]] = {
    "contract_version": int,
    "model_name": str,
    "model_kind": str,
    "created_at": str,
    "training": dict,
    "threshold": float,
    "risk_bands": list,
    "top_k_factors": int,
    "contributions": str,
    "attributes": list,
    "stages": list,
    "features": list,
    "reference": dict,
    "input_example": list,
    "expected_example_output": list,
    "metrics": dict,
}
_TRAINING_KEYS: Final = (
    "run_id",
    "data_sha256",
    "git_commit",
    "split_seed",
    "test_size",
    "n_train",
    "n_test",
)
_ATTRIBUTE_KEYS: Final = ("name", "dtype", "kind", "categories", "min", "max", "required", "stage")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_contract(contract: dict[str, Any]) -> list[str]:
    """Every broken rule, as readable strings; an empty list means the contract is valid."""
    problems: list[str] = []
    for key, kind in _TOP_LEVEL.items():
        if key not in contract:
            problems.append(f"missing field {key!r}")
        elif not isinstance(contract[key], kind) or isinstance(contract[key], bool):
            problems.append(f"field {key!r} is not a {kind}")
    if problems:
        return problems
    if contract["contract_version"] != CONTRACT_VERSION:
        problems.append(f"contract_version {contract['contract_version']} is not supported")
    problems += [f"training.{k} missing" for k in _TRAINING_KEYS if k not in contract["training"]]
    threshold = contract["threshold"]
    if not 0 < threshold < 1:
        problems.append(f"threshold {threshold} is not in (0, 1)")
    problems += _check_bands(contract["risk_bands"], threshold)
    if contract["contributions"] not in CONTRIBUTION_METHODS:
        problems.append(f"contributions {contract['contributions']!r} is unknown")
    if contract["top_k_factors"] < 1:
        problems.append("top_k_factors must be at least 1")
    if contract["stages"] != list(STAGES):
        problems.append(f"stages must be {list(STAGES)}")
    problems += _check_attributes(contract["attributes"])
    problems += _check_reference(contract["reference"])
    names = set(ATTRIBUTE_NAMES)
    for feature in contract["features"]:
        if not {"name", "label", "sources"} <= set(feature):
            problems.append(f"feature {feature} lacks name/label/sources")
        elif not set(feature["sources"]) <= names:
            problems.append(f"feature {feature['name']!r} has unknown sources")
    examples, expected = contract["input_example"], contract["expected_example_output"]
    if not examples or len(examples) != len(expected):
        problems.append("input_example and expected_example_output must pair up (non-empty)")
    for record in examples:
        if not set(record) <= names:
            problems.append(f"input_example has unknown attributes {set(record) - names}")
    if not all(_is_number(p) and 0 <= p <= 1 for p in expected):
        problems.append("expected_example_output must be probabilities")
    for key in ("roc_auc", "f1_dropout", "brier", "per_stage"):
        if key not in contract["metrics"]:
            problems.append(f"metrics.{key} missing")
    return problems


def _check_bands(bands: list[dict[str, Any]], threshold: float) -> list[str]:
    problems = []
    if not bands:
        return ["risk_bands is empty"]
    if bands[0].get("lower") != 0.0 or bands[-1].get("upper") != 1.0:
        problems.append("risk_bands must start at 0.0 and end at 1.0")
    for left, right in itertools.pairwise(bands):
        if left.get("upper") != right.get("lower"):
            problems.append(f"risk bands {left.get('name')} and {right.get('name')} do not meet")
    for band in bands:
        if not (isinstance(band.get("name"), str) and band["lower"] < band["upper"]):
            problems.append(f"risk band {band} is malformed")
    if bands[-1].get("lower") != threshold:
        problems.append("the last (highest) band must start at the threshold")
    return problems


def _check_attributes(attributes: list[dict[str, Any]]) -> list[str]:
    problems = []
    if [a.get("name") for a in attributes] != list(ATTRIBUTE_NAMES):
        problems.append("attributes must list the 36 UCI attributes in frame order")
    for a in attributes:
        missing = [k for k in _ATTRIBUTE_KEYS if k not in a]
        if missing:
            problems.append(f"attribute {a.get('name')!r} lacks {missing}")
            continue
        name = a["name"]
        if a["dtype"] not in ("int", "float") or a["kind"] not in ("categorical", "numeric"):
            problems.append(f"attribute {name!r} has a bad dtype or kind")
        if not (_is_number(a["min"]) and _is_number(a["max"]) and a["min"] <= a["max"]):
            problems.append(f"attribute {name!r} has bad bounds")
        if not isinstance(a["required"], bool) or a["stage"] not in STAGES:
            problems.append(f"attribute {name!r} has a bad required flag or stage")
        if a["kind"] == "categorical":
            cats = a["categories"]
            if not cats or not all(isinstance(c, int) and a["min"] <= c <= a["max"] for c in cats):
                problems.append(f"attribute {name!r} needs integer categories within bounds")
        elif a["categories"] is not None:
            problems.append(f"numeric attribute {name!r} must have categories null")
    return problems


def _check_reference(reference: dict[str, Any]) -> list[str]:
    problems = []
    if set(reference) != set(ATTRIBUTE_NAMES):
        problems.append("reference must cover exactly the 36 attributes")
    for name, ref in reference.items():
        edges, props = ref.get("edges", []), ref.get("proportions", [])
        share = ref.get("missing_share")
        if not (_is_number(share) and 0 <= share <= 1):
            problems.append(f"reference {name!r}: missing_share must be in [0, 1]")
        if share == 1.0 and not edges:
            continue
        if len(edges) != len(props) + 1 or any(b <= a for a, b in itertools.pairwise(edges)):
            problems.append(f"reference {name!r}: edges must increase and be one more than bins")
        if abs(sum(props) - 1.0) > 1e-3:
            problems.append(f"reference {name!r}: proportions must sum to 1")
    return problems
