"""Skipped inputs, counted by a stable reason code with the first few examples of each.

Readers never drop anything silently: every object, line or row they skip goes through a
`ProblemLog`, which the caller can show, count into metrics or turn into an error. Their
checks raise `InputError` with the reason code, and `json_object` is the first check of a JSON
line both readers share.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

EXAMPLES_PER_REASON: Final = 5


class InputError(Exception):
    """One input (line or row) is unusable: a stable reason code and why; the reader catches it
    and records it in its `ProblemLog` with where the input was."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def json_object(raw: bytes | str) -> dict[str, Any]:
    """One JSON line that must be an object (`invalid_json`, `not_an_object` otherwise)."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError("invalid_json", f"not JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise InputError("not_an_object", f"a JSON {type(record).__name__}, not an object")
    return record


@dataclass(frozen=True)
class Problem:
    """One skipped input: a reason code, where it was (object key or file, line) and why."""

    reason: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message} [{self.reason}]"


@dataclass
class ProblemLog:
    """Counts per reason and the first `examples_per_reason` examples of each reason."""

    examples_per_reason: int = EXAMPLES_PER_REASON
    counts: Counter[str] = field(default_factory=Counter)
    examples: list[Problem] = field(default_factory=list)

    def add(self, reason: str, where: str, message: str) -> None:
        self.counts[reason] += 1
        if self.counts[reason] <= self.examples_per_reason:
            self.examples.append(Problem(reason, where, message))

    def extend(self, other: ProblemLog) -> None:
        shown = Counter(problem.reason for problem in self.examples)
        for problem in other.examples:
            if shown[problem.reason] < self.examples_per_reason:
                shown[problem.reason] += 1
                self.examples.append(problem)
        self.counts.update(other.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def by_reason(self) -> dict[str, int]:
        """Counts per reason, sorted by reason so that reports are stable."""
        return {reason: self.counts[reason] for reason in sorted(self.counts)}

    def describe(self, limit: int = 10) -> str:
        """A short human summary: counts per reason and the first examples."""
        if not self.counts:
            return "no problems"
        counts = ", ".join(f"{reason}: {count}" for reason, count in self.by_reason().items())
        lines = [counts, *(f"  {problem}" for problem in self.examples[:limit])]
        return "\n".join(lines)
