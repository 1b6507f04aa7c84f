"""Fixtures shared by the whole suite. Keep this file small: parts keep their own conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_RELATIVE = Path("shared/data/students_dropout_academic_success.csv")


@pytest.fixture(scope="session")
def uci_data_path() -> Path:
    """The shared UCI file: TEST_DATA_PATH, else `shared/data/...` beside the repo or above it."""
    configured = os.environ.get("TEST_DATA_PATH")
    if configured:
        path = Path(configured)
        if not path.is_file():
            pytest.fail(f"TEST_DATA_PATH={configured} is not a file")
        return path
    for parent in REPO_ROOT.parents:
        candidate = parent / DATA_RELATIVE
        if candidate.is_file():
            return candidate
    pytest.fail(
        f"the UCI data file was not found: set TEST_DATA_PATH, or put it at ../{DATA_RELATIVE} "
        "next to the repository (the data is never committed)"
    )
