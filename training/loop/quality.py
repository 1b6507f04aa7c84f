"""Realized quality of the live model, from joined predictions and outcomes.

Per group (model version x stage, each version over all stages, each stage over all versions,
and everything): count, positives (dropouts), flagged, ROC-AUC, F1 (dropout), Brier score, flag
rate, precision, recall, the reliability curve (equal-width probability bins: mean predicted
probability against the observed dropout rate) and its expected calibration error (ECE).

Each figure has a seeded percentile-bootstrap interval (`n_bootstrap` resamples of the group's
rows with replacement; the seed of a group is derived from `seed`, version and stage, so one
group's interval does not change when others are added). A "stage all" group counts a student
once per stage it was scored at.

Nothing is hidden: a group below `min_count` rows or `min_per_class` of either class is flagged
`small_sample` (its figures are still given); an undefined figure is NaN with a note (ROC-AUC
with one class, precision without flags, recall without dropouts).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypedDict, Unpack

import numpy as np
import numpy.typing as npt
import pandas as pd

from common.attributes import STAGES
from training.loop import metrics as m

MIN_COUNT: Final = 50
MIN_PER_CLASS: Final = 10
N_BINS: Final = 10
CONFIDENCE: Final = 0.95
ALL: Final = "all"
METRIC_NAMES: Final = (
    "roc_auc",
    "f1",
    "brier",
    "flag_rate",
    "precision",
    "recall",
    "ece",
)


@dataclass(frozen=True)
class Metric:
    """A figure and its interval (NaN when undefined)."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_probability: float
    observed_rate: float
    observed_low: float
    observed_high: float


@dataclass(frozen=True)
class QualityReport:
    version: str
    stage: str
    count: int
    positives: int
    flagged: int
    small_sample: bool
    roc_auc: Metric
    f1: Metric
    brier: Metric
    flag_rate: Metric
    precision: Metric
    recall: Metric
    ece: Metric
    bins: tuple[ReliabilityBin, ...]
    n_bootstrap: int
    notes: tuple[str, ...] = field(default=())

    def metrics(self) -> dict[str, Metric]:
        return {name: getattr(self, name) for name in METRIC_NAMES}


def small_sample_note(n: int, positives: int, *, min_count: int, min_per_class: int) -> str | None:
    """Why a group's realized figures cannot be relied on (too few rows, or too few dropouts
    or others), or None when they can."""
    if n >= min_count and min(positives, n - positives) >= min_per_class:
        return None
    return (
        f"small sample: {n} rows, {positives} dropouts, {n - positives} others "
        f"(reliable from {min_count} rows and {min_per_class} of each class)"
    )


class SampleCounts(TypedDict):
    """What every realized report says of its rows (its fields of the same names)."""

    count: int
    positives: int
    flagged: int
    small_sample: bool


def sample_counts(
    y: npt.NDArray[np.int64], d: m.BoolArray, *, min_count: int, min_per_class: int
) -> tuple[SampleCounts, list[str]]:
    """The counts of a group's outcomes `y` (1 = dropout) and decisions `d`, and its first
    notes: the small-sample note when the figures cannot be relied on."""
    n, positives = len(y), int(y.sum())
    note = small_sample_note(n, positives, min_count=min_count, min_per_class=min_per_class)
    counts = SampleCounts(
        count=n, positives=positives, flagged=int(d.sum()), small_sample=note is not None
    )
    return counts, [note] if note is not None else []


def group_seed(seed: int, version: str, stage: str) -> np.random.Generator:
    """A generator per group, stable whatever other groups exist."""
    return np.random.default_rng([seed, zlib.crc32(f"{version}\x00{stage}".encode())])


class SampleOptions(TypedDict, total=False):
    """How a group's figures are measured, by `realized_quality` and by the per-student-group
    figures alike (the defaults are those of the function measuring it)."""

    n_bootstrap: int
    seed: int
    confidence: float
    min_count: int
    min_per_class: int


class QualityOptions(SampleOptions, total=False):
    """How `realized_quality` measures a group (its defaults); passed on by `quality_by_group`."""

    n_bins: int


