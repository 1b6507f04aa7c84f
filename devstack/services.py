"""The services of the embedded stack, as local processes bound to loopback.

kinesis-local (kinesis-mock on Node: its plain port speaks HTTP/2 cleartext, which the KCL needs),
moto_server for DynamoDB (the KCL's lease, coordinator and worker-metrics tables) and the S3 API
of the learning loop's store, `mlflow server` (sqlite + local artifacts, job runner off), the
consumer service (KCL daemon + shard processors + metrics endpoint), the Pushgateway the loop's
monitor pushes to, and Prometheus scraping both (Debian packages prometheus and
prometheus-pushgateway).
"""

from __future__ import annotations

import shutil
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devstack.processes import ServiceSpec
from devstack.settings import REPO_ROOT, StackSettings

KINESIS_LOCAL_DIR = Path(__file__).resolve().parent / "node_modules" / "kinesis-local"
# Emulators accept any credentials; the SDKs and the KCL still want some.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "embedded-stack",
    "AWS_SECRET_ACCESS_KEY": "embedded-stack",
    "AWS_SESSION_TOKEN": "",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def stack_client(settings: StackSettings, service: str) -> Any:
    """A boto3 client for one of the stack's emulated AWS services: `kinesis` (kinesis-local),
    `dynamodb` and `s3` (moto; S3 with path-style addressing), with the dummy credentials."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=settings.kinesis_url if service == "kinesis" else settings.dynamodb_url,
        region_name=settings.aws_region,
        aws_access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}) if service == "s3" else None,
    )


def venv_bin(name: str) -> str:
    """A console script of the running interpreter's environment (the project's .venv)."""
    return str(Path(sys.executable).parent / name)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback URL built here)
            return 200 <= int(response.status) < 300
    except OSError:
        return False


def tcp_http_answers(url: str, timeout: float = 2.0) -> bool:
    """True when something answers HTTP at the URL, whatever the status code."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


# kinesis-mock settings that shape its behaviour (the container path of the tests uses them too).
KINESIS_LOCAL_BEHAVIOUR: dict[str, str] = {
    "LOG_LEVEL": "WARN",
    "CREATE_STREAM_DURATION": "200ms",
    "SPLIT_SHARD_DURATION": "500ms",
    # Raise the mock's per-account limits well above what a test creates.
    "SHARD_LIMIT": "200",
}


def kinesis_local(settings: StackSettings, *, persist: bool = False) -> ServiceSpec:
    main_js = KINESIS_LOCAL_DIR / "main.js"
    if not main_js.exists():
        raise FileNotFoundError(
            f"{main_js} is missing: run `make setup` (npm ci in devstack) first"
        )
    node = shutil.which("node")
    if node is None:
        raise FileNotFoundError("node is not on PATH: Node.js 20 runs kinesis-local")
    data_dir = settings.stack_dir / "kinesis"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "KINESIS_MOCK_PLAIN_PORT": str(settings.kinesis_port),
        "KINESIS_MOCK_TLS_PORT": str(settings.kinesis_tls_port),
        "KINESIS_MOCK_CERT_PATH": str(KINESIS_LOCAL_DIR / "server.json"),
        "AWS_REGION": settings.aws_region,
        **KINESIS_LOCAL_BEHAVIOUR,
        "SHOULD_PERSIST_DATA": "true" if persist else "false",
        "PERSIST_PATH": str(data_dir),
        "PERSIST_INTERVAL": "1s",
    }
    return ServiceSpec(
        name="kinesis",
        argv=[node, str(main_js)],
        env=env,
        cwd=KINESIS_LOCAL_DIR,
        probe=lambda: tcp_http_answers(settings.kinesis_url),
        start_timeout=60,
    )


def moto_dynamodb(settings: StackSettings) -> ServiceSpec:
    return ServiceSpec(
        name="dynamodb",
        argv=[venv_bin("moto_server"), "-H", settings.host, "-p", str(settings.dynamodb_port)],
        env=FAKE_AWS_ENV,
        probe=lambda: http_ok(f"{settings.dynamodb_url}/moto-api/"),
        start_timeout=60,
    )


