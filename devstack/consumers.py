"""A running consumer worker seen from outside: its endpoint, metrics, readiness and logs."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from devstack.processes import ManagedProcess


@dataclass
class ConsumerHandle:
    proc: ManagedProcess
    metrics_url: str

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.metrics_url + path, timeout=5) as response:  # noqa: S310
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())

    def metrics(self) -> dict[str, float]:
        """Samples of /metrics as {name{label="v",...}: value}; labels sorted by name."""
        status, body = self.get("/metrics")
        assert status == 200, body
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}"] = sample.value
        return samples

    def metric_sum(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include the given ones."""
        total = 0.0
        want = [f'{k}="{v}"' for k, v in labels.items()]
        for key, value in self.metrics().items():
            if key.split("{", 1)[0] == name and all(w in key for w in want):
                total += value
        return total

    def wait_ready(self, timeout: float = 180.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status, raw = self.get("/readyz")
            body = orjson.loads(raw) if raw else {}
            if status == 200:
                return body
            assert self.proc.alive(), f"consumer exited; see {self.proc.log_path}"
            time.sleep(1)
        raise AssertionError(f"consumer not ready after {timeout:.0f} s: {body}")


def log_events(path: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The JSON log lines of a service's log file (from a byte offset); other lines skipped."""
    events: list[dict[str, Any]] = []
    with path.open("rb") as log:
        log.seek(offset)
        for line in log:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


def process_running(pid: int) -> bool:
    """Whether a process exists and is not a zombie (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def serving_shards(handle: ConsumerHandle) -> set[str]:
    """Shards whose processor this worker reports ready on /readyz (the leases it serves)."""
    try:
        _, raw = handle.get("/readyz")
    except OSError:
        return set()
    body = orjson.loads(raw) if raw else {}
    return {p["shard_id"] for p in body.get("processors", []) if p.get("state") == "ready"}


def wait_serving(handle: ConsumerHandle, shards: set[str], timeout: float) -> None:
    """Waits until the worker serves exactly these shards; fails if it exits or takes longer."""
    deadline = time.monotonic() + timeout
    while serving_shards(handle) != shards:
        assert handle.proc.alive(), f"consumer exited; see {handle.proc.log_path}"
        assert time.monotonic() < deadline, (
            f"not serving {sorted(shards)} after {timeout:.0f} s: {sorted(serving_shards(handle))}"
        )
        time.sleep(0.5)


class ConsumerSlot:
    """A test module's one running worker: started on first use, and again after a test
    stopped it, so that no test depends on what an earlier one left behind."""

    def __init__(self, start: Callable[[], ConsumerHandle]) -> None:
        self._start = start
        self._handle: ConsumerHandle | None = None

    def current(self) -> ConsumerHandle:
        if self._handle is None or not self._handle.proc.alive():
            self._handle = self._start()
            self._handle.wait_ready()
        return self._handle

    def replace(self, handle: ConsumerHandle) -> None:
        self._handle = handle
