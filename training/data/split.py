"""The fixed held-out split: stratified, seeded, touched once per run.

Stratified on the modelled target and, with several sources, on the source too: each source
keeps its share of dropouts in both parts, so the held-out part holds the institution's own
students for the per-source report and the gate. A stratum too small to split (fewer than two
rows) falls back to the target alone, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from sklearn.model_selection import train_test_split

from training.data.reading import Dataset
from training.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Split:
    x_train: pd.DataFrame
    y_train: pd.Series
    labels_train: pd.Series
    x_test: pd.DataFrame
    y_test: pd.Series
    labels_test: pd.Series
    seed: int
    test_size: float
    # Where each row came from (provenance only: never a feature).
    origin_train: pd.Series = field(default_factory=lambda: pd.Series(dtype=str))
    origin_test: pd.Series = field(default_factory=lambda: pd.Series(dtype=str))


def held_out_split(dataset: Dataset, seed: int, test_size: float) -> Split:
    """Same data + seed + size gives the same split, so a champion is re-scored on it exactly."""
    strata = dataset.target.astype(str)
    if dataset.origin.nunique() > 1:
        combined = dataset.origin.astype(str) + "|" + strata
        if combined.value_counts().min() >= 2:
            strata = combined
        else:
            log.warning("split_by_target_only", reason="a source has a class with one row")
    idx_train, idx_test = train_test_split(
        dataset.features.index.to_numpy(),
        test_size=test_size,
        stratify=strata.to_numpy(),
        random_state=seed,
    )
    x = dataset.features
    return Split(
        x_train=x.loc[idx_train].reset_index(drop=True),
        y_train=dataset.target.loc[idx_train].reset_index(drop=True),
        labels_train=dataset.labels.loc[idx_train].reset_index(drop=True),
        x_test=x.loc[idx_test].reset_index(drop=True),
        y_test=dataset.target.loc[idx_test].reset_index(drop=True),
        labels_test=dataset.labels.loc[idx_test].reset_index(drop=True),
        seed=seed,
        test_size=test_size,
        origin_train=dataset.origin.loc[idx_train].reset_index(drop=True),
        origin_test=dataset.origin.loc[idx_test].reset_index(drop=True),
    )
