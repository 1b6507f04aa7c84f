"""A machine-readable summary of what a command did, written when RUN_SUMMARY_URI is set.

The scheduled workflow (deploy/terraform/modules/training: monitor -> dataset -> train ->
notify) cannot read a container's output, so each step leaves `<RUN_SUMMARY_URI>/<step>.json`
in the loop's store (or a local folder) and the workflow reads it to choose the next step and
to write its notification. The shapes are documented in docs/learning-loop.md; NaN figures are
written as null so the files stay strict JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from common.object_store import StoreError, open_store

if TYPE_CHECKING:
    from training.config import TrainingSettings
    from training.loop.dataset import LabelledDataset
    from training.loop.monitor import MonitorReport
    from training.loop.quality import Metric
    from training.train import TrainingResult

SUMMARY_VERSION = 1


def write_summary(settings: TrainingSettings, step: str, payload: Mapping[str, Any]) -> str | None:
    """Writes `<step>.json` under RUN_SUMMARY_URI; returns its URI (None when unset)."""
    from training.errors import DataSourceError

    if not settings.run_summary_uri:
        return None
    prefix = settings.run_summary_uri.rstrip("/") + "/"
    body = orjson.dumps(
        {"summary_version": SUMMARY_VERSION, "step": step, **_clean(payload)},
        option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
    )
    try:
        store = open_store(prefix, endpoint_url=settings.loop_s3_endpoint_url)
        store.put(f"{step}.json", body)
    except StoreError as exc:
        raise DataSourceError(f"run summary {prefix}{step}.json not written: {exc}") from exc
    return f"{prefix}{step}.json"


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _figure(metric: Metric) -> dict[str, float]:
    return {"value": metric.value, "low": metric.low, "high": metric.high}


def monitor_summary(report: MonitorReport, champion_version: str | None) -> dict[str, Any]:
    """Per version (all stages together): realized and estimated figures and the held-out AUC;
    `champion` repeats the champion's so the notification can name them directly."""
    from training.loop.quality import ALL

    versions: dict[str, dict[str, Any]] = {}
    for realized in report.realized:
        if realized.stage == ALL and realized.version != ALL:
            versions.setdefault(realized.version, {})["realized"] = {
                "count": realized.count,
                "small_sample": realized.small_sample,
                **{name: _figure(m) for name, m in realized.metrics().items()},
            }
    for estimate in report.estimated:
        if estimate.stage == ALL and estimate.version != ALL:
            versions.setdefault(estimate.version, {})["estimated"] = {
                "count": estimate.count,
                "small_sample": estimate.small_sample,
                **{name: _figure(m) for name, m in estimate.metrics().items()},
            }
    for version, auc in report.held_out.items():
        versions.setdefault(version, {})["held_out"] = {"roc_auc": auc}
    empty: dict[str, Any] = {"realized": None, "estimated": None, "held_out": None}
    champion = {**empty, **versions.get(champion_version or "", {})}
    return {
        "model_name": report.model_name,
        "date": report.today.isoformat(),
        "champion_version": champion_version,
        "champion": champion,
        "versions": versions,
        "counts": dict(vars(report.counts)),
        "days_since_last_outcome_import": report.days_since_last_outcome_import,
    }


def dataset_summary(
    dataset: LabelledDataset | None, uri: str | None, why: str = ""
) -> dict[str, Any]:
    """`status` is `built` (with its URI and digest) or `empty` (no student has both a
    captured record and an outcome yet: the workflow then trains on its base data alone)."""
    if dataset is None or uri is None:
        return {"status": "empty", "reason": why, "uri": None, "sha256": None, "rows": 0}
    return {
        "status": "built",
        "reason": "",
        "uri": uri,
        "sha256": dataset.sha256,
        "rows": dataset.rows,
        "students_with_outcome": dataset.summary.students_with_outcome,
        "excluded": dataset.summary.excluded.by_reason(),
    }


def train_summary(result: TrainingResult, model_name: str, alias: str) -> dict[str, Any]:
    decision = result.decision
    return {
        "model_name": model_name,
        "alias": alias,
        "version": result.version,
        "run_id": result.run_id,
        "model_kind": result.model_kind,
        "decision": "promoted" if decision.promote else "refused",
        "forced": decision.forced,
        "reason": decision.reason,
        "champion_version_before": decision.champion_version,
        "challenger": decision.new_scores,
        "champion": decision.champion_scores,
        "data_sha256": result.data.get("sha256"),
        "data_sources": result.data.get("sources", []),
    }
