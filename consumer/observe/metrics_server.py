"""The container's one HTTP endpoint: /metrics (all shard processors summed), /healthz, /readyz."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from consumer.observe.status import pid_alive, read_statuses

SOCKET_TIMEOUT_SECONDS = 10.0


def sweep_dead_processes(multiproc_dir: Path) -> None:
    """Drops the live-gauge files of processors that exited (killed ones never clean up).

    Counter and histogram files stay: what a dead processor counted is still part of the totals.
    A file another sweep removed first is no error.
    """
    pids: set[int] = set()
    for path in multiproc_dir.glob("gauge_live*_*.db"):
        try:
            pids.add(int(path.stem.rsplit("_", 1)[1]))
        except ValueError:
            continue
    for pid in pids:
        if pid != os.getpid() and not pid_alive(pid):
            with contextlib.suppress(FileNotFoundError):
                mark_process_dead(pid, str(multiproc_dir))  # type: ignore[no-untyped-call]


def readiness(state_dir: Path, daemon_alive: bool) -> tuple[bool, dict[str, object]]:
    processors = read_statuses(state_dir)
    ready = (
        daemon_alive
        and bool(processors)
        and all(p.state in ("ready", "stopping") for p in processors)
    )
    body: dict[str, object] = {
        "ready": ready,
        "daemon_alive": daemon_alive,
        "processors": [
            {
                "shard_id": p.shard_id,
                "pid": p.pid,
                "state": p.state,
                "model_version": p.model_version,
                "detail": p.detail,
            }
            for p in processors
        ],
    }
    return ready, body


class MetricsServer:
    """A small threaded HTTP server; scrapes aggregate the multiprocess files on demand."""

    def __init__(
        self,
        host: str,
        port: int,
        multiproc_dir: Path,
        state_dir: Path,
        daemon_alive: Callable[[], bool],
    ) -> None:
        self._multiproc_dir = multiproc_dir
        self._state_dir = state_dir
        self._daemon_alive = daemon_alive
        server = self

        class Handler(BaseHTTPRequestHandler):
            # A client that connects and sends nothing must not hold a thread for ever.
            timeout = SOCKET_TIMEOUT_SECONDS

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, server.render_metrics(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    alive = server._daemon_alive()
                    body = orjson.dumps({"healthy": alive})
                    self._send(200 if alive else 503, body, "application/json")
                elif path == "/readyz":
                    ready, info = readiness(server._state_dir, server._daemon_alive())
                    self._send(200 if ready else 503, orjson.dumps(info), "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                # Scrapes every few seconds would flood the logs.
                return

        # Two scrapes at once would sweep the same dead processes' files and collect them
        # while they disappear: one scrape at a time (each takes milliseconds).
        self._scrape_lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def render_metrics(self) -> bytes:
        with self._scrape_lock:
            sweep_dead_processes(self._multiproc_dir)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(self._multiproc_dir))  # type: ignore[no-untyped-call]
            return generate_latest(registry)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
