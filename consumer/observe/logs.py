"""Structured JSON logs (structlog) for every consumer process.

A shard processor cannot log to its standard output (the KCL multilang protocol runs there) and
the daemon wraps whatever it writes to standard error in its own log format. So processors send
each rendered JSON line as one datagram to the supervisor's Unix socket (`relay_socket`); the
supervisor writes it to the container's standard output unchanged. One datagram per line means
lines from many processes never interleave. If the socket is missing (a processor started by
hand, the offline CLI), lines go to standard error instead.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

import orjson
import structlog

LOG_SOCKET_NAME = "log.sock"
# A log line bigger than this is replaced by a short JSON line that says so (one datagram).
MAX_DATAGRAM_BYTES = 60_000
# How long a log call may wait for a busy relay before the line goes to standard error instead:
# logging must never stall a batch.
RELAY_SEND_TIMEOUT_SECONDS = 1.0


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


class _LineSink:
    """Writes rendered lines to the relay socket, or to a stream when there is none."""

    def __init__(self, relay_socket: Path | None, fallback: TextIO) -> None:
        self._fallback = fallback
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._path = str(relay_socket) if relay_socket else None
        if self._path and Path(self._path).exists():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.connect(self._path)
            except OSError:
                sock.close()
            else:
                sock.settimeout(RELAY_SEND_TIMEOUT_SECONDS)
                self._sock = sock

    def write(self, line: str) -> None:
        data = line.encode("utf-8", "replace")
        if len(data) > MAX_DATAGRAM_BYTES:
            # Cutting the line would break its JSON: say what it was instead.
            data = orjson.dumps(
                {
                    "event": "log_line_too_large",
                    "level": "warning",
                    "bytes": len(data),
                    "head": line[:2000],
                }
            )
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.send(data)
                    return
                except TimeoutError:
                    pass  # the relay is busy: this line goes to standard error
                except OSError:
                    # The supervisor went away: keep the line rather than lose it.
                    self._sock.close()
                    self._sock = None
            try:
                self._fallback.write(data.decode("utf-8", "replace") + "\n")
                self._fallback.flush()
            except (OSError, ValueError):
                # Nowhere left to write (a processor whose daemon is gone: its standard error
                # was a pipe to the daemon). Losing the line beats crashing on a log call.
                return


class _SinkLogger:
    """The minimal logger structlog needs: one method per level, each taking the line."""

    def __init__(self, sink: _LineSink, name: str | None) -> None:
        self._sink = sink
        self.name = name

    def msg(self, message: str) -> None:
        self._sink.write(message)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


class _SinkLoggerFactory:
    """One logger per name (`structlog.get_logger("consumer.batch_handler")`), one sink."""

    def __init__(self, sink: _LineSink) -> None:
        self._sink = sink
        self._loggers: dict[str | None, _SinkLogger] = {}

    def __call__(self, *args: Any) -> _SinkLogger:
        name = str(args[0]) if args else None
        logger = self._loggers.get(name)
        if logger is None:
            logger = self._loggers[name] = _SinkLogger(self._sink, name)
        return logger


def _add_logger_name(logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    name = getattr(logger, "name", None)
    if name:
        event.setdefault("logger", name)
    return event


def configure_logging(
    level: str = "INFO",
    *,
    relay_socket: Path | None = None,
    fallback: TextIO | None = None,
    **static_context: Any,
) -> None:
    """Sets structlog up to render JSON lines; `static_context` is added to every line."""
    sink = _LineSink(relay_socket, fallback or sys.stderr)
    level_no = logging.getLevelNamesMapping()[level.upper()]
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if static_context:
        processors.append(_add_static(static_context))
    processors += [
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(serializer=_orjson_dumps),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=_SinkLoggerFactory(sink),
        cache_logger_on_first_use=False,
    )


def _add_static(context: dict[str, Any]) -> Any:
    def processor(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        for key, value in context.items():
            event.setdefault(key, value)
        return event

    return processor
