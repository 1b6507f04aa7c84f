"""The held-out split is stable per student: adding rows or a source moves no existing row, so
the gate never scores a champion on rows it was trained on."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.data.reading import Dataset
from training.data.split import held_out_mask, held_out_split


def _rows(split_frame: pd.DataFrame) -> set[tuple[float, ...]]:
    return set(map(tuple, split_frame.to_numpy()))


def _with(dataset: Dataset, extra: pd.DataFrame, name: str) -> Dataset:
    n = len(extra)
    return Dataset(
        features=pd.concat([dataset.features, extra], ignore_index=True),
        target=pd.concat([dataset.target, pd.Series([1] * n)], ignore_index=True),
        labels=pd.concat([dataset.labels, pd.Series(["Dropout"] * n)], ignore_index=True),
        source=dataset.source,
        origin=pd.concat([dataset.origin, pd.Series([name] * n)], ignore_index=True),
    )


def test_same_seed_same_split_and_shares_near_test_size(dataset: Dataset) -> None:
    first = held_out_split(dataset, seed=42, test_size=0.2)
    again = held_out_split(dataset, seed=42, test_size=0.2)
    assert _rows(first.x_test) == _rows(again.x_test)
    share = len(first.x_test) / len(dataset.features)
    assert abs(share - 0.2) < 0.02
    for label in (0, 1):
        of_class = dataset.target == label
        held = held_out_mask(dataset.features, 42, 0.2)[of_class.to_numpy()]
        assert abs(held.mean() - 0.2) < 0.04, "each class keeps about test_size held out"
    other = held_out_split(dataset, seed=7, test_size=0.2)
    assert _rows(other.x_test) != _rows(first.x_test)


def test_adding_a_source_moves_no_existing_row(dataset: Dataset) -> None:
    before = held_out_split(dataset, seed=42, test_size=0.2)
    rng = np.random.default_rng(3)
    institution = dataset.features.sample(300, random_state=3).reset_index(drop=True)
    institution["Age at enrollment"] = rng.integers(17, 60, len(institution)).astype(float)
    after = held_out_split(_with(dataset, institution, "institution"), seed=42, test_size=0.2)

    uci_test = after.x_test[after.origin_test.to_numpy() == "uci"]
    uci_train = after.x_train[after.origin_train.to_numpy() == "uci"]
    assert _rows(uci_test) == _rows(before.x_test)
    assert _rows(uci_train) == _rows(before.x_train)
    # A champion trained on `before`'s training rows meets none of them in `after`'s test rows.
    assert not _rows(before.x_train) & _rows(after.x_test)
    assert (after.origin_test == "institution").sum() > 0


def test_a_duplicate_of_a_row_shares_its_side(dataset: Dataset) -> None:
    """The demo's institution replays UCI students: a copy must not land on the other side."""
    copies = dataset.features.sample(200, random_state=5).reset_index(drop=True)
    mask = held_out_mask(pd.concat([dataset.features, copies], ignore_index=True), 42, 0.2)
    original = held_out_mask(copies, 42, 0.2)
    assert (mask[len(dataset.features) :] == original).all()
