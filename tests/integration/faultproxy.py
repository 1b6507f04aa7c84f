"""A fault-injecting HTTP/1.1 proxy on loopback, in front of kinesis-local, for PutRecords.

The consumer's publisher (boto3, JSON protocol over HTTP/1.1) is pointed at the proxy with
OUTPUT_KINESIS_ENDPOINT_URL while the KCL daemon keeps reading from the emulator itself. Every
request is forwarded unchanged except `Kinesis_20131202.PutRecords` calls, which get the fault
the current plan names for them:

- `PASS`: forwarded as is.
- `THROTTLE`: answered 400 `ProvisionedThroughputExceededException` (the whole call), not
  forwarded.
- `SERVER_ERROR`: answered 500 `InternalFailure`, not forwarded.
- `UNAVAILABLE`: answered 503 `ServiceUnavailable`, not forwarded.
- `PARTIAL`: every second entry (indices 1, 3, ...) is taken out of the request; the rest is
  forwarded and the answer has the refused entries back in their slots with ErrorCode
  `ProvisionedThroughputExceededException`. The proxy never writes an entry it reports as
  failed, so whatever is written twice was sent twice by the publisher.
- `DISCONNECT`: the connection is closed without an answer, nothing forwarded.
- `ACCESS_DENIED`: answered 400 `AccessDeniedException` (the whole call), not forwarded: a
  refusal no retry can cure (a task role without kinesis:PutRecords on the stream).

The plan is a callable from the call's number (0, 1, ...) to a fault; `set_plan` replaces it.
Counters in `stats` say what was done, for the tests' assertions and reports.
"""

from __future__ import annotations

import http.client
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson

from tests.integration.loopback_proxy import LoopbackProxy

PUT_RECORDS_TARGET = "Kinesis_20131202.PutRecords"
THROUGHPUT_EXCEEDED = "ProvisionedThroughputExceededException"
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "host",
}


class Fault(StrEnum):
    PASS = "pass"
    THROTTLE = "throttle"
    SERVER_ERROR = "server_error"
    UNAVAILABLE = "unavailable"
    PARTIAL = "partial"
    DISCONNECT = "disconnect"
    ACCESS_DENIED = "access_denied"


_WHOLE_CALL_ERRORS: dict[Fault, tuple[int, str, str]] = {
    Fault.THROTTLE: (400, THROUGHPUT_EXCEEDED, "Rate exceeded for the stream (injected)."),
    Fault.SERVER_ERROR: (500, "InternalFailure", "Internal service failure (injected)."),
    Fault.UNAVAILABLE: (503, "ServiceUnavailable", "Service unavailable (injected)."),
    Fault.ACCESS_DENIED: (
        400,
        "AccessDeniedException",
        "User is not authorized to perform kinesis:PutRecords (injected).",
    ),
}

Plan = Callable[[int], Fault]


def always(fault: Fault) -> Plan:
    return lambda _call: fault


def after(calls: int, fault: Fault) -> Plan:
    """`calls` calls pass, every later one gets `fault`."""
    return lambda call: Fault.PASS if call < calls else fault


def cycle(faults: Sequence[Fault]) -> Plan:
    """The faults in turn, call after call."""
    items = list(faults)
    return lambda call: items[call % len(items)]


@dataclass
class ProxyStats:
    """What the proxy did to PutRecords calls (other requests are only counted)."""

    calls: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    entries_received: int = 0
    entries_forwarded: int = 0
    entries_refused: int = 0
    other_requests: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "put_records_calls": self.calls,
            "faults": dict(sorted(self.faults.items())),
            "entries_received": self.entries_received,
            "entries_forwarded": self.entries_forwarded,
            "entries_refused_in_partial_calls": self.entries_refused,
            "other_requests": self.other_requests,
        }


