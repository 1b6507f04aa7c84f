"""The fixed held-out split: seeded, stable per student, touched once per run.

Each row's side is decided by a keyed hash of its attributes (`SPLIT_METHOD`): a row is held
out when its hash, as a fraction of 2**64, is below `test_size`. So the same student is on the
same side in every run with the same seed and size, whatever other rows or sources the run
adds: when the institution's dataset grows by a term, or when UCI is joined by it, the UCI
students held out before are held out again, and the champion (trained on an earlier run's
training rows) is never scored by the gate on a row it learned from. A random permutation
(`train_test_split`) would reshuffle every row whenever the data changed and leak the
champion's training rows into the comparison.

Every source and class gets `test_size` of its rows in expectation rather than exactly (the
binomial spread is a few rows per thousand); the realised shares are logged. Provenance
(`origin`) is kept beside the rows, never in the features, for the per-source report and gate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from training.data.reading import Dataset
from training.log import get_logger

log = get_logger(__name__)

SPLIT_METHOD: Final = "attribute-hash/1"


def held_out_mask(features: pd.DataFrame, seed: int, test_size: float) -> npt.NDArray[np.bool_]:
    """True for the rows held out: a seeded hash of the attribute values below `test_size`."""
    # pandas hashes numeric columns without its hash key, so the seed is mixed in here, then
    # spread with splitmix64's finaliser (uint64 arithmetic wraps, as the mix intends).
    rows = pd.util.hash_pandas_object(features, index=False).to_numpy(np.uint64)
    salt = np.uint64(int.from_bytes(hashlib.sha256(f"dropout-split/{seed}".encode()).digest()[:8]))
    z = rows ^ salt
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.asarray(z / 2.0**64 < test_size)


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
    """Same rows + seed + size give the same split; adding rows moves no existing row."""
    test = held_out_mask(dataset.features, seed, test_size)
    idx_test = dataset.features.index[test]
    idx_train = dataset.features.index[~test]
    stratum = dataset.origin.astype(str) + "|" + dataset.target.astype(str)
    shares = pd.Series(test, index=dataset.features.index).groupby(stratum).mean().round(3)
    log.info(
        "held_out_split",
        method=SPLIT_METHOD,
        test_rows=int(test.sum()),
        shares={str(name): float(share) for name, share in shares.items()},
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