def realized_quality(
    y_true: npt.ArrayLike,
    probability: npt.ArrayLike,
    at_risk: npt.ArrayLike,
    *,
    version: str = ALL,
    stage: str = ALL,
    n_bootstrap: int = 1000,
    seed: int = 0,
    n_bins: int = N_BINS,
    confidence: float = CONFIDENCE,
    min_count: int = MIN_COUNT,
    min_per_class: int = MIN_PER_CLASS,
) -> QualityReport:
    """The figures of one group (see the module docstring)."""
    from sklearn.metrics import (
        brier_score_loss,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(probability, dtype=float)
    d = np.asarray(at_risk, dtype=bool)
    counts, notes = sample_counts(y, d, min_count=min_count, min_per_class=min_per_class)
    n, positives, flagged = counts["count"], counts["positives"], counts["flagged"]
    if n == 0:
        return _empty(version, stage, n_bins, n_bootstrap, notes)
    both = 0 < positives < n
    if not both:
        notes.append("ROC-AUC undefined: only one class among the outcomes")
    if flagged == 0:
        notes.append("precision undefined: no student was flagged")
    if positives == 0:
        notes.append("recall undefined: no dropout among the outcomes")
    nan = float("nan")
    point = {
        "roc_auc": float(roc_auc_score(y, p)) if both else nan,
        "f1": float(f1_score(y, d, zero_division=np.nan)),
        "brier": float(brier_score_loss(y, p, labels=[0, 1])),
        "flag_rate": flagged / n,
        "precision": float(precision_score(y, d, zero_division=np.nan)),
        "recall": float(recall_score(y, d, zero_division=np.nan)),
    }
    bins = m.bin_index(p, n_bins)
    sums = m.bin_sums(bins[None, :], p[None, :], y[None, :], n_bins)
    point["ece"] = float(m.ece(sums)[0])
    samples = _bootstrap(y, p, d, bins, n_bins, n_bootstrap, group_seed(seed, version, stage))
    values = {
        name: Metric(point[name], *m.percentile_interval(samples[name], confidence))
        for name in METRIC_NAMES
    }
    if both and n_bootstrap:
        usable = int(np.isfinite(samples["roc_auc"]).sum())
        if usable < n_bootstrap:
            notes.append(
                f"ROC-AUC interval from {usable}/{n_bootstrap} resamples with both classes"
            )
    return QualityReport(
        version=version,
        stage=stage,
        bins=_bins(sums, samples["bin_rates"], n_bins, confidence),
        n_bootstrap=n_bootstrap,
        notes=tuple(notes),
        **counts,
        **values,
    )


def _bootstrap(
    y: npt.NDArray[np.int64],
    p: m.FloatArray,
    d: m.BoolArray,
    bins: m.IntArray,
    n_bins: int,
    n_bootstrap: int,
    rng: np.random.Generator,
) -> dict[str, m.FloatArray]:
    n = len(y)
    parts: dict[str, list[m.FloatArray]] = {name: [] for name in (*METRIC_NAMES, "bin_rates")}
    for size in m.chunks(n_bootstrap, n):
        index = rng.integers(0, n, size=(size, n))
        yb, pb, db = y[index], p[index], d[index]
        confusion = m.confusion(yb, db)
        sums = m.bin_sums(bins[index], pb, yb, n_bins)
        rates = np.full(sums.count.shape, np.nan)
        np.divide(sums.positives, sums.count, out=rates, where=sums.count > 0)
        parts["roc_auc"].append(m.auc(yb, pb))
        parts["f1"].append(m.f1(confusion))
        parts["brier"].append(m.brier(yb, pb))
        parts["flag_rate"].append(db.mean(axis=1))
        parts["precision"].append(m.precision(confusion))
        parts["recall"].append(m.recall(confusion))
        parts["ece"].append(m.ece(sums))
        parts["bin_rates"].append(rates)
    return {
        name: np.concatenate(chunks)
        if chunks
        else np.empty((0, n_bins) if name == "bin_rates" else 0)
        for name, chunks in parts.items()
    }


def _bins(
    sums: m.BinSums, rates: m.FloatArray, n_bins: int, confidence: float
) -> tuple[ReliabilityBin, ...]:
    out = []
    for b in range(n_bins):
        count = int(sums.count[0, b])
        mean_p = float(sums.probability[0, b] / count) if count else float("nan")
        rate = float(sums.positives[0, b] / count) if count else float("nan")
        column = rates[:, b] if rates.size else np.empty(0)
        low, high = m.percentile_interval(column, confidence) if count else (rate, rate)
        out.append(ReliabilityBin(b / n_bins, (b + 1) / n_bins, count, mean_p, rate, low, high))
    return tuple(out)


def _empty(
    version: str, stage: str, n_bins: int, n_bootstrap: int, notes: list[str]
) -> QualityReport:
    nan = Metric(float("nan"), float("nan"), float("nan"))
    bins = tuple(
        ReliabilityBin(b / n_bins, (b + 1) / n_bins, 0, *(float("nan"),) * 4) for b in range(n_bins)
    )
    return QualityReport(
        version=version,
        stage=stage,
        count=0,
        positives=0,
        flagged=0,
        small_sample=True,
        bins=bins,
        n_bootstrap=n_bootstrap,
        notes=(*notes, "no rows"),
        **dict.fromkeys(METRIC_NAMES, nan),
    )


def group_keys(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(version, stage) groups of a joined or pending frame, with the "all" roll-ups."""
    versions = sorted(set(frame["model_version"]), key=_version_key)
    stages: list[str] = [s for s in STAGES if s in set(frame["stage"])]
    keys = [(v, s) for v in versions for s in stages if _has(frame, v, s)]
    keys += [(v, ALL) for v in versions]
    keys += [(ALL, s) for s in stages]
    keys.append((ALL, ALL))
    return keys


def select(frame: pd.DataFrame, version: str, stage: str) -> pd.DataFrame:
    keep = np.ones(len(frame), dtype=bool)
    if version != ALL:
        keep &= (frame["model_version"] == version).to_numpy()
    if stage != ALL:
        keep &= (frame["stage"] == stage).to_numpy()
    return frame.loc[keep]


def _has(frame: pd.DataFrame, version: str, stage: str) -> bool:
    return bool(((frame["model_version"] == version) & (frame["stage"] == stage)).any())


def _version_key(version: str) -> tuple[int, int, str]:
    # Registry versions are integers: "10" after "9".
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


def quality_by_group(
    joined: pd.DataFrame, **options: Unpack[QualityOptions]
) -> list[QualityReport]:
    """`realized_quality` of every group of a joined frame (`join_outcomes(...).frame`)."""
    reports = []
    for version, stage in group_keys(joined):
        rows = select(joined, version, stage)
        reports.append(
            realized_quality(
                rows["y_true"].to_numpy(),
                rows["probability"].to_numpy(),
                rows["at_risk"].to_numpy(),
                version=version,
                stage=stage,
                **options,
            )
        )
    return reports


def plot_reliability(
    reports: Sequence[QualityReport], path: str | Path, *, title: str | None = None
) -> Path:
    """A reliability diagram (PNG) of the reports' bins, with bootstrap bars.

    Draws on an Agg canvas of its own: no global backend is chosen, nothing is shown.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    for report in reports:
        used = [b for b in report.bins if b.count > 0]
        x = [b.mean_probability for b in used]
        y = [b.observed_rate for b in used]
        errors = np.array(
            [
                [max(b.observed_rate - b.observed_low, 0) for b in used],
                [max(b.observed_high - b.observed_rate, 0) for b in used],
            ]
        )
        flag = " (small sample)" if report.small_sample else ""
        version = "all versions" if report.version == ALL else f"v{report.version}"
        label = f"{version} · {report.stage}: n={report.count}, ECE={report.ece.value:.3f}{flag}"
        axes.errorbar(x, y, yerr=errors, marker="o", capsize=3, label=label)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("mean predicted dropout probability")
    axes.set_ylabel("observed dropout rate")
    axes.set_title(title or "Reliability of the live model")
    axes.legend(loc="upper left", fontsize="small")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png")
    return out
