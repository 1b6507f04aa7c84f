"""Where the monitor's figures go: MLflow (a `monitor` run with every figure and the
reliability plot, and each version's own figures on that version's training run, as a time
series) and Prometheus, through a Pushgateway (the alert rules read them there)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

from training.loop.monitor import PROMETHEUS_PREFIX, MonitorReport
from training.loop.quality import ALL, plot_reliability

PUSH_JOB = "dropout-loop-monitor"


def record_in_mlflow(
    client: MlflowClient, report: MonitorReport, run_ids: Mapping[str, str]
) -> str:
    """Logs the figures; returns the id of the monitor run."""
    metrics = report.to_metrics()
    now = int(time.time() * 1000)
    with mlflow.start_run(run_name=f"monitor-{report.today.isoformat()}") as run:
        mlflow.set_tags({"role": "monitor", "model_name": report.model_name or ""})
        mlflow.log_metrics(metrics.mlflow)
        overall = [r for r in report.realized if r.stage == ALL and r.version != ALL]
        if overall:
            with tempfile.TemporaryDirectory() as work:
                plot = plot_reliability(
                    overall, Path(work) / "reliability.png", title="Realized calibration"
                )
                mlflow.log_artifact(str(plot), artifact_path="monitor")
    for version, run_id in run_ids.items():
        own = [
            Metric(key=name, value=value, timestamp=now, step=0)
            for name, value in metrics.mlflow.items()
            if f".v{version}." in name
        ]
        for start in range(0, len(own), 500):  # log_batch takes at most 1,000 metrics
            client.log_batch(run_id, metrics=own[start : start + 500])
    return str(run.info.run_id)


def push_to_gateway(url: str, report: MonitorReport, model_name: str) -> None:
    """Every figure as a gauge under job `dropout-loop-monitor` and the model's name."""
    from prometheus_client import CollectorRegistry, Gauge
    from prometheus_client import push_to_gateway as push

    registry = CollectorRegistry()
    gauges: dict[str, Gauge] = {}
    for point in report.to_metrics().points:
        labels = dict(point.labels)
        gauge = gauges.get(point.name)
        if gauge is None:
            gauge = Gauge(
                point.name,
                f"Learning-loop monitor figure {point.name.removeprefix(PROMETHEUS_PREFIX)}.",
                list(labels),
                registry=registry,
            )
            gauges[point.name] = gauge
        (gauge.labels(**labels) if labels else gauge).set(point.value)
    push(url, job=PUSH_JOB, grouping_key={"model": model_name}, registry=registry)
