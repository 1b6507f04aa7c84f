"""Fixtures of the fairness tests: the UCI file as a frame (read here with pandas alone, so the
tests need no other training module)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def uci_frame(uci_data_path: Path) -> pd.DataFrame:
    frame = pd.read_csv(uci_data_path, sep=";", encoding="utf-8-sig")
    frame.columns = frame.columns.str.strip()  # one header ends in a tab
    return frame
