"""The supervisor's end of the log path: one writer to the container's standard output.

Shard processors send finished JSON lines as datagrams (see consumer.observe.logs); the KCL
daemon's own lines arrive on its stdout/stderr pipes and are wrapped as JSON here. A lock
around the output keeps every line whole.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TextIO

import orjson

# The daemon logs with the pattern in consumer/logback.xml: "LEVEL|logger|thread|message".
_DAEMON_LINE = re.compile(r"^(TRACE|DEBUG|INFO|WARN|ERROR)\|([^|]*)\|([^|]*)\|(.*)$")
_LEVELS = {"WARN": "warning", "TRACE": "debug"}


class LineWriter:
    """Writes whole lines to a stream from many threads."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self._out.write(line.rstrip("\n") + "\n")
            self._out.flush()


def daemon_line_to_json(line: str) -> str:
    """One line the Java daemon printed, as a JSON log line."""
    line = line.rstrip("\r\n")
    match = _DAEMON_LINE.match(line)
    event: dict[str, str] = {"timestamp": datetime.now(UTC).isoformat(), "source": "kcl"}
    if match:
        level, logger, thread, message = match.groups()
        event.update(
            level=_LEVELS.get(level, level.lower()), logger=logger, thread=thread, event=message
        )
    else:
        # Stack-trace lines and anything printed before logging was configured.
        event.update(level="info", logger="kcl", event=line)
    return orjson.dumps(event).decode()


class LogRelay:
    """Receives processors' datagrams on a Unix socket and writes them out."""

    def __init__(self, socket_path: Path, writer: LineWriter) -> None:
        self._path = socket_path
        self._writer = writer
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self._path))
        sock.settimeout(0.5)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="log-relay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self._writer.write(data.decode("utf-8", "replace"))

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        with contextlib.suppress(OSError):
            self._path.unlink(missing_ok=True)


def pump_daemon_output(stream: IO[bytes], writer: LineWriter) -> threading.Thread:
    """Re-emits each line of the daemon's output as JSON, in a background thread."""

    def run() -> None:
        for raw in iter(stream.readline, b""):
            writer.write(daemon_line_to_json(raw.decode("utf-8", "replace")))

    thread = threading.Thread(target=run, name="daemon-output", daemon=True)
    thread.start()
    return thread
