"""The fairness audit of one model version: rates per student group, and the gaps between groups.

The rates per group (selection, TPR, FPR, precision, ROC-AUC) come from fairlearn's MetricFrame
and the disparities from a MetricFrame's between-groups difference and ratio (exactly what
fairlearn's demographic parity and equalized odds functions compute, in one frame instead of
three), so the figures a reviewer reads are the ones a standard tool gives; counts, means and
calibration are plain sums.
The intervals are a percentile bootstrap that resamples rows *within* each group: fairlearn's
own bootstrap resamples the whole frame, which lets a small group's size change from draw to
draw. Draws in which a rate is undefined (no dropout drawn, say) are left out of its interval.

Groups under `min_group_size`, and `unknown` (a missing attribute), are shown but kept out of
the disparities: a gap that rests on a dozen students is noise, and "missing" is not a group of
students. A rate that is undefined in a group (AUC with one class, TPR without dropouts) is NaN
with a note, never an exception, and fairlearn's habit of reading such a rate as 0 is kept out
of the equalized odds difference by leaving those groups out of it.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from functools import partial
from typing import Any, Final, TypedDict, Unpack

import numpy as np
import numpy.typing as npt
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import precision_score, roc_auc_score

from training.fairness.groups import UNKNOWN

DISPARITY_KINDS: Final = ("dp_difference", "dp_ratio", "eo_difference", "calibration_gap")
# For a ratio 1 is parity, so the worst is the lowest; for the others the worst is the highest.
LOWER_IS_WORSE: Final = frozenset({"dp_ratio"})
DISPARITY_TITLES: Final = {
    "dp_difference": "demographic parity difference",
    "dp_ratio": "demographic parity ratio",
    "eo_difference": "equalized odds difference",
    "calibration_gap": "calibration gap",
}

DEFAULT_N_BOOTSTRAP: Final = 200
DEFAULT_MIN_GROUP_SIZE: Final = 30  # under ~30 students a rate's 95% interval spans ±0.15 or more
DEFAULT_CALIBRATION_BINS: Final = 5  # few bins: groups are small
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # stage and attribute names go into metric names
_BOOTSTRAP_CELLS = 2_000_000  # resampled values held at once (memory bound per chunk)

Interval = tuple[float, float]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_NAN_INTERVAL: Final[Interval] = (math.nan, math.nan)


@dataclass(frozen=True)
class GroupResult:
    """The figures of one group of one attribute at one stage (rates in [0, 1], NaN if undefined).

    `positives` are the group's dropouts, `flagged` the students at or above the threshold
    (`selection_rate` = flagged / count). `calibration_gap` is mean predicted probability minus
    observed dropout rate (positive: the model over-states this group's risk); `ece` is the
    expected calibration error over equal-width probability bins. `*_ci` are bootstrap
    percentile intervals. `small`: under the audit's minimum group size, so not compared.
    `notes` say why a figure is NaN or the group is left out.
    """

    attribute: str
    group: str
    count: int
    positives: int
    flagged: int
    selection_rate: float
    selection_rate_ci: Interval
    tpr: float
    tpr_ci: Interval
    fpr: float
    fpr_ci: Interval
    precision: float
    precision_ci: Interval
    roc_auc: float
    mean_probability: float
    observed_rate: float
    calibration_gap: float
    calibration_gap_ci: Interval
    ece: float
    small: bool
    notes: tuple[str, ...]


@dataclass(frozen=True)
class AttributeDisparity:
    """Gaps between the compared groups of one attribute (NaN when under two groups compare).

    `dp_difference` / `dp_ratio`: largest minus smallest / smallest over largest flag rate
    (fairlearn's demographic parity); `eo_difference`: the larger of the TPR and FPR spreads
    (fairlearn's equalized odds); `calibration_gap`: largest minus smallest signed calibration
    gap. `compared_groups`: the groups at or above the minimum size, `unknown` excluded.
    """

    attribute: str
    dp_difference: float
    dp_ratio: float
    eo_difference: float
    calibration_gap: float
    compared_groups: tuple[str, ...]
    notes: tuple[str, ...]

    def value(self, kind: str) -> float:
        if kind not in DISPARITY_KINDS:
            raise ValueError(f"unknown disparity {kind!r}; valid: {', '.join(DISPARITY_KINDS)}")
        return float(getattr(self, kind))


@dataclass(frozen=True)
class WorstDisparity:
    """The worst value of one disparity kind, and where it is (None where nothing compares)."""

    kind: str
    value: float
    attribute: str | None
    stage: str | None


@dataclass(frozen=True)
class StageAudit:
    """The audit of one stage: every group's figures and every attribute's disparities."""

    stage: str
    threshold: float
    min_group_size: int
    n_bootstrap: int
    confidence: float
    groups: tuple[GroupResult, ...]
    disparities: tuple[AttributeDisparity, ...]

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(d.attribute for d in self.disparities)

    @property
    def worst(self) -> dict[str, WorstDisparity]:
        """Per disparity kind, the worst attribute at this stage."""
        return _worst((self.stage, d) for d in self.disparities)

    def to_frame(self) -> pd.DataFrame:
        """One row per attribute × group; intervals as `<rate>_low` / `<rate>_high` columns."""
        return pd.DataFrame([{"stage": self.stage, **_flat_group(g)} for g in self.groups])

    def disparity_frame(self) -> pd.DataFrame:
        rows = [
            {
                "stage": self.stage,
                "attribute": d.attribute,
                **{kind: d.value(kind) for kind in DISPARITY_KINDS},
                "compared_groups": ",".join(d.compared_groups),
                "notes": "; ".join(d.notes),
            }
            for d in self.disparities
        ]
        return pd.DataFrame(rows)

    def to_metrics(self) -> dict[str, float]:
        """MLflow metrics: `fairness.<stage>.<attribute>.<disparity>`,
        `fairness.<stage>.<attribute>.<group>.<rate>` and `fairness.<stage>.worst.<disparity>`.
        NaN figures are left out (an undefined rate is not a measurement)."""
        metrics: dict[str, float] = {}
        prefix = f"fairness.{self.stage}"
        for d in self.disparities:
            for kind in DISPARITY_KINDS:
                metrics[f"{prefix}.{d.attribute}.{kind}"] = d.value(kind)
        for g in self.groups:
            group = f"{prefix}.{g.attribute}.{metric_safe(g.group)}"
            metrics[f"{group}.count"] = float(g.count)
            for rate in _GROUP_METRICS:
                metrics[f"{group}.{rate}"] = float(getattr(g, rate))
        for kind, worst in self.worst.items():
            metrics[f"{prefix}.worst.{kind}"] = worst.value
        return {k: v for k, v in metrics.items() if math.isfinite(v)}


@dataclass(frozen=True)
class FairnessAudit:
    """The audits of several stages of the same students (same labels, same groups)."""

    stages: tuple[StageAudit, ...]

    def stage(self, name: str) -> StageAudit:
        for audited in self.stages:
            if audited.stage == name:
                return audited
        raise KeyError(f"no audit of stage {name!r}; audited: {[s.stage for s in self.stages]}")

    @property
    def worst(self) -> dict[str, WorstDisparity]:
        """Per disparity kind, the worst attribute at the worst stage (what the gate judges)."""
        return _worst((s.stage, d) for s in self.stages for d in s.disparities)

    def to_frame(self) -> pd.DataFrame:
        """One row per stage × attribute × group."""
        return pd.concat([s.to_frame() for s in self.stages], ignore_index=True)

    def disparity_frame(self) -> pd.DataFrame:
        return pd.concat([s.disparity_frame() for s in self.stages], ignore_index=True)

    def to_metrics(self) -> dict[str, float]:
        """Every stage's metrics plus `fairness.worst.<disparity>` over all stages."""
        metrics: dict[str, float] = {}
        for audited in self.stages:
            metrics.update(audited.to_metrics())
        for kind, worst in self.worst.items():
            if math.isfinite(worst.value):
                metrics[f"fairness.worst.{kind}"] = worst.value
        return metrics


def worst_from_metrics(metrics: Mapping[str, float]) -> dict[str, WorstDisparity]:
    """The `worst` of an audit rebuilt from its `to_metrics()` (e.g. a champion's logged MLflow
    metrics), so a gate needs no stored audit object: the same values, attributes and stages."""
    found = {kind: WorstDisparity(kind, math.nan, None, None) for kind in DISPARITY_KINDS}
    for key in sorted(metrics):  # the order of to_metrics is lost in a store: be deterministic
        parts = key.split(".")
        if len(parts) != 4 or parts[0] != "fairness" or parts[2] == "worst":
            continue
        _, stage, attribute, kind = parts
        value = float(metrics[key])
        if kind not in DISPARITY_KINDS or not math.isfinite(value):
            continue
        current = found[kind].value
        lower = kind in LOWER_IS_WORSE
        if math.isnan(current) or (value < current if lower else value > current):
            found[kind] = WorstDisparity(kind, value, attribute, stage)
    return found


_GROUP_METRICS: Final = (
    "selection_rate",
    "tpr",
    "fpr",
    "precision",
    "roc_auc",
    "mean_probability",
    "observed_rate",
    "calibration_gap",
    "ece",
)
_INTERVALS: Final = ("selection_rate", "tpr", "fpr", "precision", "calibration_gap")


def metric_safe(label: str) -> str:
    """A group label as an MLflow metric name part ("35+" -> "35_plus")."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", label.replace("+", "_plus"))


def _flat_group(g: GroupResult) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for field in fields(g):
        value = getattr(g, field.name)
        if field.name.endswith("_ci"):
            base = field.name.removesuffix("_ci")
            row[f"{base}_low"], row[f"{base}_high"] = value
        elif field.name == "notes":
            row["notes"] = "; ".join(value)
        else:
            row[field.name] = value
    return row


def _worst(items: Iterable[tuple[str, AttributeDisparity]]) -> dict[str, WorstDisparity]:
    found = {kind: WorstDisparity(kind, math.nan, None, None) for kind in DISPARITY_KINDS}
    for stage, disparity in items:
        for kind in DISPARITY_KINDS:
            value = disparity.value(kind)
            current = found[kind].value
            if not math.isfinite(value):
                continue
            lower = kind in LOWER_IS_WORSE
            if math.isnan(current) or (value < current if lower else value > current):
                found[kind] = WorstDisparity(kind, value, disparity.attribute, stage)
    return found


# -- metric functions handed to fairlearn's MetricFrame ------------------------------------------
# MetricFrame calls metric(y_true, y_pred, **sample_params) per group; y_pred is the flag, and the
# probability comes in as the sample parameter y_score. The calibration functions share that
# signature so they could be handed to a MetricFrame too.


def _roc_auc(y_true: IntArray, y_pred: IntArray, y_score: FloatArray) -> float:
    if len(np.unique(y_true)) < 2:
        return math.nan  # undefined with one class; the note says so
    return float(roc_auc_score(y_true, y_score))


def calibration_gap(y_true: IntArray, y_pred: IntArray, y_score: FloatArray) -> float:
    """Mean predicted probability minus observed rate (signed)."""
    return float(np.mean(y_score) - np.mean(y_true))


def expected_calibration_error(
    y_true: IntArray, y_pred: IntArray, y_score: FloatArray, bins: int = DEFAULT_CALIBRATION_BINS
) -> float:
    """Σ_b (n_b / n) |mean probability_b − observed rate_b| over equal-width bins of [0, 1]."""
    which = np.clip((np.asarray(y_score) * bins).astype(int), 0, bins - 1)
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        gap = float(np.mean(y_score[inside]) - np.mean(y_true[inside]))
        total += float(inside.mean()) * abs(gap)
    return total


def _metric_frame(y: IntArray, flags: IntArray, prob: FloatArray, labels: pd.Series) -> MetricFrame:
    # Only the rates go through fairlearn: MetricFrame costs about the same per metric whatever
    # the metric, and counts, means and calibration are plain sums (done per group below).
    metrics: dict[str, Callable[..., float]] = {
        "selection_rate": selection_rate,
        "tpr": true_positive_rate,
        "fpr": false_positive_rate,
        "precision": partial(precision_score, zero_division=np.nan),
        "roc_auc": _roc_auc,
    }
    return MetricFrame(
        metrics=metrics,
        y_true=y,
        y_pred=flags,
        sensitive_features=labels.to_numpy(),
        sample_params={"roc_auc": {"y_score": prob}},
    )


# -- bootstrap within each group -----------------------------------------------------------------


def _group_seed(seed: int, attribute: str, group: str) -> np.random.Generator:
    # A stable key per (attribute, group): a group's draws do not depend on which other groups
    # exist, and the stages of one audit share them (paired comparison across stages).
    return np.random.default_rng([seed, zlib.crc32(f"{attribute}\0{group}".encode())])


def _bootstrap(
    y: IntArray,
    flags: IntArray,
    prob: FloatArray,
    rng: np.random.Generator,
    n_bootstrap: int,
    confidence: float,
) -> dict[str, Interval]:
    n = len(y)
    if n_bootstrap == 0 or n == 0:
        return dict.fromkeys(_INTERVALS, _NAN_INTERVAL)
    per_chunk = max(1, _BOOTSTRAP_CELLS // n)
    draws: dict[str, list[FloatArray]] = {name: [] for name in _INTERVALS}
    done = 0
    while done < n_bootstrap:
        size = min(per_chunk, n_bootstrap - done)
        index = rng.integers(0, n, size=(size, n))
        yb, fb, pb = y[index], flags[index], prob[index]
        positives = yb.sum(axis=1).astype("float64")
        flagged = fb.sum(axis=1).astype("float64")
        tp = (yb & fb).sum(axis=1).astype("float64")
        with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 is NaN: rate undefined
            draws["selection_rate"].append(flagged / n)
            draws["tpr"].append(tp / positives)
            draws["fpr"].append((flagged - tp) / (n - positives))
            draws["precision"].append(tp / flagged)
        draws["calibration_gap"].append(pb.mean(axis=1) - yb.mean(axis=1))
        done += size
    tail = (1.0 - confidence) / 2.0
    return {name: _percentiles(np.concatenate(v), tail) for name, v in draws.items()}


def _percentiles(values: FloatArray, tail: float) -> Interval:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return _NAN_INTERVAL
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)


# -- the audit -----------------------------------------------------------------------------------


class AuditOptions(TypedDict, total=False):
    """How `audit` measures a stage (its defaults); passed on by `audit_stages`."""

    n_bootstrap: int
    seed: int
    min_group_size: int
    confidence: float
    calibration_bins: int


def audit(
    y_true: npt.ArrayLike,
    y_prob: npt.ArrayLike,
    threshold: float,
    groups_frame: pd.DataFrame,
    *,
    stage: str,
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    seed: int = 0,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    confidence: float = 0.95,
    calibration_bins: int = DEFAULT_CALIBRATION_BINS,
) -> StageAudit:
    """Audit one stage's scores across the groups in `groups_frame` (one column per attribute,
    string labels, rows in the order of `y_true`; see `assign_groups`).

    `y_true` is 1 for a dropout; `y_prob` the predicted dropout probability; a student is
    flagged when `y_prob >= threshold`. Deterministic for a given `seed`.
    """
    y, prob = _check_inputs(y_true, y_prob, groups_frame, threshold, stage)
    if n_bootstrap < 0 or min_group_size < 1 or not 0.0 < confidence < 1.0 or calibration_bins < 1:
        raise ValueError(
            "need n_bootstrap >= 0, min_group_size >= 1, 0 < confidence < 1, bins >= 1"
        )
    flags = (prob >= threshold).astype("int64")
    groups: list[GroupResult] = []
    disparities: list[AttributeDisparity] = []
    for attribute in groups_frame.columns:
        column = groups_frame[attribute]
        labels = pd.Series(
            column.astype(object).where(column.notna(), UNKNOWN).astype(str).to_numpy()
        )
        metric_frame = _metric_frame(y, flags, prob, labels)
        frame = metric_frame.by_group
        order = sorted(frame.index, key=lambda g: (g == UNKNOWN, str(g)))  # unknown last
        rows = [
            _group_result(
                str(attribute),
                str(group),
                frame.loc[group],
                labels,
                (y, flags, prob),
                seed=seed,
                calibration_bins=calibration_bins,
                n_bootstrap=n_bootstrap,
                confidence=confidence,
                min_group_size=min_group_size,
            )
            for group in order
        ]
        groups.extend(rows)
        disparities.append(_disparity(str(attribute), rows, labels, y, flags, metric_frame))
    return StageAudit(
        stage=stage,
        threshold=float(threshold),
        min_group_size=min_group_size,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        groups=tuple(groups),
        disparities=tuple(disparities),
    )


def audit_stages(
    y_true: npt.ArrayLike,
    stage_probs: Mapping[str, npt.ArrayLike],
    threshold: float | Mapping[str, float],
    groups_frame: pd.DataFrame,
    **options: Unpack[AuditOptions],
) -> FairnessAudit:
    """`audit` for each stage -> its probabilities, same students and groups; `threshold` is one
    for all stages or one per stage."""
    if not stage_probs:
        raise ValueError("no stage to audit")
    audits = []
    for stage, prob in stage_probs.items():
        cut = threshold[stage] if isinstance(threshold, Mapping) else threshold
        audits.append(audit(y_true, prob, cut, groups_frame, stage=stage, **options))
    return FairnessAudit(stages=tuple(audits))


def _check_inputs(
    y_true: npt.ArrayLike,
    y_prob: npt.ArrayLike,
    groups_frame: pd.DataFrame,
    threshold: float,
    stage: str,
) -> tuple[IntArray, FloatArray]:
    if not _NAME.match(stage) or stage == "worst":
        raise ValueError(f"stage {stage!r} must be snake_case (it names metrics)")
    y_raw = np.asarray(y_true, dtype="float64").ravel()
    prob = np.asarray(y_prob, dtype="float64").ravel()
    if not np.isin(y_raw, (0.0, 1.0)).all():
        raise ValueError("y_true must be 0 or 1 (1 = dropout)")
    if not (np.isfinite(prob).all() and ((prob >= 0) & (prob <= 1)).all()):
        raise ValueError("y_prob must be probabilities in [0, 1], no NaN")
    if not (len(y_raw) == len(prob) == len(groups_frame)) or len(y_raw) == 0:
        raise ValueError(
            f"y_true ({len(y_raw)}), y_prob ({len(prob)}) and groups_frame ({len(groups_frame)}) "
            "must have the same, non-zero number of rows"
        )
    if groups_frame.columns.empty or groups_frame.columns.duplicated().any():
        raise ValueError("groups_frame needs at least one attribute column, each named once")
    bad = [str(c) for c in groups_frame.columns if not _NAME.match(str(c)) or c == "worst"]
    if bad:
        raise ValueError(f"attribute names {bad} must be snake_case and not 'worst'")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold} is not in [0, 1]")
    return y_raw.astype("int64"), prob


def _group_result(
    attribute: str,
    group: str,
    row: pd.Series,
    labels: pd.Series,
    data: tuple[IntArray, IntArray, FloatArray],
    *,
    seed: int,
    calibration_bins: int,
    n_bootstrap: int,
    confidence: float,
    min_group_size: int,
) -> GroupResult:
    members = (labels == group).to_numpy()
    y, flags, prob = data[0][members], data[1][members], data[2][members]
    n, positives, flagged = len(y), int(y.sum()), int(flags.sum())
    notes: list[str] = []
    small = n < min_group_size
    if small:
        notes.append(f"n={n} is under the minimum group size {min_group_size}: not compared")
    if group == UNKNOWN:
        notes.append("attribute missing: shown, not compared")
    # fairlearn reads an undefined TPR/FPR as 0; here it is NaN with a note.
    tpr, fpr = float(row["tpr"]), float(row["fpr"])
    if positives == 0:
        tpr = math.nan
        notes.append("no dropouts: TPR and ROC-AUC undefined")
    if positives == n:
        fpr = math.nan
        notes.append("only dropouts: FPR and ROC-AUC undefined")
    if flagged == 0:
        notes.append("nobody flagged: precision undefined")
    ci = _bootstrap(y, flags, prob, _group_seed(seed, attribute, group), n_bootstrap, confidence)
    return GroupResult(
        attribute=attribute,
        group=group,
        count=n,
        positives=positives,
        flagged=flagged,
        selection_rate=float(row["selection_rate"]),
        selection_rate_ci=ci["selection_rate"],
        tpr=tpr,
        tpr_ci=ci["tpr"] if positives else _NAN_INTERVAL,
        fpr=fpr,
        fpr_ci=ci["fpr"] if positives < n else _NAN_INTERVAL,
        precision=float(row["precision"]),
        precision_ci=ci["precision"],
        roc_auc=float(row["roc_auc"]),
        mean_probability=float(prob.mean()),
        observed_rate=float(y.mean()),
        calibration_gap=calibration_gap(y, flags, prob),
        calibration_gap_ci=ci["calibration_gap"],
        ece=expected_calibration_error(y, flags, prob, calibration_bins),
        small=small,
        notes=tuple(notes),
    )


def _disparity(
    attribute: str,
    rows: list[GroupResult],
    labels: pd.Series,
    y: IntArray,
    flags: IntArray,
    every_group: MetricFrame,
) -> AttributeDisparity:
    compared = [r for r in rows if not r.small and r.group != UNKNOWN]
    names = tuple(r.group for r in compared)
    notes: list[str] = []
    if len(compared) < 2:
        notes.append("fewer than two groups large enough to compare")
        nan = math.nan
        return AttributeDisparity(attribute, nan, nan, nan, nan, names, tuple(notes))
    # The gaps are a MetricFrame's between-groups difference and ratio of selection rate, TPR
    # and FPR: what fairlearn's demographic_parity_difference / _ratio and
    # equalized_odds_difference compute, from one frame instead of three. When every group is
    # compared, the frame of every group already holds them.
    spread = _over(names, rows, every_group, labels, y, flags)
    dp_difference = float(spread.difference(method="between_groups")["selection_rate"])
    if max(r.selection_rate for r in compared) == 0.0:
        dp_ratio = 1.0  # nobody flagged in any group: equal treatment, and 0/0 otherwise
    else:
        dp_ratio = float(spread.ratio(method="between_groups")["selection_rate"])
    both = tuple(r.group for r in compared if 0 < r.positives < r.count)
    if len(both) < 2:
        eo_difference = math.nan
        notes.append("fewer than two compared groups with both dropouts and non-dropouts")
    else:
        if len(both) < len(names):
            notes.append("groups without both classes left out of the equalized odds difference")
            spread = _over(both, rows, every_group, labels, y, flags)
        gaps_eo = spread.difference(method="between_groups")
        eo_difference = float(max(gaps_eo["tpr"], gaps_eo["fpr"]))  # fairlearn's worst case
    gaps = [r.calibration_gap for r in compared]
    return AttributeDisparity(
        attribute=attribute,
        dp_difference=dp_difference,
        dp_ratio=dp_ratio,
        eo_difference=eo_difference,
        calibration_gap=max(gaps) - min(gaps),
        compared_groups=names,
        notes=tuple(notes),
    )


def _over(
    names: tuple[str, ...],
    rows: list[GroupResult],
    every_group: MetricFrame,
    labels: pd.Series,
    y: IntArray,
    flags: IntArray,
) -> MetricFrame:
    """A MetricFrame of the groups `names` only: the frame of every group when that is all of
    them, else a new one over their students."""
    if len(names) == len(rows):
        return every_group
    inside = labels.isin(names).to_numpy()
    return _disparity_frame(y[inside], flags[inside], labels.to_numpy()[inside])


def _disparity_frame(y: IntArray, flags: IntArray, sensitive: npt.NDArray[Any]) -> MetricFrame:
    metrics: dict[str, Callable[..., float]] = {
        "selection_rate": selection_rate,
        "tpr": true_positive_rate,
        "fpr": false_positive_rate,
    }
    return MetricFrame(metrics=metrics, y_true=y, y_pred=flags, sensitive_features=sensitive)