def mlflow_server(settings: StackSettings) -> ServiceSpec:
    root = settings.stack_dir / "mlflow"
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    return ServiceSpec(
        name="mlflow",
        argv=[
            venv_bin("mlflow"),
            "server",
            "--host",
            settings.host,
            "--port",
            str(settings.mlflow_port),
            "--backend-store-uri",
            f"sqlite:///{(root / 'mlflow.db').resolve()}",
            "--artifacts-destination",
            str((root / "artifacts").resolve()),
            "--serve-artifacts",
            "--workers",
            "1",
        ],
        # The job runner alone costs 1.7 GB and nothing here uses it.
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        probe=lambda: http_ok(f"{settings.mlflow_url}/health"),
        start_timeout=120,
    )


def base_services(settings: StackSettings) -> tuple[ServiceSpec, ...]:
    """What every stack starts first, in this order: kinesis-local, moto, the MLflow server
    (the consumer, the Pushgateway and Prometheus come after, when a caller wants them)."""
    return (kinesis_local(settings), moto_dynamodb(settings), mlflow_server(settings))


# KCL timings of the embedded stack (tests, demo, benchmarks): a fresh KCL application serves
# in seconds instead of most of a minute, and a stop waits 5 s, not 20, for the batch in flight.
# Deployments keep the defaults of consumer/config.py.
QUICK_KCL_ENV: dict[str, str] = {
    "KCL_SHARD_SYNC_INTERVAL_MS": "1000",
    "KCL_LEASE_ASSIGNMENT_INTERVAL_MS": "1000",
    "KCL_WORKER_METRICS_REPORT_INTERVAL_MS": "1000",
    "KCL_FAILOVER_TIME_MS": "5000",
    "KCL_SHUTDOWN_GRACE_MS": "5000",
    "KCL_PARENT_SHARD_POLL_INTERVAL_MS": "500",
    "KCL_JAVA_OPTIONS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}


def consumer_env(
    settings: StackSettings,
    *,
    worker: str = "worker-1",
    metrics_port: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment of one consumer worker: its own state, metrics and properties files."""
    home = settings.stack_dir / "consumer" / worker
    return {
        **FAKE_AWS_ENV,
        **QUICK_KCL_ENV,
        "AWS_REGION": settings.aws_region,
        "KINESIS_ENDPOINT_URL": settings.kinesis_url,
        "DYNAMODB_ENDPOINT_URL": settings.dynamodb_url,
        "INPUT_STREAM": settings.input_stream,
        "PREDICTIONS_STREAM": settings.predictions_stream,
        "DEAD_LETTER_STREAM": settings.dead_letter_stream,
        "KCL_APPLICATION_NAME": settings.kcl_application_name,
        "KCL_WORKER_ID": worker,
        "KCL_PROPERTIES_PATH": str(home / "kcl.properties"),
        "MLFLOW_TRACKING_URI": settings.mlflow_url,
        "MODEL_NAME": settings.model_name,
        "LOOP_URI": settings.loop_uri,
        "LOOP_S3_ENDPOINT_URL": settings.dynamodb_url,
        "METRICS_HOST": settings.host,
        "METRICS_PORT": str(metrics_port or settings.metrics_port),
        "PROMETHEUS_MULTIPROC_DIR": str(home / "metrics"),
        "CONSUMER_STATE_DIR": str(home / "state"),
        "MODEL_CACHE_DIR": str(settings.stack_dir / "consumer" / "models"),
        # The daemon starts shard processors with this interpreter: the project's .venv.
        "PROCESSOR_COMMAND": f"{sys.executable} -m consumer process",
        "PYTHONPATH": str(REPO_ROOT),
        **(extra or {}),
    }


def training_env(settings: StackSettings) -> dict[str, str]:
    """Environment of `python -m training ...` against the stack: its registry and model, the
    learning loop's store (moto's S3 API) and the Pushgateway the monitor pushes to."""
    return {
        **FAKE_AWS_ENV,
        "AWS_REGION": settings.aws_region,
        "MLFLOW_TRACKING_URI": settings.mlflow_url,
        "MODEL_NAME": settings.model_name,
        "LOOP_URI": settings.loop_uri,
        "LOOP_S3_ENDPOINT_URL": settings.dynamodb_url,
        "PUSHGATEWAY_URL": settings.pushgateway_url,
        "REPORTS_DIR": str(settings.stack_dir / "reports"),
    }


def consumer_service(
    settings: StackSettings,
    *,
    worker: str = "worker-1",
    metrics_port: int | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> ServiceSpec:
    port = metrics_port or settings.metrics_port
    return ServiceSpec(
        name=f"consumer-{worker}",
        argv=[sys.executable, "-m", "consumer", "run"],
        env=consumer_env(settings, worker=worker, metrics_port=port, extra=extra_env),
        cwd=REPO_ROOT,
        probe=lambda: http_ok(f"http://{settings.host}:{port}/healthz"),
        start_timeout=90,
        # KCL finishes the batch in flight and checkpoints before it exits.
        stop_timeout=60,
    )


# The Debian package's binary, or the upstream release's name.
PUSHGATEWAY_BINARIES = ("prometheus-pushgateway", "pushgateway")


def pushgateway_binary() -> str:
    for name in PUSHGATEWAY_BINARIES:
        binary = shutil.which(name)
        if binary is not None:
            return binary
    raise FileNotFoundError(
        "the Pushgateway is not installed (Debian: apt-get install prometheus-pushgateway; "
        "make setup does it when it runs as root)"
    )


def pushgateway_server(settings: StackSettings) -> ServiceSpec:
    """The Pushgateway on loopback; what is pushed survives a restart (a persistence file in
    the stack's folder, not the Debian package's system path)."""
    binary = pushgateway_binary()
    root = settings.stack_dir / "pushgateway"
    root.mkdir(parents=True, exist_ok=True)
    url = settings.pushgateway_url
    return ServiceSpec(
        name="pushgateway",
        argv=[
            binary,
            f"--web.listen-address={settings.host}:{settings.pushgateway_port}",
            f"--persistence.file={root / 'metrics.data'}",
            "--persistence.interval=5s",
        ],
        probe=lambda: http_ok(f"{url}/-/ready"),
        start_timeout=30,
    )


def prometheus_config(settings: StackSettings, scrape_targets: list[str]) -> str:
    """The embedded stack's Prometheus: the consumers (job dropout-consumer, as everywhere) and
    the Pushgateway, whose pushed job and labels are kept (honor_labels), with every rule file
    of deploy/prometheus/rules/."""
    targets = ", ".join(f"'{target}'" for target in scrape_targets)
    rules = REPO_ROOT / "deploy" / "prometheus" / "rules"
    return (
        "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\n"
        f"rule_files: ['{rules}/*.yml']\n"
        "scrape_configs:\n"
        "  - job_name: dropout-consumer\n"
        f"    static_configs:\n      - targets: [{targets}]\n"
        "  - job_name: pushgateway\n"
        "    honor_labels: true\n"
        f"    static_configs:\n      - targets: ['{settings.host}:{settings.pushgateway_port}']\n"
    )


def prometheus_server(settings: StackSettings, scrape_targets: list[str]) -> ServiceSpec:
    binary = shutil.which("prometheus")
    if binary is None:
        raise FileNotFoundError(
            "prometheus is not installed (Debian: apt-get install prometheus; make setup does it "
            "when it runs as root)"
        )
    root = settings.stack_dir / "prometheus"
    (root / "data").mkdir(parents=True, exist_ok=True)
    config = root / "prometheus.yml"
    config.write_text(prometheus_config(settings, scrape_targets), encoding="utf-8")
    return ServiceSpec(
        name="prometheus",
        argv=[
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address={settings.host}:{settings.prometheus_port}",
            "--web.enable-lifecycle",
        ],
        probe=lambda: http_ok(f"{settings.prometheus_url}/-/ready"),
        start_timeout=60,
    )
