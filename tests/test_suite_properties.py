"""The Hypothesis profiles: CI draws the same examples every run, the nightly workflow more of
them from a random seed, and every property test is one the nightly run selects and scales."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.properties import NIGHTLY, NIGHTLY_SCALE, examples, register_profiles

TESTS = Path(__file__).parent


def test_ci_is_derandomized_and_nightly_draws_more_from_a_random_seed() -> None:
    register_profiles()
    ci, nightly = settings.get_profile("ci"), settings.get_profile(NIGHTLY)
    assert ci.derandomize is True
    assert nightly.derandomize is False
    assert nightly.max_examples == NIGHTLY_SCALE * ci.max_examples
    assert ci.database is None
    assert nightly.database is None
    assert nightly.print_blob is True


def test_a_property_tests_example_count_follows_the_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
    assert examples(150) == 150
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "ci")
    assert examples(150) == 150
    monkeypatch.setenv("HYPOTHESIS_PROFILE", NIGHTLY)
    assert examples(150) == 150 * NIGHTLY_SCALE


def _test_modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("test_*.py") if p != Path(__file__))


def test_no_property_test_fixes_its_own_draw() -> None:
    """Explicit settings win over the profile: a test that sets derandomize or a literal
    max_examples would ignore the nightly profile."""
    offenders = []
    for path in _test_modules():
        text = path.read_text(encoding="utf-8")
        if "derandomize=" in text or re.search(r"max_examples=\d", text):
            offenders.append(str(path.relative_to(TESTS)))
    assert offenders == []


def test_every_module_with_property_tests_carries_the_property_marker() -> None:
    """The nightly workflow selects `-m property`; a module without it would never run there."""
    unmarked = []
    for path in _test_modules():
        text = path.read_text(encoding="utf-8")
        if re.search(r"^from hypothesis import .*\bgiven\b", text, re.MULTILINE) and (
            "pytest.mark.property" not in text
        ):
            unmarked.append(str(path.relative_to(TESTS)))
    assert unmarked == []
