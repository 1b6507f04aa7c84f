"""Where the repository and the UCI data file are, for the tests."""

from __future__ import annotations

import os
from pathlib import Path

from common.data_files import UciDownload, find_data_file

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_path() -> Path:
    """The UCI file for tests: TEST_DATA_PATH, else common/data_files.py's order with offline
    copies allowed (a shared copy beside or above the repository), else the official archive,
    downloaded and checksum-verified into `.cache/data` (raises DataFileError when that
    fails). A clean clone on a CI runner has no shared copy; the data is never committed."""
    configured = os.environ.get("TEST_DATA_PATH")
    return find_data_file(
        Path(configured) if configured else None,
        download=UciDownload(cache_dir=REPO_ROOT / ".cache" / "data"),
        offline_copies=True,
    ).path
