"""An HTTP/1.1 proxy on loopback that forwards everything to one upstream until told the
upstream is out: then every request is answered 503 `ServiceUnavailable` (S3's XML error) or
its connection is dropped without an answer. Used in front of moto's S3 API, so that the
consumer's capture meets an object store that is down while the rest of the stack is not.
"""

from __future__ import annotations

import http.client
import threading
from enum import StrEnum
from http.server import BaseHTTPRequestHandler

from tests.integration.loopback_proxy import LoopbackProxy

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
_UNAVAILABLE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
    b"<Message>Service is unable to handle request (injected outage).</Message></Error>"
)


class Outage(StrEnum):
    NONE = "none"
    UNAVAILABLE = "unavailable"  # 503 for every request
    DISCONNECT = "disconnect"  # connection closed, no answer


class OutageProxy(LoopbackProxy):
    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1") -> None:
        super().__init__(upstream_host, upstream_port, host=host, timeout=60, name="outageproxy")
        self.outage = Outage.NONE
        self.refused = 0
        self.forwarded = 0
        self._lock = threading.Lock()

    def set(self, outage: Outage) -> None:
        self.outage = outage

    def _handle(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        outage = self.outage
        if outage is not Outage.NONE:
            with self._lock:
                self.refused += 1
        if outage is Outage.DISCONNECT:
            self._disconnect(request)
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
