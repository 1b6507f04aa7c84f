"""`contract.json`: the data half of the registered model (docs/model-contract.md).

`build_contract` assembles it; `check_contract` applies the rules of common/contract.py (the
same ones the consumer applies when it loads the version) before anything is logged, so a
broken contract never reaches the registry.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pandas as pd

from common.attributes import ATTRIBUTE_NAMES, ATTRIBUTES, SEED_RECORD, STAGES, AttributeSpec
from common.contract import (
    CONTRACT_VERSION,
    ContractError,
    registration_problems,
    validate_contract,
)
from training.features.pipeline import ModelKind, feature_label, feature_sources

REFERENCE_BINS: Final = 10  # deciles for numeric attributes


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
    from training.data.views import stage_view

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


def calibration_section(pipeline: Any, x_test: pd.DataFrame, y_test: pd.Series) -> dict[str, Any]:
    """The isotonic map of the held-out predictions (the three stage views pooled, as live
    traffic mixes them), for the learning loop's CBPE estimate (training/loop/estimate.py)."""
    from training.data.views import stage_view
    from training.loop.estimate import fit_calibrator

    probabilities = np.concatenate(
        [pipeline.predict_proba(stage_view(x_test, stage))[:, 1] for stage in STAGES]
    )
    labels = np.tile(y_test.to_numpy(), len(STAGES))
    return {
        "method": "isotonic, as NannyML's CBPE calibrates",
        "fitted_on": "held-out split, the three stage views pooled",
        "rows": len(labels),
        "calibrator": fit_calibrator(probabilities, labels).to_dict(),
    }


# -- validation: the rules live in common/contract.py ------------------------------------------


def check_contract(contract: dict[str, Any]) -> list[str]:
    """Every broken rule (common/contract.py), as readable strings; empty means valid.

    The rules are the consumer's own, plus what only a new version must satisfy."""
    try:
        parsed = validate_contract(contract)
    except ContractError as exc:
        return [str(exc)]
    return registration_problems(parsed)
