"""Exponential backoff with full jitter, shared by publishing, capture and checkpointing (each
with settings of its own)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay before retry `attempt` (1, 2, ...): uniform(0, min(cap, base * 2**(attempt - 1)))."""

    initial_seconds: float
    max_seconds: float

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.max_seconds, self.initial_seconds * (2 ** min(attempt - 1, 30)))
        return rng.uniform(0.0, ceiling)
