"""The loop's report: read captures and outcomes, join, measure, estimate, count.

`monitor` talks to nothing but the store; pushing the figures (MLflow, a Pushgateway) is the
caller's job, with `MonitorReport.to_metrics()`:

- `mlflow`: `{"loop.<kind>.<metric>.<v<version>|all>.<stage>": value}` plus `loop.<count>`;
  undefined (NaN) figures are left out, since MLflow charts cannot show them.
- `prometheus`: `{'dropout_loop_<metric>{kind="…",stage="…",version="…"}': value}` plus
  unlabelled `dropout_loop_<count>` gauges; NaN is kept (Prometheus has it). Labels are bounded:
  `kind` (realized, estimated, held_out), `version` (model versions seen, and "all"), `stage`
  (the three stages, and "all").
- `points`: the same as (name, labels, value) for clients that set labels themselves.

Each figure comes with `_low` and `_high` (bootstrap for realized, simulation for estimated).

With group definitions (a model's fairness groups, common/groups.py), the report also holds the
realized TPR, FPR and flag rate per student group (training/loop/groups.py):
`dropout_loop_group_<metric>{kind="realized",stage,version,attribute,group}` and, per attribute,
`dropout_loop_group_eo_difference{kind,stage,version,attribute}`; in MLflow
`loop.realized.group.<attribute>[.<group>].<metric>.<v<version>|all>.<stage>`. The extra labels
are bounded too: `attribute` by the definitions, `group` by their labels and `unknown`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final, Protocol

import pandas as pd

from common.capture_format import OUTCOMES_PREFIX
from common.object_store import Store
from training.loop.captures import ReadSummary, read_captures
from training.loop.estimate import Calibrator, Estimate, estimate_by_group
from training.loop.groups import (
    AttributeGap,
    GroupQuality,
    attributes_of,
    label_groups,
    quality_by_student_group,
)
from training.loop.join import JoinCounts, join_outcomes, pending_predictions
from training.loop.outcomes import OutcomeReadSummary, read_outcomes
from training.loop.quality import (
    ALL,
    MIN_COUNT,
    MIN_PER_CLASS,
    Metric,
    QualityReport,
    SampleOptions,
    quality_by_group,
)

PROMETHEUS_PREFIX: Final = "dropout_loop_"
MLFLOW_PREFIX: Final = "loop."
_MLFLOW_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_\-./ :]")


@dataclass(frozen=True)
class MonitorCounts:
    capture_records: int  # after de-duplication, predictions and dead letters
    dead_letters: int
    duplicates: int
    students_captured: int  # with at least one prediction
    students_with_outcome: int  # every student with an outcome (after precedence)
    students_joined: int  # with an outcome and a prediction before its decision
    students_pending: int  # captured, no outcome yet
    outcomes_never_captured: int
    outcomes_predicted_only_after_decision: int
    capture_problems: int  # skipped objects and lines
    outcome_problems: int  # rejected outcome rows
    outcome_conflicts: int  # students left out: different outcomes on the same latest date


@dataclass(frozen=True)
class MetricPoint:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True)
class LoopMetrics:
    mlflow: dict[str, float]
    prometheus: dict[str, float]
    points: tuple[MetricPoint, ...]


@dataclass(frozen=True)
class MonitorReport:
    today: date
    model_name: str | None
    counts: MonitorCounts
    realized: tuple[QualityReport, ...]
    estimated: tuple[Estimate, ...]
    held_out: dict[str, float]
    last_outcome_import: datetime | None
    days_since_last_outcome_import: int | None
    days_since_last_decision: int | None
    captures: ReadSummary
    outcomes: OutcomeReadSummary
    joined: pd.DataFrame
    pending: pd.DataFrame
    groups: tuple[GroupQuality, ...] = ()
    group_gaps: tuple[AttributeGap, ...] = ()

    def to_metrics(self) -> LoopMetrics:
        points: list[MetricPoint] = []
        for g in self.groups:
            labels = (*_labels("realized", g.version, g.stage), ("attribute", g.attribute))
            labels = (*labels, ("group", g.group))
            points += _exported(labels, g, _REALIZED_COUNTS, prefix="group_")
        for gap in self.group_gaps:
            labels = (*_labels("realized", gap.version, gap.stage), ("attribute", gap.attribute))
            points.append(
                MetricPoint(f"{PROMETHEUS_PREFIX}group_eo_difference", labels, gap.eo_difference)
            )
        for report in self.realized:
            labels = _labels("realized", report.version, report.stage)
            points += _exported(labels, report, _REALIZED_COUNTS)
        for estimate in self.estimated:
            labels = _labels("estimated", estimate.version, estimate.stage)
            points += _exported(labels, estimate, _ESTIMATED_COUNTS)
        for version, auc in sorted(self.held_out.items()):
            labels = _labels("held_out", version, ALL)
            points.append(MetricPoint(f"{PROMETHEUS_PREFIX}roc_auc", labels, float(auc)))
        counts = {
            **{name: float(value) for name, value in vars(self.counts).items()},
            "days_since_last_outcome_import": _maybe(self.days_since_last_outcome_import),
            "days_since_last_decision": _maybe(self.days_since_last_decision),
        }
        points += [
            MetricPoint(f"{PROMETHEUS_PREFIX}{name}", (), value)
            for name, value in counts.items()
            if not math.isnan(value)
        ]
        return LoopMetrics(
            mlflow={_mlflow_name(p): p.value for p in points if not math.isnan(p.value)},
            prometheus={_prometheus_name(p): p.value for p in points},
            points=tuple(points),
        )


def _maybe(value: int | None) -> float:
    return float("nan") if value is None else float(value)


def _labels(kind: str, version: str, stage: str) -> tuple[tuple[str, str], ...]:
    return (("kind", kind), ("stage", stage), ("version", version))


class _Measured(Protocol):
    def metrics(self) -> dict[str, Metric]: ...


# The counts exported beside the figures of a realized group (whole or per student group) and
# of an estimated one: an estimate knows no positives, only how many it expects.
_REALIZED_COUNTS: Final = ("count", "positives", "flagged", "small_sample")
_ESTIMATED_COUNTS: Final = ("count", "flagged", "expected_positives", "small_sample", "calibrated")


def _exported(
    labels: tuple[tuple[str, str], ...],
    measured: _Measured,
    counts: tuple[str, ...],
    prefix: str = "",
) -> list[MetricPoint]:
    """A group's figures with their intervals, then its `counts` (attributes, as floats)."""
    return _figures(labels, measured.metrics(), prefix) + [
        MetricPoint(f"{PROMETHEUS_PREFIX}{prefix}{name}", labels, float(getattr(measured, name)))
        for name in counts
    ]


