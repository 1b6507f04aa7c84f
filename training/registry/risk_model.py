"""DropoutRiskModel: the code of the registered model (MLflow pyfunc, logged *from code*).

This file is copied into every model version as `python_model.py` and runs inside the consumer,
which does not have the `training` package: it imports only the standard library, mlflow,
numpy, pandas and skops (the pipeline it opens holds scikit-learn, feature-engine and xgboost
objects). See docs/model-contract.md for the input, the output and `contract.json`.

The fitted pipeline is opened with `skops.io.load(path, trusted=ALLOWLIST)`: ALLOWLIST is
written here, not read from the artifact, so a pipeline holding any other type is refused.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import skops.io
from mlflow.models import set_model
from mlflow.pyfunc.model import PythonModel

CONTRACT_VERSION = 1

# Every non-default type a served pipeline may hold (XGBoost or logistic regression kinds).
ALLOWLIST: list[str] = [
    "feature_engine.creation.relative_features.RelativeFeatures",
    "feature_engine.encoding.mean_encoding.MeanEncoder",
    "feature_engine.imputation.mean_median.MeanMedianImputer",
    "feature_engine.imputation.missing_indicator.AddMissingIndicator",
    "feature_engine.selection.drop_features.DropFeatures",
    "feature_engine.wrappers.wrappers.SklearnTransformerWrapper",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
]

_CREATION_STEP = "RelativeFeatures"
_MISSING_FLAG = "_na"
_TREE_METHODS = {"saabas": True, "tree_shap": False}  # value: approx_contribs


class DropoutRiskModel(PythonModel):
    """Raw UCI attributes in; probability, decision, risk band and top factors out."""

    contract: dict[str, Any]

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["contract"], encoding="utf-8") as fh:
            contract = json.load(fh)
        pipeline = skops.io.load(context.artifacts["pipeline"], trusted=ALLOWLIST)
        self.configure(contract, pipeline)

    def configure(self, contract: dict[str, Any], pipeline: Any) -> None:
        """Prepare scoring from a contract and a fitted pipeline (also used before logging)."""
        if contract.get("contract_version") != CONTRACT_VERSION:
            raise ValueError(f"unsupported contract_version {contract.get('contract_version')!r}")
        self.contract = contract
        self._columns = [a["name"] for a in contract["attributes"]]
        self._required = [a["name"] for a in contract["attributes"] if a["required"]]
        self._threshold = float(contract["threshold"])
        bands = sorted(contract["risk_bands"], key=lambda b: b["lower"])
        self._band_names = np.array([b["name"] for b in bands], dtype=object)
        self._band_lowers = np.array([b["lower"] for b in bands], dtype="float64")
        self._k = int(contract["top_k_factors"])
        self._labels = {f["name"]: f["label"] for f in contract["features"]}
        self._method = contract["contributions"]

        steps = list(pipeline.steps)
        n_create = 0
        while n_create < len(steps) - 1 and type(steps[n_create][1]).__name__ == _CREATION_STEP:
            n_create += 1
        # Creation steps give the values a person can read (raw and engineered, unencoded);
        # the rest turns them into what the classifier sees.
        self._create = [step for _, step in steps[:n_create]]
        self._rest = [step for _, step in steps[n_create:-1]]
        self._classifier = steps[-1][1]
        if self._method in _TREE_METHODS:
            self._booster = self._classifier.get_booster()
        elif self._method != "linear":
            raise ValueError(f"unsupported contributions method {self._method!r}")

    # -- scoring ---------------------------------------------------------------------------

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        values, encoded = self._transform(self._input_frame(model_input))
        margin, contributions = self._contributions(encoded)
        probability = 1.0 / (1.0 + np.exp(-margin))
        band_index = np.searchsorted(self._band_lowers, probability, side="right") - 1
        return pd.DataFrame(
            {
                "dropout_probability": probability.astype("float64"),
                "at_risk": probability >= self._threshold,
                "risk_band": self._band_names[np.clip(band_index, 0, None)],
                "top_factors": self._top_factors(values, encoded, contributions),
            },
            index=model_input.index,
        )

    def explain(self, model_input: pd.DataFrame) -> tuple[list[str], np.ndarray]:
        """Model feature names and every row's contributions (log-odds)."""
        _, encoded = self._transform(self._input_frame(model_input))
        return [str(c) for c in encoded.columns], self._contributions(encoded)[1]

    def _transform(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(readable values, classifier input)."""
        # Step by step rather than through Pipeline.transform: same result, less overhead.
        values = frame
        for step in self._create:
            values = step.transform(values)
        encoded = values
        for step in self._rest:
            encoded = step.transform(encoded)
        return values, encoded

    def _input_frame(self, model_input: pd.DataFrame) -> pd.DataFrame:
        absent = [c for c in self._required if c not in model_input.columns]
        if absent:
            raise ValueError(f"required attribute(s) missing: {', '.join(absent)}")
        try:
            # Integer columns, floats, and None or NaN for a missing attribute are all fine.
            frame = model_input.reindex(columns=self._columns).astype("float64")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"every attribute must be a number or missing: {exc}") from exc
        for name in self._required:
            missing_rows = np.flatnonzero(frame[name].isna().to_numpy())
            if missing_rows.size:
                raise ValueError(
                    f"required attribute {name!r} is missing in row(s) {missing_rows[:10].tolist()}"
                )
        return frame

    def _contributions(self, encoded: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(margin, per-feature contributions in log-odds); contributions + bias = margin."""
        if self._method == "linear":
            z = encoded.to_numpy(dtype="float64")
            contributions = z * self._classifier.coef_[0]
            margin = contributions.sum(axis=1) + float(self._classifier.intercept_[0])
            return margin, contributions
        import xgboost  # the consumer has it; imported here so a linear model does not need it

        # One thread: the consumer scales by processes, and a multi-threaded DMatrix build of
        # a small batch costs more in thread start-up than it saves (measured: 20x slower).
        matrix = xgboost.DMatrix(
            np.ascontiguousarray(encoded.to_numpy(dtype="float32")),
            missing=np.nan,
            feature_names=[str(c) for c in encoded.columns],
            nthread=1,
        )
        raw = self._booster.predict(
            matrix, pred_contribs=True, approx_contribs=_TREE_METHODS[self._method]
        )
        # The last column is the bias; the row sum is the margin predict_proba would use.
        return raw.sum(axis=1).astype("float64"), raw[:, :-1]

    def _top_factors(
        self, values: pd.DataFrame, encoded: pd.DataFrame, contributions: np.ndarray
    ) -> list[list[dict[str, Any]]]:
        names = [str(c) for c in encoded.columns]
        labels = [self._labels.get(n, n) for n in names]
        shown = np.column_stack([self._readable_values(values, encoded, n) for n in names])
        k = min(self._k, len(names))
        magnitude = np.abs(contributions)
        top = np.argpartition(-magnitude, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(magnitude, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        # One conversion to Python numbers per array, then plain comprehensions (fast).
        top_values = np.take_along_axis(shown, top, axis=1).tolist()
        top_contributions = np.take_along_axis(contributions, top, axis=1).tolist()
        return [
            [
                {
                    "feature": names[j],
                    "label": labels[j],
                    "value": None if math.isnan(v) else v,
                    "contribution": c,
                }
                for j, v, c in zip(js, vs, cs, strict=True)
            ]
            for js, vs, cs in zip(top.tolist(), top_values, top_contributions, strict=True)
        ]

    @staticmethod
    def _readable_values(values: pd.DataFrame, encoded: pd.DataFrame, name: str) -> np.ndarray:
        """The student's value of a feature as a person reads it (raw code, not its encoding)."""
        if name in values.columns:
            return values[name].to_numpy(dtype="float64")
        base = name[: -len(_MISSING_FLAG)]
        if name.endswith(_MISSING_FLAG) and base in values.columns:
            return values[base].isna().to_numpy().astype("float64")
        return encoded[name].to_numpy(dtype="float64")


set_model(DropoutRiskModel())
