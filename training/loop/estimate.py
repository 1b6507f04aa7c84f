"""Quality ESTIMATED before outcomes exist: Confidence-Based Performance Estimation (CBPE).

Why not NannyML itself: `nannyml` does not install beside the project's pinned environment.
With only numpy 2.4.6, pandas 2.3.3, scikit-learn 1.9.1 and scipy 1.17.1 as constraints pip
would take nannyml 0.13.1, but only by pulling s3fs -> aiobotocore, which needs
`botocore<1.43.118` while the project pins botocore 1.44.8 (for boto3 1.44.8); every older
nannyml needs `Jinja2<3.1` while the project pins jinja2 3.1.6. It would also bring about
ninety packages (lightgbm, a second xgboost, plotly, kaleido, gcsfs, FLAML, a telemetry
client) into a product that needs five functions. So the published method is implemented here,
following NannyML's own code (`nannyml/performance_estimation/confidence_based/metrics.py`
and `nannyml/calibration.py`):

- Calibration (`fit_calibrator`): on a reference set with known labels (e.g. the model's
  held-out predictions), NannyML's `needs_calibration` test: 10 stratified shuffle splits
  (10 % test, random_state 42), an isotonic regression (`out_of_bounds="clip"`) fitted on each
  train part, and the expected calibration error over equal-count bins of the pooled test parts
  before and after; calibration is used only if it lowers that error (not when the reference has
  one class or an AUC above 0.999). The isotonic map is then fitted on the whole reference.
- Expected confusion matrix: with calibrated probabilities p and the model's own decision d (at
  its threshold), TP = sum p[d], FP = sum (1-p)[d], FN = sum p[~d], TN = sum (1-p)[~d];
  F1 = TP / (TP + (FP + FN) / 2), precision = TP / (TP + FP), recall = TP / (TP + FN).
- ROC-AUC (`estimate_roc_auc`): rows sorted by the model's (uncalibrated) score, descending;
  the cumulative sums of calibrated p and of 1-p are the expected true and false positives at
  each threshold; the area under the expected ROC curve is the estimate. Tied scores are one
  threshold here (as in scikit-learn's ROC), so the estimate does not depend on row order; the
  rounding of the cumulative sums to 5 decimals in NannyML is left out.

CBPE holds only while the calibrated probabilities stay calibrated (no concept drift): it sees
covariate shift, not a changed relation between attributes and outcome. Without a calibrator,
badly calibrated probabilities give wrong estimates (see the tests).

Intervals (our addition; NannyML derives a sampling error from reference chunks): labels are
simulated as Bernoulli(calibrated p) `n_simulations` times (seeded), the realized figures of
each simulation computed, and the central percentile interval given: the range the figure would
take on these students if the probabilities are calibrated.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypedDict, Unpack

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import rankdata

from training.loop import metrics as m
from training.loop.quality import ALL, CONFIDENCE, MIN_COUNT, Metric, group_keys, select

ESTIMATED_NAMES: Final = ("roc_auc", "f1", "precision", "recall", "flag_rate")
MIN_REFERENCE_PER_CLASS: Final = 2


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else value


def _float_or_nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


@dataclass(frozen=True)
class Calibrator:
    """A fitted calibration map (isotonic, or identity when calibration did not help).

    Plain numbers only, so it can be stored as JSON beside a model version (`to_dict`).
    """

    kind: Literal["isotonic", "identity"]
    needed: bool
    ece_before: float
    ece_after: float
    reference_count: int
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def calibrate(self, probability: npt.ArrayLike) -> m.FloatArray:
        p = np.asarray(probability, dtype=float)
        if self.kind == "identity":
            return p.copy()
        # IsotonicRegression.predict with out_of_bounds="clip": linear between thresholds.
        mapped: m.FloatArray = np.interp(np.clip(p, self.x[0], self.x[-1]), self.x, self.y)
        return mapped

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "needed": self.needed,
            # null, not NaN, when calibration was not tried: contract.json stays strict JSON.
            "ece_before": _json_number(self.ece_before),
            "ece_after": _json_number(self.ece_after),
            "reference_count": self.reference_count,
            "x": list(self.x),
            "y": list(self.y),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibrator:
        return cls(
            kind=data["kind"],
            needed=bool(data["needed"]),
            ece_before=_float_or_nan(data["ece_before"]),
            ece_after=_float_or_nan(data["ece_after"]),
            reference_count=int(data["reference_count"]),
            x=tuple(float(v) for v in data["x"]),
            y=tuple(float(v) for v in data["y"]),
        )


IDENTITY: Final = Calibrator("identity", False, float("nan"), float("nan"), 0)


def _equal_count_edges(length: int, bin_count: int) -> list[tuple[int, int]]:
    # NannyML's _get_bin_index_edges: equal-count bins over the sorted probabilities.
    if length <= 2 * bin_count:
        bin_count = length // 2
    width = length // bin_count
    edges = list(range(0, length + 1, width))
    edges[-1] = length
    return list(itertools.pairwise(edges))


def _equal_count_ece(y: m.FloatArray, p: m.FloatArray, edges: list[tuple[int, int]]) -> float:
    order = np.argsort(p, kind="mergesort")
    p, y = p[order], y[order]
    return float(
        sum((hi - lo) / len(p) * abs(p[lo:hi].mean() - y[lo:hi].mean()) for lo, hi in edges)
    )


def _isotonic(p: m.FloatArray, y: m.FloatArray) -> tuple[m.FloatArray, m.FloatArray]:
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(p, y)
    return np.asarray(model.X_thresholds_, float), np.asarray(model.y_thresholds_, float)


def fit_calibrator(
    probability: npt.ArrayLike,
    y_true: npt.ArrayLike,
    *,
    bin_count: int = 10,
    split_count: int = 10,
    random_state: int = 42,
) -> Calibrator:
    """NannyML's calibration step on a reference set (see the module docstring)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedShuffleSplit

    p = np.asarray(probability, dtype=float)
    y = np.asarray(y_true, dtype=float)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError("probability and y_true must be 1-D and of the same length")
    if not np.isfinite(p).all() or not np.isin(y, (0, 1)).all():
        raise ValueError("reference probabilities must be finite and labels 0 or 1")
    n, positives = len(y), int(y.sum())
    if len(np.unique(y)) < 2 or roc_auc_score(y, p) > 0.999:
        return Calibrator("identity", False, float("nan"), float("nan"), n)
    if min(positives, n - positives) < MIN_REFERENCE_PER_CLASS or n < 4 * bin_count:
        raise ValueError(
            f"a reference of {n} rows ({positives} positives) is too small to test calibration"
        )
    splits = StratifiedShuffleSplit(n_splits=split_count, test_size=0.1, random_state=random_state)
    truth, raw, calibrated = [], [], []
    for train, test in splits.split(p, y):
        x_thr, y_thr = _isotonic(p[train], y[train])
        truth.append(y[test])
        raw.append(p[test])
        calibrated.append(np.interp(np.clip(p[test], x_thr[0], x_thr[-1]), x_thr, y_thr))
    pooled_y, pooled_raw = np.concatenate(truth), np.concatenate(raw)
    edges = _equal_count_edges(len(pooled_y), bin_count)
    before = _equal_count_ece(pooled_y, pooled_raw, edges)
    after = _equal_count_ece(pooled_y, np.concatenate(calibrated), edges)
    if not before > after:
        return Calibrator("identity", False, before, after, n)
    x_thr, y_thr = _isotonic(p, y)
    return Calibrator(
        "isotonic", True, before, after, n, tuple(x_thr.tolist()), tuple(y_thr.tolist())
    )


