"""Binary-classification metrics computed row-wise over a (replicates x samples) matrix.

One replicate per row lets the bootstrap (resampled rows) and the CBPE simulation (simulated
labels) evaluate thousands of replicates in a few vectorised numpy calls. Undefined values are
NaN: AUC with one class, precision without flags, recall without positives, F1 with neither.
The formulas are scikit-learn's (AUC as the Mann-Whitney statistic with average ranks for ties,
which equals the trapezoidal ROC area; F1 = 2TP / (2TP + FP + FN)).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Cells per chunk of replicates: bounds memory (a few arrays of 8 bytes per cell).
CHUNK_CELLS: Final = 2_000_000


@dataclass(frozen=True)
class Confusion:
    tp: FloatArray
    fp: FloatArray
    fn: FloatArray
    tn: FloatArray


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def confusion(y: npt.NDArray[np.int_], decision: npt.NDArray[np.bool_]) -> Confusion:
    """Counts per row (floats, so expected counts from probabilities fit the same type)."""
    yb = y.astype(bool)
    return Confusion(
        tp=(yb & decision).sum(axis=-1).astype(float),
        fp=(~yb & decision).sum(axis=-1).astype(float),
        fn=(yb & ~decision).sum(axis=-1).astype(float),
        tn=(~yb & ~decision).sum(axis=-1).astype(float),
    )


def precision(c: Confusion) -> FloatArray:
    return _ratio(c.tp, c.tp + c.fp)


def recall(c: Confusion) -> FloatArray:
    return _ratio(c.tp, c.tp + c.fn)


def f1(c: Confusion) -> FloatArray:
    return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn)


def auc_from_ranks(y: npt.NDArray[np.int_], ranks: FloatArray) -> FloatArray:
    """ROC AUC per row from average ranks of the scores (NaN when a row has one class)."""
    positives = y.sum(axis=-1).astype(float)
    negatives = y.shape[-1] - positives
    rank_sum = np.where(y.astype(bool), ranks, 0.0).sum(axis=-1)
    numerator = rank_sum - positives * (positives + 1) / 2
    return _ratio(numerator, positives * negatives)


def auc(y: npt.NDArray[np.int_], scores: FloatArray) -> FloatArray:
    return auc_from_ranks(y, rankdata(scores, axis=-1))


def brier(y: npt.NDArray[np.int_], probability: FloatArray) -> FloatArray:
    return np.asarray(np.mean((probability - y) ** 2, axis=-1), dtype=float)


def bin_index(probability: FloatArray, n_bins: int) -> IntArray:
    """Equal-width bins on [0, 1]; 1.0 falls in the last bin."""
    return np.minimum((probability * n_bins).astype(np.int64), n_bins - 1)


@dataclass(frozen=True)
class BinSums:
    count: FloatArray  # (rows, bins)
    probability: FloatArray
    positives: FloatArray


def bin_sums(
    bins: IntArray, probability: FloatArray, y: npt.NDArray[np.int_], n_bins: int
) -> BinSums:
    """Per row and bin: count, sum of probabilities, sum of labels (2-D inputs)."""
    rows = bins.shape[0]
    flat = (np.arange(rows)[:, None] * n_bins + bins).ravel()
    size = rows * n_bins

    def total(weights: npt.NDArray[np.float64] | None) -> FloatArray:
        counts = np.bincount(flat, weights=weights, minlength=size)
        return counts.astype(np.float64).reshape(rows, n_bins)

    return BinSums(
        count=total(None),
        probability=total(probability.ravel().astype(float)),
        positives=total(y.ravel().astype(float)),
    )


def ece(sums: BinSums) -> FloatArray:
    """Expected calibration error per row: sum over bins of n_b/n * |mean p - rate|."""
    n = sums.count.sum(axis=-1)
    return _ratio(np.abs(sums.probability - sums.positives).sum(axis=-1), n)


def chunks(replicates: int, n: int) -> Iterator[int]:
    """Sizes of replicate chunks so that one chunk holds about CHUNK_CELLS cells."""
    size = max(1, CHUNK_CELLS // max(n, 1))
    done = 0
    while done < replicates:
        step = min(size, replicates - done)
        yield step
        done += step


def percentile_interval(values: FloatArray, confidence: float) -> tuple[float, float]:
    """The central `confidence` percentile interval of the finite values (NaN if none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (float("nan"), float("nan"))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return (float(low), float(high))
