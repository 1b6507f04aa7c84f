"""The fixed held-out split: stratified on the modelled target, seeded, touched once per run."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import train_test_split

from training.data.reading import Dataset


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


def held_out_split(dataset: Dataset, seed: int, test_size: float) -> Split:
    """Same data + seed + size gives the same split, so a champion is re-scored on it exactly.

    Stratified on dropout-vs-rest (the target the model predicts) so both parts have the same
    dropout rate; indices are reset so fold code can use positions.
    """
    idx_train, idx_test = train_test_split(
        dataset.features.index.to_numpy(),
        test_size=test_size,
        stratify=dataset.target.to_numpy(),
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
    )
