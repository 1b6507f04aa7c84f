"""Where the repository and the UCI data file are."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path("shared/data/students_dropout_academic_success.csv")


def default_data_path() -> Path:
    """The UCI file for tests and benchmarks: TEST_DATA_PATH, else the shared offline copy
    (`shared/data/...` beside the repository or above it), else the official archive,
    downloaded and checksum-verified into `.cache/data` (raises training's TrainingError when
    that fails). A clean clone on a CI runner has no shared copy; the data is never committed.
    """
    configured = os.environ.get("TEST_DATA_PATH")
    if configured:
        return Path(configured)
    for parent in REPO_ROOT.parents:
        if (parent / SHARED_DATA).is_file():
            return parent / SHARED_DATA
    # Imported here: only this path needs the training package.
    from training.config import TrainingSettings
    from training.download import fetch_uci

    settings = TrainingSettings()
    return fetch_uci(
        settings.data_url,
        settings.data_sha256,
        REPO_ROOT / ".cache" / "data",
        settings.data_download_timeout,
    ).path
