"""The feature pipeline (feature-engine) and the classifier at its end, per model kind.

Layout of every pipeline, which the serving code relies on:
  1. creation steps (`RelativeFeatures`): approval rates per semester and the grade trend,
     computed from raw attributes (NaN in, NaN out: a missing input gives a missing feature);
  2. `select` (optional): drops what Recursive Feature Addition found useless;
  3. `encode`: a smoothed target-mean encoding of the many-level nominal codes (one number per
     code keeps the model small and every factor one readable attribute; a missing code becomes
     the prior, i.e. "no information");
  4. kind-specific steps, then the classifier as the last step.
Only library classes are used, so the fitted pipeline can be saved with skops and loaded with a
fixed allowlist in a process that does not have this package.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from feature_engine.creation import RelativeFeatures
from feature_engine.encoding import MeanEncoder
from feature_engine.imputation import AddMissingIndicator, MeanMedianImputer
from feature_engine.selection import DropFeatures
from feature_engine.wrappers import SklearnTransformerWrapper
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from xgboost import XGBClassifier

from common.attributes import ATTRIBUTE_NAMES, ENCODED

ModelKind = Literal["xgboost", "logistic_regression", "random_forest", "svm"]
MODEL_KINDS: Final[tuple[ModelKind, ...]] = (
    "logistic_regression",
    "random_forest",
    "svm",
    "xgboost",
)
# Kinds whose served model explains each score cheaply (see the contract's `contributions`).
EXPLAINABLE: Final[dict[ModelKind, str]] = {"xgboost": "saabas", "logistic_regression": "linear"}

_A1 = "Curricular units 1st sem (approved)"
_E1 = "Curricular units 1st sem (enrolled)"
_G1 = "Curricular units 1st sem (grade)"
_A2 = "Curricular units 2nd sem (approved)"
_E2 = "Curricular units 2nd sem (enrolled)"
_G2 = "Curricular units 2nd sem (grade)"
# Each creation step costs about 1.5 ms per scoring call whatever the batch size (pandas
# overhead), so the set is small: pass rates per evaluation were tried and dropped (Recursive
# Feature Addition seldom kept them).

# Engineered feature name (as feature-engine names it) -> (readable label, source attributes).
ENGINEERED: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    f"{_A1}_div_{_E1}": ("1st semester approval rate (approved / enrolled units)", (_A1, _E1)),
    f"{_A2}_div_{_E2}": ("2nd semester approval rate (approved / enrolled units)", (_A2, _E2)),
    f"{_G2}_sub_{_G1}": ("grade trend (2nd minus 1st semester grade)", (_G2, _G1)),
}
MISSING_FLAG_SUFFIX: Final = "_na"

# Smoothing of the target-mean encoding: a code seen n times keeps weight n / (n + 30).
ENCODING_SMOOTHING: Final = 30.0


# Creation steps: (name, variables, references, operation). One RelativeFeatures step each.
_CREATION: Final[tuple[tuple[str, tuple[str, ...], tuple[str, ...], str], ...]] = (
    ("sem1_rates", (_A1,), (_E1,), "div"),
    ("sem2_rates", (_A2,), (_E2,), "div"),
    ("grade_trend", (_G2,), (_G1,), "sub"),
)


def _outputs(variables: tuple[str, ...], references: tuple[str, ...], op: str) -> list[str]:
    # feature-engine's naming and order: for each reference, each variable.
    return [f"{v}_{op}_{r}" for r in references for v in variables]


def creation_steps(drop: list[str] | None = None) -> list[tuple[str, Any]]:
    """Fresh creation steps, leaving out a step whose every output is dropped anyway.

    A zero denominator (no enrolled units) gives NaN, not infinity.
    """
    steps = []
    for name, variables, references, op in _CREATION:
        if drop and all(o in drop for o in _outputs(variables, references, op)):
            continue
        step = RelativeFeatures(
            variables=list(variables),
            reference=list(references),
            func=[op],
            fill_value=np.nan if op == "div" else None,
        )
        steps.append((name, step))
    return steps


def encoding_step(variables: list[str | int]) -> tuple[str, Any]:
    return (
        "encode",
        MeanEncoder(
            variables=variables,
            ignore_format=True,  # UCI codes are numbers, not strings
            missing_values="ignore",
            unseen="encode",  # a missing or unseen code becomes the prior
            smoothing=ENCODING_SMOOTHING,
        ),
    )


def preprocessing_steps(drop: list[str]) -> list[tuple[str, Any]]:
    """Steps shared by every kind: creation, selection, encoding.

    Selection runs before encoding so only kept codes are encoded; the served pipeline does no
    work for a feature the model does not use (scoring speed is part of the contract).
    """
    steps = creation_steps(drop)
    created = {o for name, v, r, op in _CREATION if name in dict(steps) for o in _outputs(v, r, op)}
    to_drop: list[str | int] = [d for d in drop if d in created or d in ATTRIBUTE_NAMES]
    if to_drop:
        steps.append(("select", DropFeatures(features_to_drop=to_drop)))
    encoded: list[str | int] = [v for v in ENCODED if v not in drop]
    if encoded:
        steps.append(encoding_step(encoded))
    return steps


def build_pipeline(
    kind: ModelKind,
    params: dict[str, Any],
    *,
    drop: list[str],
    n_jobs: int,
    seed: int,
) -> Pipeline:
    steps = preprocessing_steps(drop)
    if kind == "xgboost":
        steps.append(("classifier", make_xgboost(params, n_jobs=n_jobs, seed=seed)))
    elif kind == "random_forest":
        # scikit-learn's forests split on missing values natively: no imputation needed.
        steps.append(
            (
                "classifier",
                RandomForestClassifier(
                    **params, n_jobs=n_jobs, random_state=seed, class_weight=None
                ),
            )
        )
    elif kind in ("logistic_regression", "svm"):
        steps += [
            ("missing_flags", AddMissingIndicator(missing_only=True)),
            ("impute", MeanMedianImputer(imputation_method="median")),
            ("scale", SklearnTransformerWrapper(transformer=StandardScaler())),
        ]
        if kind == "logistic_regression":
            classifier: Any = LogisticRegression(**params, max_iter=2000)
        else:
            # Platt scaling on internal folds (what SVC(probability=True) did before 1.9).
            classifier = CalibratedClassifierCV(
                SVC(**params, gamma="scale", random_state=seed), cv=3, ensemble=False
            )
        steps.append(("classifier", classifier))
    else:  # pragma: no cover - guarded by the Literal type
        raise ValueError(f"unknown model kind {kind!r}")
    return Pipeline(steps)


def make_xgboost(params: dict[str, Any], *, n_jobs: int, seed: int) -> XGBClassifier:
    return XGBClassifier(
        **params,
        objective="binary:logistic",
        eval_metric="logloss",
        tree_method="hist",
        n_jobs=n_jobs,
        random_state=seed,
    )


def classifier_features(pipeline: Pipeline, x: pd.DataFrame) -> list[str]:
    """Names of the columns the classifier of a fitted pipeline sees."""
    return [str(c) for c in pipeline[:-1].transform(x.head(5)).columns]


def feature_label(name: str) -> str:
    """A readable name for a model feature (raw attributes are readable as they are)."""
    if name in ENGINEERED:
        return ENGINEERED[name][0]
    if name.endswith(MISSING_FLAG_SUFFIX) and name[: -len(MISSING_FLAG_SUFFIX)] in _KNOWN:
        return f"{feature_label(name[: -len(MISSING_FLAG_SUFFIX)])} is missing"
    return name


def feature_sources(name: str) -> tuple[str, ...]:
    if name in ENGINEERED:
        return ENGINEERED[name][1]
    if name.endswith(MISSING_FLAG_SUFFIX):
        return feature_sources(name[: -len(MISSING_FLAG_SUFFIX)])
    return (name,)


_KNOWN: Final = frozenset(ATTRIBUTE_NAMES) | frozenset(ENGINEERED)
