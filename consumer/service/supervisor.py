"""The consumer service's main process (`python -m consumer run`, the container's entry point).

It renders the KCL properties, starts the metrics/health endpoint and the log relay, then runs
the KCL MultiLangDaemon (Java) as a child, which starts one `python -m consumer process` per shard
lease. SIGTERM/SIGINT are forwarded to the daemon only: the daemon's shutdown hook asks every
processor to finish its batch and checkpoint (within shutdownGraceMillis), so processors must not
receive the signal themselves; the daemon runs in its own session for that reason. If this
process dies abruptly, the kernel kills the daemon too (parent-death signal), like a container
that stops.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from common.exit_codes import ExitCode
from consumer.config import ConsumerSettings

_PR_SET_PDEATHSIG = 1
DAEMON_MAIN_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"


def kcl_jars_dir() -> Path:
    import amazon_kclpy

    return Path(amazon_kclpy.__file__).parent / "jars"


def daemon_command(settings: ConsumerSettings, properties: Path) -> list[str]:
    logback = Path(__file__).with_name("logback.xml")
    return [
        settings.java_bin,
        *settings.kcl_java_options.split(),
        "-cp",
        f"{kcl_jars_dir()}/*",
        DAEMON_MAIN_CLASS,
        "--properties-file",
        str(properties),
        "--log-configuration",
        str(logback),
    ]


def _die_with_parent() -> None:
    # Linux only; elsewhere the daemon simply outlives a killed supervisor.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        return


# The files prometheus-client writes in multiprocess mode: <kind>_<pid>.db, where a gauge's
# kind carries its mode (gauge_livemax_123.db).
_METRIC_FILE = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_\d+\.db$")


def clear_metric_files(path: Path) -> list[str]:
    """Removes the metric files a previous run left (they would be summed into this run's
    totals), and nothing else: PROMETHEUS_MULTIPROC_DIR may be a folder shared with other
    files. Returns the names of what it left alone."""
    path.mkdir(parents=True, exist_ok=True)
    others: list[str] = []
    for entry in path.iterdir():
        if entry.is_file() and _METRIC_FILE.match(entry.name):
            entry.unlink(missing_ok=True)
        else:
            others.append(entry.name)
    return sorted(others)


def run_service(settings: ConsumerSettings) -> int:
    """Runs until the daemon exits; returns its exit code (0 after a graceful stop)."""
    multiproc_dir = settings.prometheus_multiproc_dir.resolve()
    state_dir = settings.state_dir.resolve()
    others = clear_metric_files(multiproc_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    # One worker id, decided here: the daemon registers its leases under it, and the shard
    # processors (which inherit this environment) check their lease's owner against it.
    worker_id = settings.kcl_worker_id or f"{socket.gethostname()}-{os.getpid()}"
    settings = settings.model_copy(update={"kcl_worker_id": worker_id})
    os.environ["KCL_WORKER_ID"] = worker_id
    # prometheus-client picks its storage when first imported, and the daemon passes this
    # environment on to every shard processor.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)
    os.environ["CONSUMER_STATE_DIR"] = str(state_dir)

    import structlog
    from prometheus_client import CollectorRegistry

    from consumer.observe.log_relay import LineWriter, LogRelay, pump_daemon_output
    from consumer.observe.logs import configure_logging
    from consumer.observe.metrics import ConsumerMetrics
    from consumer.observe.metrics_server import MetricsServer
    from consumer.service.kcl_properties import write_properties

    writer = LineWriter(sys.stdout)
    configure_logging(settings.log_level, fallback=sys.stdout, role="supervisor")
    log = structlog.get_logger("consumer.service.supervisor")
    relay = LogRelay(state_dir / "log.sock", writer)
    relay.start()
    if others:
        log.warning(
            "metrics_dir_not_empty",
            path=str(multiproc_dir),
            left_alone=others[:20],
            hint="PROMETHEUS_MULTIPROC_DIR should be a folder of its own",
        )

    properties = write_properties(settings, settings.kcl_properties_path.resolve())
    metrics = ConsumerMetrics(CollectorRegistry())
    daemon: subprocess.Popen[bytes] | None = None

    def daemon_alive() -> bool:
        return daemon is not None and daemon.poll() is None

    server = MetricsServer(
        settings.metrics_host, settings.metrics_port, multiproc_dir, state_dir, daemon_alive
    )
    server.start()

    command = daemon_command(settings, properties)
    log.info(
        "starting KCL daemon",
        application=settings.kcl_application_name,
        worker_id=worker_id,
        stream=settings.input_stream,
        properties=str(properties),
        metrics_port=server.port,
    )
    try:
        daemon = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (no threads run Python code in the child)
        )
    except OSError as exc:
        log.error("cannot start the KCL daemon", error=str(exc), command=command[0])
        server.stop()
        relay.stop()
        return ExitCode.DAEMON_NOT_STARTED
    metrics.daemon_up.set(1)
    assert daemon.stdout is not None
    pump = pump_daemon_output(daemon.stdout, writer)

    stop_requested = threading.Event()

    def forward(signum: int, _frame: FrameType | None) -> None:
        if not stop_requested.is_set():
            stop_requested.set()
            log.info("stop requested; asking the KCL daemon to shut down gracefully", signal=signum)
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    code = daemon.wait()
    pump.join(timeout=5)
    metrics.daemon_up.set(0)
    if stop_requested.is_set():
        log.info("KCL daemon stopped", exit_code=code)
        code = 0 if code in (0, 130, 143) else code
    else:
        # A shard processor that cannot go on (e.g. publishing failed past its retry budget)
        # exits, and the daemon exits with it: the orchestrator restarts the task, which
        # resumes from the last checkpoint.
        log.error("KCL daemon exited on its own", exit_code=code)
        code = ExitCode.DAEMON_EXITED
    # Give processors a moment to flush their last log lines through the relay.
    time.sleep(0.3)
    server.stop()
    relay.stop()
    return code
