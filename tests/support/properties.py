"""Hypothesis profiles of the suite, chosen by HYPOTHESIS_PROFILE (tests/conftest.py loads one).

- `ci` (the default): derandomized, so every run draws the same examples and a red build is
  reproducible on any machine; the property tests' own example counts.
- `nightly` (.github/workflows/nightly.yml): a random seed every night and NIGHTLY_SCALE times
  the examples, to find what the fixed draw never reaches. A failure prints the blob that
  replays it (`@reproduce_failure`).

A property test states its CI example count through `examples(n)` and never sets
`derandomize` itself: explicit settings win over the profile's, so a test that fixed its own
draw would ignore the nightly profile.
"""

from __future__ import annotations

import os
from typing import Final

from hypothesis import HealthCheck, settings

PROFILE_VARIABLE: Final = "HYPOTHESIS_PROFILE"
NIGHTLY: Final = "nightly"
NIGHTLY_SCALE: Final = 10
HYPOTHESIS_DEFAULT_EXAMPLES: Final = 100


def profile_name() -> str:
    return os.environ.get(PROFILE_VARIABLE, "ci") or "ci"


def register_profiles() -> None:
    for name, derandomize, scale in (("ci", True, 1), (NIGHTLY, False, NIGHTLY_SCALE)):
        settings.register_profile(
            name,
            derandomize=derandomize,
            max_examples=scale * HYPOTHESIS_DEFAULT_EXAMPLES,
            # No example database: a run depends on nothing an earlier run left on disk.
            database=None,
            deadline=None,
            print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )


def examples(ci_examples: int) -> int:
    """A property test's example count under the loaded profile."""
    return ci_examples * NIGHTLY_SCALE if profile_name() == NIGHTLY else ci_examples
