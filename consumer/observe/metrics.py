"""Prometheus metrics of the consumer (names and meanings: docs/metrics.md).

Metrics are created by `ConsumerMetrics(registry)`, never at import time, so tests inject a fresh
`CollectorRegistry` and each process builds its own set. In the service, the supervisor sets
`PROMETHEUS_MULTIPROC_DIR` before the KCL daemon starts the shard processors: prometheus-client
then stores every value in per-process files that the supervisor's endpoint aggregates.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NAMESPACE = "dropout_consumer"

BATCH_SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
AGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 5, 10, 30, 60, 300, 900, 3600)
PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))


class ConsumerMetrics:
    """All metrics of one consumer process, registered on the given registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        ns = NAMESPACE
        self.records_received = Counter(
            "records_received",
            "Records handed to a shard processor by the KCL.",
            ["shard_id"],
            namespace=ns,
            registry=registry,
        )
        self.predictions = Counter(
            "predictions",
            "Predictions published, by decision at the model's threshold.",
            ["decision", "model_version"],
            namespace=ns,
            registry=registry,
        )
        self.dead_letters = Counter(
            "dead_letters",
            "Dead letters published, by reason code.",
            ["reason"],
            namespace=ns,
            registry=registry,
        )
        self.ignored_attributes = Counter(
            "ignored_attributes",
            "Unknown attribute names ignored in otherwise valid records.",
            namespace=ns,
            registry=registry,
        )
        self.published_records = Counter(
            "published_records",
            "Records accepted by PutRecords, by output stream.",
            ["stream"],
            namespace=ns,
            registry=registry,
        )
        self.publish_retries = Counter(
            "publish_retries",
            "PutRecords entries or calls retried, by output stream and error code.",
            ["stream", "error_code"],
            namespace=ns,
            registry=registry,
        )
        self.publish_throttled_seconds = Counter(
            "publish_throttled_seconds",
            "Seconds spent waiting on a throttled output stream (back-pressure), by stream.",
            ["stream"],
            namespace=ns,
            registry=registry,
        )
        self.captured_records = Counter(
            "captured_records",
            "Records whose outcome was written to the capture store, by kind.",
            ["kind"],
            namespace=ns,
            registry=registry,
        )
        self.capture_retries = Counter(
            "capture_retries",
            "Capture writes retried, by error (the store unreachable, refusing, ...).",
            ["error"],
            namespace=ns,
            registry=registry,
        )
        self.capture_duration = Histogram(
            "capture_duration_seconds",
            "Time to write one batch's capture object, retries included.",
            namespace=ns,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.checkpoints = Counter(
            "checkpoints",
            "Checkpoint attempts, by outcome.",
            ["outcome"],
            namespace=ns,
            registry=registry,
        )
        self.model_reloads = Counter(
            "model_reloads",
            "Model loads (startup and hot reloads), by outcome.",
            ["outcome"],
            namespace=ns,
            registry=registry,
        )
        self.model_polls = Counter(
            "model_polls",
            "Polls of the registry alias, by result (unchanged, loaded, failed, refused_before).",
            ["result"],
            namespace=ns,
            registry=registry,
        )
        self.batch_size = Histogram(
            "batch_size_records",
            "Records per process_records call.",
            namespace=ns,
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_duration = Histogram(
            "batch_duration_seconds",
            "Time to handle one batch: decode, score, publish and checkpoint.",
            namespace=ns,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.scoring_duration = Histogram(
            "scoring_duration_seconds",
            "Time of the model call for one batch.",
            namespace=ns,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.record_age = Histogram(
            "record_age_seconds",
            "Publish time minus the record's approximate arrival time in Kinesis.",
            namespace=ns,
            buckets=AGE_BUCKETS,
            registry=registry,
        )
        self.probability = Histogram(
            "dropout_probability",
            "Dropout probabilities of the published predictions.",
            namespace=ns,
            buckets=PROBABILITY_BUCKETS,
            registry=registry,
        )
        self.behind_latest = Gauge(
            "behind_latest_seconds",
            "How far the shard processor is behind the tip of the stream (millisBehindLatest).",
            ["shard_id"],
            namespace=ns,
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.model_info = Gauge(
            "model_info",
            "1 for the model version a processor serves, 0 for versions it served before.",
            ["model_name", "model_version"],
            namespace=ns,
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.processor_ready = Gauge(
            "processor_ready",
            "1 when the shard's processor has a model to score with, 0 while it waits for one.",
            ["shard_id"],
            namespace=ns,
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.feature_psi = Gauge(
            "feature_psi",
            "Population stability index of recent records against the model's training reference.",
            ["attribute"],
            namespace=ns,
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.attribute_missing_ratio = Gauge(
            "attribute_missing_ratio",
            "Share of recent valid records without the attribute.",
            ["attribute"],
            namespace=ns,
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.daemon_up = Gauge(
            "daemon_up",
            "1 while the KCL MultiLangDaemon process runs (set by the supervisor).",
            namespace=ns,
            multiprocess_mode="max",
            registry=registry,
        )
