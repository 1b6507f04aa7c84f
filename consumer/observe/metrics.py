"""Prometheus metrics of the consumer (names and meanings: docs/metrics.md).

Metrics are created by `ConsumerMetrics(registry)`, never at import time, so tests inject a fresh
`CollectorRegistry` and each process builds its own set. In the service, the supervisor sets
`PROMETHEUS_MULTIPROC_DIR` before the KCL daemon starts the shard processors: prometheus-client
then stores every value in per-process files that the supervisor's endpoint aggregates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NAMESPACE = "dropout_consumer"

BATCH_SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
AGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 5, 10, 30, 60, 300, 900, 3600)
PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))

# How the supervisor's endpoint merges a gauge over the live processes' files.
GaugeMode = Literal["livemax", "liveall", "max"]


class MetricFactory:
    """Creates metrics in the consumer's namespace on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, doc, labels, namespace=NAMESPACE, registry=self.registry)

    def histogram(self, name: str, doc: str, buckets: Sequence[float]) -> Histogram:
        return Histogram(name, doc, namespace=NAMESPACE, buckets=buckets, registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str], mode: GaugeMode) -> Gauge:
        return Gauge(
            name,
            doc,
            labels,
            namespace=NAMESPACE,
            multiprocess_mode=mode,
            registry=self.registry,
        )


class GroupMetrics:
    """Per student group (docs/fairness.md). Labels are bounded by the served model's contract:
    `attribute` and `group` by its fairness definitions (a value outside them is `unknown`),
    `stage` by the three stages, `model_version` by the versions served."""

    LABELS = ("attribute", "group", "stage", "model_version")

    def __init__(self, make: MetricFactory) -> None:
        labels = self.LABELS
        self.scored = make.counter(
            "group_scored",
            "Predictions per student group (attribute and group label), stage and model version.",
            labels,
        )
        self.flagged = make.counter(
            "group_flagged",
            "Predictions flagged at risk per student group, stage and model version.",
            labels,
        )
        self.reference_flag_rate = make.gauge(
            "group_reference_flag_rate",
            "Held-out flag rate of the group at the stage, from the model version's contract.",
            labels,
            "livemax",
        )
        self.reference_flag_ratio = make.gauge(
            "group_reference_flag_ratio",
            "Held-out flag rate of the group over that of all students with the attribute known, "
            "from the contract (groups large enough to compare only).",
            labels,
            "livemax",
        )


class ConsumerMetrics:
    """All metrics of one consumer process, registered on the given registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        make = MetricFactory(registry)
        # What came in and what went out.
        self.records_received = make.counter(
            "records_received", "Records handed to a shard processor by the KCL.", ["shard_id"]
        )
        self.predictions = make.counter(
            "predictions",
            "Predictions published, by decision at the model's threshold.",
            ["decision", "model_version"],
        )
        self.dead_letters = make.counter(
            "dead_letters", "Dead letters published, by reason code.", ["reason"]
        )
        self.ignored_attributes = make.counter(
            "ignored_attributes", "Unknown attribute names ignored in otherwise valid records."
        )
        self.published_records = make.counter(
            "published_records", "Records accepted by PutRecords, by output stream.", ["stream"]
        )
        self.publish_retries = make.counter(
            "publish_retries",
            "PutRecords entries or calls retried, by output stream and error code.",
            ["stream", "error_code"],
        )
        self.publish_throttled_seconds = make.counter(
            "publish_throttled_seconds",
            "Seconds spent waiting on a throttled output stream (back-pressure), by stream.",
            ["stream"],
        )
        # The learning loop's capture store.
        self.captured_records = make.counter(
            "captured_records",
            "Records whose outcome was written to the capture store, by kind.",
            ["kind"],
        )
        self.capture_retries = make.counter(
            "capture_retries",
            "Capture writes retried, by error (the store unreachable, refusing, ...).",
            ["error"],
        )
        self.capture_duration = make.histogram(
            "capture_duration_seconds",
            "Time to write one batch's capture object, retries included.",
            LATENCY_BUCKETS,
        )
        # Checkpoints and the model's life cycle.
        self.checkpoints = make.counter(
            "checkpoints", "Checkpoint attempts, by outcome.", ["outcome"]
        )
        self.model_reloads = make.counter(
            "model_reloads", "Model loads (startup and hot reloads), by outcome.", ["outcome"]
        )
        self.model_polls = make.counter(
            "model_polls",
            "Polls of the registry alias, by result (unchanged, loaded, failed, refused_before).",
            ["result"],
        )
        # Batches: size and time.
        self.batch_size = make.histogram(
            "batch_size_records", "Records per process_records call.", BATCH_SIZE_BUCKETS
        )
        self.batch_duration = make.histogram(
            "batch_duration_seconds",
            "Time to handle one batch: decode, score, publish and checkpoint.",
            LATENCY_BUCKETS,
        )
        self.scoring_duration = make.histogram(
            "scoring_duration_seconds", "Time of the model call for one batch.", LATENCY_BUCKETS
        )
        self.record_age = make.histogram(
            "record_age_seconds",
            "Publish time minus the record's approximate arrival time in Kinesis.",
            AGE_BUCKETS,
        )
        self.probability = make.histogram(
            "dropout_probability",
            "Dropout probabilities of the published predictions.",
            PROBABILITY_BUCKETS,
        )
        # State of each process and of the data it sees.
        self.behind_latest = make.gauge(
            "behind_latest_seconds",
            "How far the shard processor is behind the tip of the stream (millisBehindLatest).",
            ["shard_id"],
            "livemax",
        )
        self.model_info = make.gauge(
            "model_info",
            "1 for the model version a processor serves, 0 for versions it served before.",
            ["model_name", "model_version"],
            "livemax",
        )
        self.processor_ready = make.gauge(
            "processor_ready",
            "1 when the shard's processor has a model to score with, 0 while it waits for one.",
            ["shard_id"],
            "liveall",
        )
        self.feature_psi = make.gauge(
            "feature_psi",
            "Population stability index of recent records against the model's training reference.",
            ["attribute"],
            "livemax",
        )
        self.attribute_missing_ratio = make.gauge(
            "attribute_missing_ratio",
            "Share of recent valid records without the attribute.",
            ["attribute"],
            "livemax",
        )
        self.groups = GroupMetrics(make)
        self.daemon_up = make.gauge(
            "daemon_up",
            "1 while the KCL MultiLangDaemon process runs (set by the supervisor).",
            [],
            "max",
        )
