"""A contract's fairness section as training writes it, for the consumer's and the deployment's
tests: the training code audits a simple score of the UCI students (admission grade and
age) and builds the section (training/registry/contract.py), so the consumer reads exactly what
training produces."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.attributes import ATTRIBUTE_NAMES
from training.evaluation.fairness import FairnessConfig, audit_model
from training.fairness import select_groups
from training.registry.contract import fairness_section


def uci_students(data_path: Path) -> tuple[pd.DataFrame, pd.Series]:
    frame = pd.read_csv(data_path, sep=";", encoding="utf-8-sig")
    frame.columns = frame.columns.str.strip()
    y = (frame["Target"] == "Dropout").astype(int)
    return frame[list(ATTRIBUTE_NAMES)].astype("float64"), y


def simple_score(frame: pd.DataFrame) -> np.ndarray:
    """Older students and lower admission grades score higher; missing values are neutral."""
    age = frame["Age at enrollment"].fillna(20.0).to_numpy()
    grade = frame["Admission grade"].fillna(127.0).to_numpy()
    logit = 0.12 * (age - 23.0) - 0.04 * (grade - 127.0)
    return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype="float64")


def fairness_config(groups: list[str] | None = None) -> FairnessConfig:
    return FairnessConfig(
        definitions=select_groups(groups),
        min_group_size=30,
        n_bootstrap=0,
        seed=0,
        tolerance=0.1,
        kinds=("dp_difference", "eo_difference"),
        caps={"dp_difference": 1.0, "dp_ratio": 0.0, "eo_difference": 1.0, "calibration_gap": 1.0},
        sensitive_features="with",
        proxies=(),
    )


def training_fairness_section(
    data_path: Path, *, threshold: float = 0.42, groups: list[str] | None = None
) -> dict[str, Any]:
    x, y = uci_students(data_path)
    config = fairness_config(groups)
    audit = audit_model(simple_score, x, y, threshold, config, n_bootstrap=0)
    return fairness_section(
        definitions=config.document(),
        fairness_audit=audit,
        threshold=threshold,
        min_group_size=config.min_group_size,
        sensitive_features="with",
        excluded_features=[],
    )


def scaled_reference(section: dict[str, Any], factor: float) -> dict[str, Any]:
    """A copy whose reference ratios are all multiplied by `factor` (another version's)."""
    copied = copy.deepcopy(section)
    for attributes in copied["reference"].values():
        for attribute in attributes.values():
            for group in attribute["groups"].values():
                if group["ratio"] is not None:
                    group["ratio"] = round(group["ratio"] * factor, 6)
    return copied
