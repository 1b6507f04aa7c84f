"""The served model and at most one offered successor; a swap happens only when the processor
asks for the model of its next batch, so a batch is always scored, encoded and labelled by one
version."""

from __future__ import annotations

import threading
from collections.abc import Callable

from consumer.scoring.served_model import ServedModel

SwapListener = Callable[[ServedModel | None, ServedModel], None]


class ModelHolder:
    """The served model and the next one; swaps only when the processor asks, between batches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: ServedModel | None = None
        self._pending: ServedModel | None = None
        self._offered = threading.Event()
        self._listeners: list[SwapListener] = []
        self._offer_listeners: list[Callable[[ServedModel], None]] = []

    def add_listener(self, listener: SwapListener) -> None:
        """Called after every swap with (old, new), in the thread that swapped."""
        self._listeners.append(listener)

    def add_offer_listener(self, listener: Callable[[ServedModel], None]) -> None:
        """Called after every offer, in the offering (poller) thread."""
        self._offer_listeners.append(listener)

    @property
    def current(self) -> ServedModel | None:
        return self._current

    @property
    def known_version(self) -> str | None:
        """The newest version this holder has or will serve (what the poller compares with)."""
        with self._lock:
            model = self._pending or self._current
            return model.version if model else None

    def offer(self, model: ServedModel) -> None:
        """Offers a checked model; it replaces any earlier offer not yet swapped in."""
        with self._lock:
            self._pending = model
        self._offered.set()
        for listener in self._offer_listeners:
            listener(model)

    def for_next_batch(self) -> ServedModel | None:
        """The model for the batch about to start, swapping in an offered one first."""
        with self._lock:
            pending, self._pending = self._pending, None
            self._offered.clear()
            if pending is None:
                return self._current
            old, self._current = self._current, pending
        self._record_swap(old, pending)
        return pending

    def wait_for_offer(self, timeout: float) -> bool:
        return self._offered.wait(timeout)

    def _record_swap(self, old: ServedModel | None, new: ServedModel) -> None:
        for listener in self._listeners:
            listener(old, new)
