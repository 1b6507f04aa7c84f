"""Renders the KCL MultiLangDaemon properties file from ConsumerSettings.

Local emulators need extra settings (endpoints, no CloudWatch metrics, no worker metrics, which
would otherwise probe the EC2 metadata address); in AWS the endpoint variables are empty and the
daemon uses the regional endpoints, CloudWatch metrics and the container's task role.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from consumer.config import ConsumerSettings


def render_properties(settings: ConsumerSettings) -> str:
    """The properties file text. Keys are the MultiLangDaemonConfiguration bean names."""
    # The supervisor decides the worker id (and exports it to the processors) before it renders.
    worker_id = settings.kcl_worker_id or f"{socket.gethostname()}-{os.getpid()}"
    props: dict[str, str] = {
        "executableName": settings.processor_command,
        "streamName": settings.input_stream,
        "applicationName": settings.kcl_application_name,
        "workerId": worker_id,
        "processingLanguage": "python/3.11",
        "AwsCredentialsProvider": "DefaultCredentialsProvider",
        "regionName": settings.aws_region,
        "initialPositionInStream": settings.kcl_initial_position,
        "retrievalMode": "POLLING",
        "maxRecords": str(settings.kcl_max_records),
        # Short waits between GetRecords calls keep put->prediction latency low; Kinesis allows
        # 5 reads per second per shard, which 4 per second stays under.
        "idleTimeBetweenReadsInMillis": str(settings.kcl_idle_time_between_reads_ms),
        "failoverTimeMillis": str(settings.kcl_failover_time_ms),
        "shardSyncIntervalMillis": str(settings.kcl_shard_sync_interval_ms),
        "parentShardPollIntervalMillis": str(settings.kcl_parent_shard_poll_interval_ms),
        "cleanupLeasesUponShardCompletion": "true",
        # The daemon waits this long for a processor to finish its last batch on shutdown.
        "shutdownGraceMillis": str(settings.kcl_shutdown_grace_ms),
        # KCL 3 assigns leases from its leader on this period (default: twice the fail-over
        # time); shorter means new workers and orphaned shards get work sooner.
        "leaseAssignmentIntervalMillis": str(settings.kcl_lease_assignment_interval_ms),
        # The leader only assigns leases to workers whose metrics entry it has seen.
        "workerMetricsReporterFreqInMillis": str(settings.kcl_worker_metrics_report_interval_ms),
    }
    if settings.kcl_max_leases_for_worker is not None:
        props["maxLeasesForWorker"] = str(settings.kcl_max_leases_for_worker)
    local = settings.kinesis_endpoint_url is not None or settings.dynamodb_endpoint_url is not None
    if settings.kinesis_endpoint_url:
        props["kinesisEndpoint"] = settings.kinesis_endpoint_url
    if settings.dynamodb_endpoint_url:
        props["dynamoDBEndpoint"] = settings.dynamodb_endpoint_url
    if local:
        # Emulators have no CloudWatch and no EC2 metadata service.
        props["metricsLevel"] = "NONE"
        props["disableWorkerMetrics"] = "true"
    else:
        props["metricsLevel"] = "SUMMARY"
    lines = ["# Rendered by `python -m consumer render-properties`; do not edit by hand."]
    lines += [f"{key} = {value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


def write_properties(settings: ConsumerSettings, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_properties(settings), encoding="utf-8")
    return path
