"""Fixtures shared by the whole suite. Keep this file small: parts keep their own conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_RELATIVE = Path("shared/data/students_dropout_academic_success.csv")


@pytest.fixture(scope="session")
def uci_data_path() -> Path:
    """The UCI file: TEST_DATA_PATH, else the shared copy (`shared/data/...` beside the repo or
    above it), else the official archive downloaded and checksum-verified into `.cache/data`
    (a clean clone on a CI runner has no shared copy)."""
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
    # Imported here: the training package is only needed on this path.
    from training.config import TrainingSettings
    from training.download import fetch_uci
    from training.errors import TrainingError

    settings = TrainingSettings()
    try:
        return fetch_uci(
            settings.data_url,
            settings.data_sha256,
            REPO_ROOT / ".cache" / "data",
            settings.data_download_timeout,
        ).path
    except TrainingError as error:
        pytest.fail(
            f"the UCI data file was not found at ../{DATA_RELATIVE} (or TEST_DATA_PATH) and "
            f"the download failed: {error}"
        )