@dataclass(frozen=True)
class ExpectedConfusion:
    tp: float
    fp: float
    fn: float
    tn: float


def expected_confusion(calibrated: npt.ArrayLike, decision: npt.ArrayLike) -> ExpectedConfusion:
    p = np.asarray(calibrated, dtype=float)
    d = np.asarray(decision, dtype=bool)
    return ExpectedConfusion(
        tp=float(p[d].sum()),
        fp=float((1 - p[d]).sum()),
        fn=float(p[~d].sum()),
        tn=float((1 - p[~d]).sum()),
    )


def estimate_roc_auc(calibrated: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """NannyML's estimated ROC-AUC: the expected ROC curve along the model's score order."""
    p = np.asarray(calibrated, dtype=float)
    s = np.asarray(scores, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    p, s = p[order], s[order]
    tps = np.cumsum(p)
    fps = np.arange(1, len(p) + 1) - tps
    # One threshold per distinct score: keep the last index of each run of ties.
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.empty(0, int)
    tps = np.r_[0.0, tps[last]]
    fps = np.r_[0.0, fps[last]]
    if len(p) == 0 or tps[-1] <= 0 or fps[-1] <= 0:
        return float("nan")
    return float(np.trapezoid(tps / tps[-1], fps / fps[-1]))


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


@dataclass(frozen=True)
class Estimate:
    """CBPE figures of one group of predictions without outcomes."""

    version: str
    stage: str
    count: int
    flagged: int
    calibrated: bool
    expected_positives: float
    expected: ExpectedConfusion
    roc_auc: Metric
    f1: Metric
    precision: Metric
    recall: Metric
    flag_rate: Metric  # observed, not estimated: the model's decisions are known
    small_sample: bool
    n_simulations: int
    notes: tuple[str, ...] = field(default=())

    def metrics(self) -> dict[str, Metric]:
        return {name: getattr(self, name) for name in ESTIMATED_NAMES}


class EstimateOptions(TypedDict, total=False):
    """How CBPE estimates a group (the defaults are `_estimate`'s): simulated outcome draws,
    their seed, the interval's confidence and the count below which a group is a small sample."""

    n_simulations: int
    seed: int
    confidence: float
    min_count: int


def estimate_performance(
    probability: npt.ArrayLike,
    decision: npt.ArrayLike,
    *,
    calibrator: Calibrator | None = None,
    version: str = ALL,
    stage: str = ALL,
    **options: Unpack[EstimateOptions],
) -> Estimate:
    """CBPE for one group: `probability` as the model gave it, `decision` its at-risk flag,
    `calibrator` fitted on the model's reference set (without one, `probability` must already
    be calibrated)."""
    scores = np.asarray(probability, dtype=float)
    use = calibrator is not None and calibrator.kind != "identity"
    calibrated = calibrator.calibrate(scores) if calibrator is not None else scores
    return _estimate(
        scores,
        calibrated,
        np.asarray(decision, dtype=bool),
        np.full(len(scores), use),
        version=version,
        stage=stage,
        **options,
    )


def _estimate(
    scores: m.FloatArray,
    p: m.FloatArray,
    d: m.BoolArray,
    applied: m.BoolArray,
    *,
    version: str,
    stage: str,
    n_simulations: int = 200,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    min_count: int = MIN_COUNT,
) -> Estimate:
    n, flagged = len(p), int(d.sum())
    notes: list[str] = []
    small = n < min_count
    if small:
        notes.append(f"small sample: {n} predictions (reliable from {min_count})")
    if n and not applied.all():
        share = f"{int(applied.sum())} of {n}" if applied.any() else "none"
        notes.append(
            f"calibration applied to {share} of the predictions: the estimate assumes the "
            "others are calibrated as they are"
        )
    c = expected_confusion(p, d)
    point = {
        "roc_auc": estimate_roc_auc(p, scores),
        "f1": _ratio(c.tp, c.tp + 0.5 * (c.fp + c.fn)),
        "precision": _ratio(c.tp, c.tp + c.fp),
        "recall": _ratio(c.tp, c.tp + c.fn),
    }
    rng = np.random.default_rng([seed, zlib.crc32(f"cbpe\x00{version}\x00{stage}".encode())])
    spread = _simulate(p, scores, d, n_simulations, rng) if n else {}
    nan = float("nan")
    values = {
        name: Metric(value, *m.percentile_interval(spread[name], confidence))
        if n
        else Metric(nan, nan, nan)
        for name, value in point.items()
    }
    flag_rate = flagged / n if n else nan
    return Estimate(
        version=version,
        stage=stage,
        count=n,
        flagged=flagged,
        calibrated=bool(n) and bool(applied.all()),
        expected_positives=float(p.sum()),
        expected=c,
        flag_rate=Metric(flag_rate, flag_rate, flag_rate),
        small_sample=small,
        n_simulations=n_simulations,
        notes=tuple(notes),
        **values,
    )


def _simulate(
    p: m.FloatArray, scores: m.FloatArray, d: m.BoolArray, count: int, rng: np.random.Generator
) -> dict[str, m.FloatArray]:
    ranks = rankdata(scores)
    parts: dict[str, list[m.FloatArray]] = {"roc_auc": [], "f1": [], "precision": [], "recall": []}
    for size in m.chunks(count, len(p)):
        y = (rng.random((size, len(p))) < p).astype(np.int64)
        confusion = m.confusion(y, np.broadcast_to(d, y.shape))
        parts["roc_auc"].append(m.auc_from_ranks(y, np.broadcast_to(ranks, y.shape)))
        parts["f1"].append(m.f1(confusion))
        parts["precision"].append(m.precision(confusion))
        parts["recall"].append(m.recall(confusion))
    return {k: np.concatenate(v) if v else np.empty(0) for k, v in parts.items()}


def estimate_by_group(
    pending: pd.DataFrame,
    *,
    calibrators: Mapping[str, Calibrator] | None = None,
    **options: Unpack[EstimateOptions],
) -> list[Estimate]:
    """CBPE per (version, stage) group of pending predictions (`pending_predictions`), each
    row calibrated by its own version's calibrator when `calibrators` has one."""
    scores = pending["probability"].to_numpy(dtype=float)
    calibrated = scores.copy()
    applied = np.zeros(len(pending), dtype=bool)
    versions = pending["model_version"].to_numpy()
    for version, calibrator in (calibrators or {}).items():
        rows = versions == version
        calibrated[rows] = calibrator.calibrate(scores[rows])
        applied[rows] = calibrator.kind != "identity"
    frame = pending.assign(_calibrated=calibrated, _applied=applied)
    estimates = []
    for version, stage in group_keys(frame) if len(frame) else []:
        rows = select(frame, version, stage)
        estimates.append(
            _estimate(
                rows["probability"].to_numpy(dtype=float),
                rows["_calibrated"].to_numpy(dtype=float),
                rows["at_risk"].to_numpy(dtype=bool),
                rows["_applied"].to_numpy(dtype=bool),
                version=version,
                stage=stage,
                **options,
            )
        )
    return estimates
