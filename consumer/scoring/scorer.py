"""The model call: one frame of valid rows in, one checked set of scores out.

`Scorer.score` builds the contract's input frame (float64, contract attribute order, NaN =
missing), calls the model once, and checks the output frame (docs/model-contract.md, "Output of
predict"). A model that raises or returns something off-contract raises `ScoringError`; the batch
path then retries the rows one by one (consumer/scoring/batch.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from common.wire import OUTPUT_COLUMNS

PredictFn = Callable[[pd.DataFrame], Any]


class ScoringError(RuntimeError):
    """The model raised, or returned output that breaks the contract."""


@dataclass(frozen=True, slots=True)
class Scores:
    """Scores of n rows, as plain Python lists in row order."""

    probability: list[float]
    at_risk: list[bool]
    risk_band: list[str]
    top_factors: list[Any]


# A decision is checked against its probability only this far from the threshold: a model may
# decide in float32 and report the probability in float64.
_DECISION_TOLERANCE = 1e-6


class Scorer:
    """Calls one model's predict on a float64 matrix and checks what comes back."""

    def __init__(
        self,
        predict: PredictFn,
        columns: list[str],
        *,
        threshold: float | None = None,
        bands: frozenset[str] | None = None,
    ) -> None:
        self._predict = predict
        self.columns = list(columns)
        self._threshold = threshold
        self._bands = bands

    def score(self, rows: np.ndarray) -> Scores:
        n = rows.shape[0]
        frame = pd.DataFrame(rows, columns=self.columns, copy=False)
        try:
            output = self._predict(frame)
        except Exception as exc:
            raise ScoringError(f"model raised {type(exc).__name__}: {exc}") from exc
        try:
            return _check_output(output, n, self._threshold, self._bands)
        except ScoringError:
            raise
        except Exception as exc:
            # Anything odd in the output frame (object columns, bad indexes, ...) is the
            # model's fault, with the same outcome as an explicit check.
            raise ScoringError(f"model output unusable: {type(exc).__name__}: {exc}") from exc


def _check_output(
    output: Any, n: int, threshold: float | None, bands: frozenset[str] | None
) -> Scores:
    if not isinstance(output, pd.DataFrame):
        raise ScoringError(f"model returned {type(output).__name__}, not a DataFrame")
    missing = [c for c in OUTPUT_COLUMNS if c not in output.columns]
    if missing:
        raise ScoringError(f"model output lacks columns {missing}")
    if len(output) != n:
        raise ScoringError(f"model returned {len(output)} rows for {n}")
    try:
        probability = output["dropout_probability"].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ScoringError(f"dropout_probability is not numeric: {exc}") from exc
    bad = ~((probability >= 0.0) & (probability <= 1.0))
    if bad.any():
        first = float(probability[bad][0])
        raise ScoringError(f"dropout_probability {first} is not in [0, 1]")
    at_risk = output["at_risk"].tolist()
    risk_bands = output["risk_band"].tolist()
    factors = output["top_factors"].tolist()
    for flag, band in zip(at_risk, risk_bands, strict=True):
        if not isinstance(flag, bool | np.bool_) or not isinstance(band, str):
            raise ScoringError("at_risk must be booleans and risk_band strings")
    if bands is not None:
        unknown = set(risk_bands) - bands
        if unknown:
            raise ScoringError(f"risk_band {sorted(unknown)[0]!r} is not a band of the contract")
    decisions = np.asarray(at_risk, dtype=bool)
    if threshold is not None:
        wrong = (decisions != (probability >= threshold)) & (
            np.abs(probability - threshold) > _DECISION_TOLERANCE
        )
        if wrong.any():
            first = float(probability[wrong][0])
            raise ScoringError(
                f"at_risk contradicts dropout_probability {first} at threshold {threshold}"
            )
    return Scores(
        probability=probability.tolist(),
        at_risk=decisions.tolist(),
        risk_band=risk_bands,
        top_factors=factors,
    )


def direct_predict(python_model: Any) -> PredictFn:
    """Calls a pyfunc PythonModel's own predict, skipping MLflow's per-call schema enforcement.

    The consumer has already enforced the schema (validation.py), and the wrapper's enforcement
    costs more than the model on small batches. Handles both predict signatures MLflow accepts:
    `predict(self, context, model_input, params=None)` and `predict(self, model_input, ...)`.
    """
    parameters = list(inspect.signature(python_model.predict).parameters)
    takes_context = bool(parameters) and parameters[0] == "context"

    def predict(frame: pd.DataFrame) -> Any:
        if takes_context:
            return python_model.predict(None, frame)
        return python_model.predict(frame)

    return predict
