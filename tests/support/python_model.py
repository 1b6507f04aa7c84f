"""Model code of the small test model (MLflow "models from code"; see docs/model-contract.md).

MLflow copies this file into every model it logs and runs it at load time: it must stay
self-contained (no imports from the repository). `load_context` reads the contract and opens the
skops pipeline with an explicit allowlist of types; `predict` returns the contract's output frame.
"""

from __future__ import annotations

import json
import math
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import skops.io
import xgboost
from mlflow.models import set_model

# The exact types pipeline.skops may contain; skops refuses anything else.
TRUSTED_TYPES = [
    "feature_engine.creation.relative_features.RelativeFeatures",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
]


class DropoutRiskModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    def load_context(self, context: Any) -> None:
        with open(context.artifacts["contract"], encoding="utf-8") as handle:
            self.contract = json.load(handle)
        self.pipeline = skops.io.load(context.artifacts["pipeline"], trusted=TRUSTED_TYPES)
        self.columns = [attribute["name"] for attribute in self.contract["attributes"]]
        self.threshold = float(self.contract["threshold"])
        self.band_names = [band["name"] for band in self.contract["risk_bands"]]
        self.band_uppers = np.array([band["upper"] for band in self.contract["risk_bands"]][:-1])
        self.top_k = int(self.contract["top_k_factors"])
        self.labels = {feature["name"]: feature["label"] for feature in self.contract["features"]}
        self.rename = {
            f"{feature['sources'][0]}_div_{feature['sources'][1]}": feature["name"]
            for feature in self.contract["features"]
            if len(feature["sources"]) == 2
        }

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        frame = model_input[self.columns].astype("float64")
        steps = self.pipeline[:-1]
        features = steps.transform(frame)
        names = [self.rename.get(column, column) for column in features.columns]
        values = features.to_numpy(dtype=np.float64)
        booster = self.pipeline[-1].get_booster()
        # One thread: small batches, one process per shard (threads cost more than they save).
        matrix = xgboost.DMatrix(
            values, missing=np.nan, feature_names=list(features.columns), nthread=1
        )
        # Tree SHAP contributions in log-odds; their sum (with the bias) is the margin.
        contributions = booster.predict(matrix, pred_contribs=True)
        margin = contributions.sum(axis=1, dtype=np.float64)
        probability = 1.0 / (1.0 + np.exp(-margin))
        contributions = contributions[:, :-1]
        order = np.argsort(-np.abs(contributions), axis=1)[:, : self.top_k]
        rows = np.arange(len(values))[:, None]
        top_values = values[rows, order].tolist()
        top_contributions = np.round(contributions[rows, order], 6).tolist()
        labels = [self.labels.get(name, name) for name in names]
        top = [
            [
                {
                    "feature": names[column],
                    "label": labels[column],
                    "value": None if math.isnan(value) else value,
                    "contribution": contribution,
                }
                for column, value, contribution in zip(columns, vals, contribs, strict=True)
            ]
            for columns, vals, contribs in zip(
                order.tolist(), top_values, top_contributions, strict=True
            )
        ]
        bands = np.searchsorted(self.band_uppers, probability, side="right")
        return pd.DataFrame(
            {
                "dropout_probability": probability,
                "at_risk": probability >= self.threshold,
                "risk_band": [self.band_names[index] for index in bands],
                "top_factors": top,
            }
        )


set_model(DropoutRiskModel())