def _figures(
    labels: tuple[tuple[str, str], ...], figures: Mapping[str, Metric], prefix: str = ""
) -> list[MetricPoint]:
    out = []
    for name, metric in figures.items():
        base = f"{PROMETHEUS_PREFIX}{prefix}{name}"
        out += [
            MetricPoint(base, labels, metric.value),
            MetricPoint(f"{base}_low", labels, metric.low),
            MetricPoint(f"{base}_high", labels, metric.high),
        ]
    return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _prometheus_name(point: MetricPoint) -> str:
    if not point.labels:
        return point.name
    labels = ",".join(f'{key}="{_escape(value)}"' for key, value in point.labels)
    return f"{point.name}{{{labels}}}"


def _mlflow_name(point: MetricPoint) -> str:
    metric = point.name.removeprefix(PROMETHEUS_PREFIX)
    if not point.labels:
        return f"{MLFLOW_PREFIX}{metric}"
    labels = dict(point.labels)
    version = labels["version"]
    version = version if version == ALL else f"v{version}"
    if "attribute" in labels:  # a student group's figure: its attribute (and label) come first
        where = [labels["attribute"], *([labels["group"]] if "group" in labels else [])]
        metric = ".".join(["group", *where, metric.removeprefix("group_")])
        metric = metric.replace("+", "_plus")  # "35+" and "35" must stay apart
    name = f"{MLFLOW_PREFIX}{labels['kind']}.{metric}.{version}.{labels['stage']}"
    return _MLFLOW_UNSAFE.sub("_", name)


