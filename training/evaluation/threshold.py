"""Decision threshold and risk bands, chosen on validation data (out-of-fold predictions of the
training part), never on the held-out split."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve

# The low band holds at most this share of the students who did drop out (OOF).
LOW_BAND_MISSED_DROPOUTS = 0.05


def choose_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability cut that maximises F1 of the dropout class on OOF predictions."""
    precision, recall, thresholds = precision_recall_curve(y, p)
    # precision/recall have one more entry than thresholds (the end point at recall 0).
    precision, recall = precision[:-1], recall[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
    best = int(np.argmax(f1))
    # Kept inside (0, 1) so that both decisions stay possible whatever the data.
    return round(float(np.clip(thresholds[best], 0.01, 0.99)), 4)


def risk_bands(threshold: float, y: np.ndarray, p: np.ndarray) -> list[dict[str, Any]]:
    """low / medium / high, contiguous over [0, 1]; `high` starts at the decision threshold.

    The low/medium cut is the OOF probability below which only 5 % of actual dropouts fall, so
    "low" means that an adviser who skips it misses few students.
    """
    positives = p[y == 1]
    low_cut = float(np.quantile(positives, LOW_BAND_MISSED_DROPOUTS)) if len(positives) else 0
    low_cut = round(low_cut, 4)
    if not 0 < low_cut < threshold:
        low_cut = round(threshold / 2, 4)
    return [
        {"name": "low", "lower": 0.0, "upper": low_cut},
        {"name": "medium", "lower": low_cut, "upper": threshold},
        {"name": "high", "lower": threshold, "upper": 1.0},
    ]
