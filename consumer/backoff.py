"""Retrying with exponential backoff and full jitter, shared by publishing, capture and
checkpointing (each with settings of its own)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Delay before retry `attempt` (1, 2, ...): uniform(0, min(cap, base * 2**(attempt - 1)))."""

    initial_seconds: float
    max_seconds: float

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.max_seconds, self.initial_seconds * (2 ** min(attempt - 1, 30)))
        return rng.uniform(0.0, ceiling)


@dataclass(frozen=True)
class Retry:
    """How one step retries: at most `max_attempts` attempts (what counts as one is the step's
    business), waiting a jittered `backoff` between them. Tests pass `sleep` and a seeded `rng`."""

    max_attempts: int
    backoff: Backoff
    sleep: Callable[[float], None] = time.sleep
    # Jitter, not security.
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def of(cls, max_attempts: int, initial_seconds: float, max_seconds: float) -> Retry:
        return cls(max_attempts, Backoff(initial_seconds, max_seconds))

    def exhausted(self, attempt: int) -> bool:
        """Whether `attempt` (1, 2, ...) was the last one allowed."""
        return attempt >= self.max_attempts

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt `attempt`."""
        return self.backoff.delay(attempt, self.rng)
