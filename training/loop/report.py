"""The monitor's report on the terminal: realized quality next to the version's held-out figure
and the estimate for students whose outcome is pending, with counts and intervals (labelled
samples are small; the intervals say how small)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rich.table import Table

from training.loop.monitor import MonitorReport
from training.loop.quality import ALL, Metric


def _fmt(metric: Metric) -> str:
    if math.isnan(metric.value):
        return "n/a"
    if math.isnan(metric.low) or math.isnan(metric.high):
        return f"{metric.value:.3f}"
    return f"{metric.value:.3f} [{metric.low:.3f}, {metric.high:.3f}]"


def monitor_table(report: MonitorReport, facts: Mapping[str, Any]) -> list[Any]:
    counts = report.counts
    realized = Table(title="Realized quality (captured predictions joined with outcomes)")
    for column in ("version", "stage", "n", "dropouts", "ROC-AUC [95% CI]", "held-out AUC"):
        realized.add_column(column)
    for column in ("F1", "Brier", "flag rate", "ECE", "note"):
        realized.add_column(column)
    for r in report.realized:
        held = report.held_out.get(r.version)
        realized.add_row(
            r.version,
            r.stage,
            str(r.count),
            str(r.positives),
            _fmt(r.roc_auc),
            "" if held is None or r.version == ALL else f"{held:.3f}",
            _fmt(r.f1),
            _fmt(r.brier),
            _fmt(r.flag_rate),
            _fmt(r.ece),
            "small sample" if r.small_sample else "",
        )
    estimated = Table(title="Estimated quality of predictions whose outcome is pending (CBPE)")
    for column in ("version", "stage", "n", "est. ROC-AUC", "est. F1", "calibrated", "note"):
        estimated.add_column(column)
    for e in report.estimated:
        figures = e.metrics()
        estimated.add_row(
            e.version,
            e.stage,
            str(e.count),
            _fmt(figures["roc_auc"]),
            _fmt(figures["f1"]),
            "yes" if e.calibrated else "no",
            "small sample" if e.small_sample else "",
        )
    since = report.days_since_last_outcome_import
    summary = (
        f"captured records {counts.capture_records} (duplicates dropped {counts.duplicates}), "
        f"students captured {counts.students_captured}, with an outcome "
        f"{counts.students_with_outcome}, joined {counts.students_joined}, pending "
        f"{counts.students_pending}; last outcome import "
        + ("never" if since is None else f"{since} day(s) ago")
        + f"; versions with a registry record: {', '.join(sorted(facts)) or 'none'}"
    )
    return [realized, estimated, summary]
