"""Consumer configuration, read from environment variables.

Defaults run against the embedded stack on loopback (see devstack). In AWS the endpoint
variables are left unset so that boto3 and the KCL use the regional endpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from common.settings import CommonSettings


class ConsumerSettings(CommonSettings):
    """Every knob of the consumer service. Each field is one environment variable; the registry,
    model and region names come from CommonSettings (common/settings.py), as does the rule that
    an empty variable means "not set" (for an endpoint: the AWS default)."""

    # --- AWS and the streams -------------------------------------------------------------
    kinesis_endpoint_url: str | None = Field(
        default="http://127.0.0.1:4568", validation_alias="KINESIS_ENDPOINT_URL"
    )
    dynamodb_endpoint_url: str | None = Field(
        default="http://127.0.0.1:8000", validation_alias="DYNAMODB_ENDPOINT_URL"
    )
    # Where the shard processors PUBLISH (PutRecords of predictions and dead letters); unset or
    # empty means KINESIS_ENDPOINT_URL. The KCL daemon always reads from KINESIS_ENDPOINT_URL.
    # Lets the output path go through something else than the input path, e.g. the
    # fault-injecting proxy of the reliability tests (tests/integration/faultproxy.py).
    output_kinesis_endpoint_url: str | None = Field(
        default=None, validation_alias="OUTPUT_KINESIS_ENDPOINT_URL"
    )
    input_stream: str = Field(default="student-events", validation_alias="INPUT_STREAM")
    predictions_stream: str = Field(
        default="student-predictions", validation_alias="PREDICTIONS_STREAM"
    )
    dead_letter_stream: str = Field(
        default="student-dead-letters", validation_alias="DEAD_LETTER_STREAM"
    )

    # --- KCL (rendered into the MultiLangDaemon properties file) ---------------------------
    kcl_application_name: str = Field(
        default="dropout-consumer", validation_alias="KCL_APPLICATION_NAME"
    )
    kcl_worker_id: str | None = Field(default=None, validation_alias="KCL_WORKER_ID")
    kcl_initial_position: Literal["TRIM_HORIZON", "LATEST"] = Field(
        default="TRIM_HORIZON", validation_alias="KCL_INITIAL_POSITION"
    )
    kcl_max_records: int = Field(default=1000, ge=1, le=10000, validation_alias="KCL_MAX_RECORDS")
    kcl_idle_time_between_reads_ms: int = Field(
        default=250, ge=0, validation_alias="KCL_IDLE_TIME_BETWEEN_READS_MS"
    )
    kcl_failover_time_ms: int = Field(
        default=10000, ge=1000, validation_alias="KCL_FAILOVER_TIME_MS"
    )
    kcl_lease_assignment_interval_ms: int = Field(
        default=5000, ge=1000, validation_alias="KCL_LEASE_ASSIGNMENT_INTERVAL_MS"
    )
    kcl_worker_metrics_report_interval_ms: int = Field(
        default=5000, ge=1000, validation_alias="KCL_WORKER_METRICS_REPORT_INTERVAL_MS"
    )
    # At most this many leases per worker (unset: no limit). KCL 3's leader applies its own value
    # to every worker it assigns leases to.
    kcl_max_leases_for_worker: int | None = Field(
        default=None, ge=1, validation_alias="KCL_MAX_LEASES_FOR_WORKER"
    )
    # Also how long the KCL's first shard sync idles before the worker starts (KCL sleeps this
    # long after a sync), so it bounds the start-up time of a fresh application.
    kcl_shard_sync_interval_ms: int = Field(
        default=10000, ge=1000, validation_alias="KCL_SHARD_SYNC_INTERVAL_MS"
    )
    # How long the daemon lets a processor finish its batch and checkpoint at a shutdown
    # before it stops waiting (ECS gives the task stopTimeout, 120 s, in all).
    kcl_shutdown_grace_ms: int = Field(
        default=20000, ge=1000, validation_alias="KCL_SHUTDOWN_GRACE_MS"
    )
    kcl_parent_shard_poll_interval_ms: int = Field(
        default=1000, ge=100, validation_alias="KCL_PARENT_SHARD_POLL_INTERVAL_MS"
    )
    kcl_properties_path: Path = Field(
        default=Path(".stack/consumer/kcl.properties"), validation_alias="KCL_PROPERTIES_PATH"
    )
    java_bin: str = Field(default="java", validation_alias="JAVA_BIN")
    # Extra JVM options of the daemon, split on whitespace (e.g. "-XX:MaxRAMPercentage=50", or
    # "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC" where many short-lived daemons share few cores).
    kcl_java_options: str = Field(default="", validation_alias="KCL_JAVA_OPTIONS")
    # How the daemon starts one record processor per shard.
    processor_command: str = Field(
        default="python -m consumer process", validation_alias="PROCESSOR_COMMAND"
    )

    # --- model registry ------------------------------------------------------------------
    model_poll_interval_seconds: float = Field(
        default=30.0, gt=0, validation_alias="MODEL_POLL_INTERVAL_SECONDS"
    )
    model_cache_dir: Path = Field(
        default=Path(".stack/consumer/models"), validation_alias="MODEL_CACHE_DIR"
    )

    # --- records and publishing ------------------------------------------------------------
    max_record_bytes: int = Field(
        default=64 * 1024, ge=1024, le=1024 * 1024, validation_alias="MAX_RECORD_BYTES"
    )
    # PutRecords calls that failed with a retryable error other than throttling (5xx, network)
    # before the processor gives up (exit 10). Throttling is back-pressure: retried for as long
    # as the daemon lives and the lease is ours, never counted here.
    publish_max_attempts: int = Field(default=20, ge=1, validation_alias="PUBLISH_MAX_ATTEMPTS")
    publish_backoff_initial_seconds: float = Field(
        default=0.1, gt=0, validation_alias="PUBLISH_BACKOFF_INITIAL_SECONDS"
    )
    publish_backoff_max_seconds: float = Field(
        default=5.0, gt=0, validation_alias="PUBLISH_BACKOFF_MAX_SECONDS"
    )
    # How often a long throttle checks that the shard's lease is still this worker's (one
    # DynamoDB read), and logs that it is still throttled.
    throttle_report_interval_seconds: float = Field(
        default=60.0, gt=0, validation_alias="THROTTLE_REPORT_INTERVAL_SECONDS"
    )
    checkpoint_max_attempts: int = Field(
        default=10, ge=1, validation_alias="CHECKPOINT_MAX_ATTEMPTS"
    )
    checkpoint_backoff_initial_seconds: float = Field(
        default=0.2, gt=0, validation_alias="CHECKPOINT_BACKOFF_INITIAL_SECONDS"
    )
    checkpoint_backoff_max_seconds: float = Field(
        default=5.0, gt=0, validation_alias="CHECKPOINT_BACKOFF_MAX_SECONDS"
    )

    # --- capture (the learning loop: docs/learning-loop.md) ---------------------------------
    # Every batch's outcomes are written here before the batch is checkpointed.
    # The store is LOOP_URI (and LOOP_S3_ENDPOINT_URL), shared with training (common/settings.py).
    capture_enabled: bool = Field(default=True, validation_alias="CAPTURE_ENABLED")
    capture_max_attempts: int = Field(default=10, ge=1, validation_alias="CAPTURE_MAX_ATTEMPTS")
    capture_backoff_initial_seconds: float = Field(
        default=0.2, gt=0, validation_alias="CAPTURE_BACKOFF_INITIAL_SECONDS"
    )
    capture_backoff_max_seconds: float = Field(
        default=5.0, gt=0, validation_alias="CAPTURE_BACKOFF_MAX_SECONDS"
    )

    # --- metrics, health, logs --------------------------------------------------------------
    metrics_host: str = Field(default="127.0.0.1", validation_alias="METRICS_HOST")
    metrics_port: int = Field(default=9108, ge=0, le=65535, validation_alias="METRICS_PORT")
    prometheus_multiproc_dir: Path = Field(
        default=Path(".stack/consumer/metrics"), validation_alias="PROMETHEUS_MULTIPROC_DIR"
    )
    state_dir: Path = Field(
        default=Path(".stack/consumer/state"), validation_alias="CONSUMER_STATE_DIR"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias="LOG_LEVEL"
    )
    drift_window_records: int = Field(default=5000, ge=100, validation_alias="DRIFT_WINDOW_RECORDS")
    # The drift gauges (PSI, missing ratio) are recomputed after this many new valid records.
    drift_update_every_records: int = Field(
        default=500, ge=1, validation_alias="DRIFT_UPDATE_EVERY_RECORDS"
    )

    @property
    def publish_endpoint_url(self) -> str | None:
        """The endpoint the publisher's PutRecords calls go to (None: the AWS default)."""
        return self.output_kinesis_endpoint_url or self.kinesis_endpoint_url
