"""What the tests' HTTP/1.1 proxies share: a threaded server on a free loopback port, started and
stopped as a context manager, that reads each request's body and hands both to the proxy's own
`_handle` (faultproxy.py in front of kinesis-local, outage_proxy.py in front of moto's S3 API).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackProxy:
    """`url` is what the client under test is pointed at; `upstream` what it stands in for."""

    def __init__(
        self, upstream_host: str, upstream_port: int, *, host: str, timeout: float, name: str
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                proxy._handle(self, self.rfile.read(length) if length else b"")

            # The names http.server dispatches on.
            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:
                return

        Handler.timeout = timeout
        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handle(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        raise NotImplementedError

    @staticmethod
    def _disconnect(request: BaseHTTPRequestHandler) -> None:
        """The connection closed without an answer, as a network failure leaves it."""
        request.close_connection = True
        with contextlib.suppress(OSError):
            request.connection.shutdown(socket.SHUT_RDWR)
