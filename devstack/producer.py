"""A paced producer of generated student events, on a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from devstack.streaming import Position, Streams


class Producer:
    """Sends generated events from a background thread, about `rate` records a second.

    `sent` holds (partition key, input position) in the order the records were put, so the
    send order of one partition key is its input order. It sends until `stop()`, or until
    `count` records or `seconds` have gone by (then `join()` waits for the end): a producer
    the stream cannot keep up with stops on time, and `sent` says how far it got.
    """

    def __init__(
        self,
        streams: Streams,
        make_events: Callable[[int, int], list[tuple[str, bytes]]],
        *,
        rate: float,
        batch: int = 100,
        count: int | None = None,
        seconds: float | None = None,
    ) -> None:
        self._streams = streams
        self._count = count
        self._seconds = seconds
        self.started_at = 0.0
        self._make_events = make_events
        self._interval = batch / rate
        self._batch = batch
        self.sent: list[tuple[str, Position]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)

    @property
    def positions(self) -> list[Position]:
        return [position for _, position in self.sent]

    def start(self) -> Producer:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        seed = 0
        self.started_at = next_at = time.monotonic()
        deadline = None if self._seconds is None else self.started_at + self._seconds
        try:
            while not self._stop.is_set():
                size = self._batch
                if self._count is not None:
                    size = min(size, self._count - len(self.sent))
                if size <= 0 or (deadline is not None and time.monotonic() >= deadline):
                    return
                batch = self._make_events(size, seed)
                seed += 1
                positions = self._streams.put(batch)
                self.sent += [(key, pos) for (key, _), pos in zip(batch, positions, strict=True)]
                next_at += self._interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 (surfaced by stop(): never pass on a dead producer)
            self.error = exc

    def wait_until(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.sent) < count:
            assert self.error is None, f"producer failed: {self.error!r}"
            assert time.monotonic() < deadline, f"only {len(self.sent)} of {count} records sent"
            time.sleep(0.2)

    def join(self) -> float:
        """Waits until the producer ends by itself (count or seconds); the seconds it sent."""
        self._thread.join()
        if self.error is not None:
            raise RuntimeError(f"the producer stopped after {len(self.sent)} records") from (
                self.error
            )
        return time.monotonic() - self.started_at

    def stop(self) -> list[Position]:
        self._stop.set()
        self._thread.join(timeout=60)
        assert self.error is None, f"producer failed: {self.error!r}"
        return self.positions
