"""One action run by several threads at once, for the tests of state that processes share."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_concurrently(
    action: Callable[[], T], threads: int, timeout: float | None = 30.0
) -> tuple[list[T], list[BaseException]]:
    """Starts `threads` threads that each call `action` once; returns (results, errors)."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(action())
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout)
    return results, errors
