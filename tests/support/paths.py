"""Where the repository and the shared UCI data file are."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_path() -> Path:
    """TEST_DATA_PATH, else ../shared/data/students_dropout_academic_success.csv."""
    configured = os.environ.get("TEST_DATA_PATH")
    if configured:
        return Path(configured)
    return REPO_ROOT.parent / "shared" / "data" / "students_dropout_academic_success.csv"
