"""An HTTP/1.1 proxy on loopback that forwards everything to one upstream until told the
upstream is out: then every request is answered 503 `ServiceUnavailable` (S3's XML error) or
its connection is dropped without an answer. Used in front of moto's S3 API, so that the
consumer's capture meets an object store that is down while the rest of the stack is not.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
_UNAVAILABLE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
    b"<Message>Service is unable to handle request (injected outage).</Message></Error>"
)


class Outage(StrEnum):
    NONE = "none"
    UNAVAILABLE = "unavailable"  # 503 for every request
    DISCONNECT = "disconnect"  # connection closed, no answer


class OutageProxy:
    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.outage = Outage.NONE
        self.refused = 0
        self.forwarded = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60

            def _any(self) -> None:
                proxy._handle(self)

            # The names http.server dispatches on.
            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def set(self, outage: Outage) -> None:
        self.outage = outage

    def __enter__(self) -> OutageProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        outage = self.outage
        if outage is not Outage.NONE:
            with self._lock:
                self.refused += 1
        if outage is Outage.DISCONNECT:
            request.close_connection = True
            with contextlib.suppress(OSError):
                request.connection.shutdown(socket.SHUT_RDWR)
            return
        if outage is Outage.UNAVAILABLE:
            request.send_response(503)
            request.send_header("Content-Type", "application/xml")
            request.send_header("Content-Length", str(len(_UNAVAILABLE)))
            request.end_headers()
            if request.command != "HEAD":
                request.wfile.write(_UNAVAILABLE)
            return
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
        }
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            conn.request(request.command, request.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            request.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    request.send_header(name, value)
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            if request.command != "HEAD":
                request.wfile.write(data)
            with self._lock:
                self.forwarded += 1
        finally:
            conn.close()
