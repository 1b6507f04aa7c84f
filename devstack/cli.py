"""`python -m devstack up|down|status`: the embedded stack as local processes."""

from __future__ import annotations

import os
import time
from typing import Annotated

import typer

from devstack.processes import ManagedProcess, ServiceSpec, stop_from_pid_files
from devstack.services import (
    base_services,
    consumer_service,
    http_ok,
    prometheus_server,
    pushgateway_server,
)
from devstack.settings import StackSettings
from devstack.streams import create_streams

app = typer.Typer(help="The embedded stack (no Docker): start, stop, status.", no_args_is_help=True)


def _start(spec: ServiceSpec, settings: StackSettings) -> ManagedProcess:
    started = time.monotonic()
    proc = ManagedProcess(spec, settings.logs_dir, settings.pids_dir).start()
    typer.echo(
        f"  {spec.name:<20} pid {proc.pid:<7} ready in {time.monotonic() - started:5.1f} s"
        f"   log: {proc.log_path}"
    )
    return proc


@app.command()
def up(
    consumer: Annotated[bool, typer.Option(help="Start the consumer service (KCL).")] = True,
    pushgateway: Annotated[
        bool,
        typer.Option(help="With the services: the Pushgateway the loop's monitor pushes to."),
    ] = True,
    prometheus: Annotated[
        bool, typer.Option(help="Start Prometheus scraping the consumer and the Pushgateway.")
    ] = False,
    services: Annotated[
        bool, typer.Option(help="Start the emulators and MLflow (off: they already run).")
    ] = True,
) -> None:
    """Start the stack; processes keep running after this command returns."""
    settings = StackSettings()
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    typer.echo(f"embedded stack in {settings.stack_dir}")
    if services:
        for spec in base_services(settings):
            _start(spec, settings)
        create_streams(settings)
        typer.echo(
            f"  streams: {settings.input_stream} ({settings.input_shards} shards), "
            f"{settings.predictions_stream}, {settings.dead_letter_stream}"
        )
        if pushgateway:
            _start(pushgateway_server(settings), settings)
    if consumer:
        _start(consumer_service(settings), settings)
    if prometheus:
        _start(prometheus_server(settings, [f"{settings.host}:{settings.metrics_port}"]), settings)
    typer.echo(
        "endpoints: "
        f"kinesis {settings.kinesis_url}  dynamodb {settings.dynamodb_url}  "
        f"mlflow {settings.mlflow_url}  metrics {settings.metrics_url}/metrics  "
        f"pushgateway {settings.pushgateway_url}"
    )


@app.command()
def down() -> None:
    """Stop everything an earlier `up` started (consumer first, so it can checkpoint)."""
    settings = StackSettings()
    pids = settings.pids_dir
    # Consumers first: they need Kinesis and DynamoDB to finish their last batch.
    order = sorted(pids.glob("consumer-*.pid")) if pids.is_dir() else []
    stopped: list[str] = []
    if order:
        tmp = pids / "consumers"
        tmp.mkdir(exist_ok=True)
        for path in order:
            os.replace(path, tmp / path.name)
        stopped += stop_from_pid_files(tmp, timeout=60)
        tmp.rmdir()
    stopped += stop_from_pid_files(pids)
    typer.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@app.command()
def status() -> None:
    """Which services answer."""
    settings = StackSettings()
    checks = {
        "kinesis": settings.kinesis_url,  # any HTTP answer counts
        "dynamodb": f"{settings.dynamodb_url}/moto-api/",
        "mlflow": f"{settings.mlflow_url}/health",
        "consumer": f"{settings.metrics_url}/healthz",
        "consumer ready": f"{settings.metrics_url}/readyz",
        "pushgateway": f"{settings.pushgateway_url}/-/ready",
        "prometheus": f"{settings.prometheus_url}/-/ready",
    }
    for name, url in checks.items():
        typer.echo(f"  {name:<16} {'up' if http_ok(url) else 'down':<5} {url}")