def monitor(
    store: Store,
    *,
    reference_auc_by_version: Mapping[str, float],
    today: date,
    n_bootstrap: int = 1000,
    seed: int = 0,
    calibrators: Mapping[str, Calibrator] | None = None,
    model_name: str | None = None,
    n_simulations: int | None = None,
    min_count: int = MIN_COUNT,
    min_per_class: int = MIN_PER_CLASS,
    group_definitions: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> MonitorReport:
    """Read, join, measure and estimate (see the module docstring).

    `reference_auc_by_version`: each version's held-out ROC-AUC from training (kind held_out).
    `calibrators`: per version, fitted on that version's held-out predictions (`fit_calibrator`);
    without one, that version's probabilities are taken as calibrated. `model_name` chooses the
    model under `captures/`; without it, the store must hold one model only (ValueError
    otherwise: versions of different models are not comparable). `n_simulations` (CBPE
    intervals) defaults to `n_bootstrap`. `group_definitions`: a fairness groups document
    (common/groups.py); with it, the realized figures per student group are measured too.
    `now` is the wall clock for the freshness of the last outcome import (an operational
    figure: real time even when `today` is a replay's).
    """
    captured = read_captures(store, models=[model_name] if model_name else None)
    names = sorted(set(captured.frame["model_name"]))
    if model_name is None and len(names) > 1:
        raise ValueError(f"captures hold several models ({', '.join(names)}): pass model_name")
    outcomes = read_outcomes(store, today=today)
    frame = captured.frame
    if group_definitions is not None:
        frame = label_groups(frame, group_definitions)
    joined = join_outcomes(frame, outcomes.frame)
    pending = pending_predictions(captured.frame, outcomes.frame)
    sampling = SampleOptions(
        n_bootstrap=n_bootstrap, seed=seed, min_count=min_count, min_per_class=min_per_class
    )
    realized = quality_by_group(joined.frame, **sampling)
    estimated = estimate_by_group(
        pending,
        calibrators=calibrators,
        n_simulations=n_bootstrap if n_simulations is None else n_simulations,
        seed=seed,
        min_count=min_count,
    )
    groups, gaps = (
        quality_by_student_group(joined.frame, attributes_of(group_definitions), **sampling)
        if group_definitions is not None
        else ([], [])
    )
    last_import = _last_import(store)
    decisions = outcomes.frame["decision_date"]
    last_decision = decisions.max() if len(decisions) else None
    return MonitorReport(
        today=today,
        model_name=model_name or (names[0] if names else None),
        counts=_counts(captured.frame, captured.summary, outcomes.summary, joined.counts, pending),
        realized=tuple(realized),
        estimated=tuple(estimated),
        held_out={str(v): float(auc) for v, auc in reference_auc_by_version.items()},
        last_outcome_import=last_import,
        days_since_last_outcome_import=None
        if last_import is None
        else ((now or datetime.now(tz=UTC)).date() - last_import.date()).days,
        days_since_last_decision=None
        if last_decision is None
        else (today - last_decision.date()).days,
        captures=captured.summary,
        outcomes=outcomes.summary,
        joined=joined.frame,
        pending=pending,
        groups=tuple(groups),
        group_gaps=tuple(gaps),
    )


def _last_import(store: Store) -> datetime | None:
    keys = [key for key in store.list(OUTCOMES_PREFIX) if not key.endswith("/")]
    return max((store.modified(key) for key in keys), default=None)


def _counts(
    frame: pd.DataFrame,
    captures: ReadSummary,
    outcomes: OutcomeReadSummary,
    join: JoinCounts,
    pending: pd.DataFrame,
) -> MonitorCounts:
    predictions = frame.loc[(frame["outcome"] == "prediction") & frame["student_id"].notna()]
    return MonitorCounts(
        capture_records=len(frame),
        dead_letters=int((frame["outcome"] == "dead_letter").sum()),
        duplicates=captures.duplicates,
        students_captured=int(predictions["student_id"].nunique()),
        students_with_outcome=join.students_with_outcome,
        students_joined=join.joined_students,
        students_pending=int(pending["student_id"].nunique()),
        outcomes_never_captured=join.never_captured,
        outcomes_predicted_only_after_decision=join.predicted_only_after_decision,
        capture_problems=captures.problems.total,
        outcome_problems=outcomes.problems.total,
        outcome_conflicts=outcomes.conflicts.total,
    )