class FaultProxy(LoopbackProxy):
    """The proxy server; `url` is what the publisher is pointed at."""

    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1") -> None:
        super().__init__(upstream_host, upstream_port, host=host, timeout=120, name="faultproxy")
        self.stats = ProxyStats()
        self._plan: Plan = always(Fault.PASS)
        self._call_base = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    # --- control ---------------------------------------------------------------------------

    def set_plan(self, plan: Plan) -> None:
        """Faults from now on; call numbers restart at 0."""
        with self._lock:
            self._plan = plan
            self._call_base = self.stats.calls

    def heal(self) -> None:
        self.set_plan(always(Fault.PASS))

    # --- one request -----------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        if request.headers.get("X-Amz-Target") != PUT_RECORDS_TARGET:
            with self._lock:
                self.stats.other_requests += 1
            self._relay(request, self._forward(request, body))
            return
        with self._lock:
            call = self.stats.calls
            fault = self._plan(call - self._call_base)
            self.stats.calls += 1
            self.stats.faults[fault.value] += 1
        entries = len(orjson.loads(body).get("Records") or []) if body else 0
        with self._lock:
            self.stats.entries_received += entries
        if fault is Fault.PASS:
            response = self._forward(request, body)
            if response[0] == 200:
                with self._lock:
                    self.stats.entries_forwarded += entries
            self._relay(request, response)
        elif fault is Fault.PARTIAL:
            self._partial(request, body)
        elif fault is Fault.DISCONNECT:
            self._disconnect(request)
        else:
            status, code, message = _WHOLE_CALL_ERRORS[fault]
            self._answer(request, status, {"__type": code, "message": message}, code)

    def _partial(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        document = orjson.loads(body)
        records = list(document.get("Records") or [])
        refused = set(range(1, len(records), 2))
        kept = [record for i, record in enumerate(records) if i not in refused]
        kept_results: Iterator[dict[str, Any]] = iter(())
        if kept:
            status, headers, raw = self._forward(
                request, orjson.dumps({**document, "Records": kept})
            )
            if status != 200:
                # The emulator refused the call as a whole: nothing was written, say so.
                self._relay(request, (status, headers, raw))
                return
            kept_results = iter(orjson.loads(raw)["Records"])
        results: list[dict[str, Any]] = []
        for i in range(len(records)):
            if i in refused:
                results.append(
                    {
                        "ErrorCode": THROUGHPUT_EXCEEDED,
                        "ErrorMessage": "Rate exceeded for shard (injected partial failure).",
                    }
                )
            else:
                results.append(next(kept_results))
        with self._lock:
            self.stats.entries_forwarded += len(kept)
            self.stats.entries_refused += len(refused)
        failed = sum(1 for r in results if r.get("ErrorCode"))
        self._answer(request, 200, {"FailedRecordCount": failed, "Records": results})

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(*self.upstream, timeout=60)
            self._local.conn = conn
        return conn

    def _forward(
        self, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Host"] = f"{self.upstream[0]}:{self.upstream[1]}"
        headers["Content-Length"] = str(len(body))
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(request.command, request.path, body=body, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException):
                # A kept-alive upstream connection that went stale: one fresh try.
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
                continue
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            return response.status, kept, raw
        raise AssertionError("unreachable")

    @staticmethod
    def _relay(
        request: BaseHTTPRequestHandler, response: tuple[int, list[tuple[str, str]], bytes]
    ) -> None:
        status, headers, raw = response
        request.send_response(status)
        for key, value in headers:
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(raw)))
        request.end_headers()
        request.wfile.write(raw)

    @staticmethod
    def _answer(
        request: BaseHTTPRequestHandler,
        status: int,
        document: dict[str, Any],
        error_type: str | None = None,
    ) -> None:
        raw = orjson.dumps(document)
        request.send_response(status)
        request.send_header("Content-Type", "application/x-amz-json-1.1")
        request.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type:
            request.send_header("x-amzn-ErrorType", error_type)
        request.send_header("Content-Length", str(len(raw)))
        request.end_headers()
        request.wfile.write(raw)
