"""promtool (Debian package prometheus) for the checks of the rule files and the scrape configs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(
            "promtool is not installed: Debian package prometheus (`make setup` installs it as "
            "root; otherwise `apt-get install prometheus`)"
        )
    return binary


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`promtool args...`, its output kept for the assertion message; never raises on failure."""
    return subprocess.run(
        [promtool(), *(str(a) for a in args)], capture_output=True, text=True, check=False
    )


def unit_tests_on_changed_rules(
    tmp_path: Path, rules: Path, tests: Path, old: str, new: str
) -> subprocess.CompletedProcess[str]:
    """promtool's unit tests `tests` run against a copy of `rules` with `old` replaced by `new`.

    The copies keep the repository's layout (rules/ beside tests/): the unit tests name their
    rule file as `../rules/<name>`."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules").mkdir()
    text = rules.read_text(encoding="utf-8")
    changed = text.replace(old, new)
    assert changed != text, f"{old!r} is not in {rules.name}"
    (tmp_path / "rules" / rules.name).write_text(changed, encoding="utf-8")
    shutil.copy(tests, tmp_path / "tests" / tests.name)
    return run_promtool("test", "rules", tmp_path / "tests" / tests.name)
