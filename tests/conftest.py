"""Fixtures shared by the whole suite. Keep this file small: parts keep their own conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.paths import default_data_path


@pytest.fixture(scope="session")
def uci_data_path() -> Path:
    """The UCI file (tests/support/paths.py: TEST_DATA_PATH, the shared copy, or the checked
    download); the tests that need it fail with the reason when there is none."""
    from training.errors import TrainingError

    try:
        path = default_data_path()
    except TrainingError as error:
        pytest.fail(f"no UCI data file: no shared copy, and the download failed: {error}")
    if not path.is_file():
        pytest.fail(f"TEST_DATA_PATH={os.environ.get('TEST_DATA_PATH')} is not a file")
    return path
