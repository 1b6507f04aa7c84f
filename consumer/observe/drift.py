"""Input drift: population stability index of recent records against the model's reference.

Each shard processor keeps the model rows of its last DRIFT_WINDOW_RECORDS valid records in a
ring buffer and, every DRIFT_UPDATE_EVERY_RECORDS records, sets per attribute:

- `feature_psi{attribute}`: PSI = sum((a - e) * ln(a / e)) over the reference bins, where `e`
  is `contract.reference[attribute].proportions` and `a` the window's share per bin (both
  floored at EPSILON so empty bins stay finite). Missing values are left out of the PSI.
  Bins follow numpy.histogram on `edges` ([e_i, e_i+1), the last closed; values beyond the outer
  edges count in the outer bins) or, for a categorical reference, one bin per code.
  An attribute with fewer than MIN_PRESENT values in the window gets no new PSI.
- `attribute_missing_ratio{attribute}`: the window's share of records without the attribute.

All of it is numpy over the window (no per-record Python).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from common.contract import Contract, Reference
from consumer.observe.metrics import ConsumerMetrics

EPSILON: Final = 1e-4
MIN_PRESENT: Final = 50


@dataclass(frozen=True)
class _Bins:
    column: int
    name: str
    inner_edges: np.ndarray | None
    categories: np.ndarray | None
    expected: np.ndarray


@dataclass(frozen=True)
class DriftSnapshot:
    records: int
    psi: dict[str, float]
    missing_ratio: dict[str, float]


def _bins(column: int, name: str, reference: Reference) -> _Bins:
    expected = np.asarray(reference.proportions, dtype=np.float64)
    total = expected.sum()
    expected = expected / total if total > 0 else np.full(expected.shape, 1.0 / expected.size)
    if reference.categories is not None:
        categories = np.asarray(reference.categories, dtype=np.float64)
        order = np.argsort(categories)
        return _Bins(column, name, None, categories[order], expected[order])
    edges = np.asarray(reference.edges, dtype=np.float64)
    return _Bins(column, name, edges[1:-1], None, expected)


def psi(actual: np.ndarray, expected: np.ndarray, epsilon: float = EPSILON) -> float:
    """Population stability index of two proportion vectors over the same bins."""
    a = np.maximum(actual, epsilon)
    e = np.maximum(expected, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def bin_shares(values: np.ndarray, bins: _Bins) -> np.ndarray | None:
    """Share of the (non-missing) values per reference bin; None when there are none."""
    size = bins.expected.size
    if bins.categories is not None:
        positions = np.searchsorted(bins.categories, values)
        positions = np.minimum(positions, size - 1)
        known = bins.categories[positions] == values
        counts = np.bincount(positions[known], minlength=size)
    else:
        assert bins.inner_edges is not None
        positions = np.searchsorted(bins.inner_edges, values, side="right")
        counts = np.bincount(positions, minlength=size)
    total = int(counts.sum())
    if total == 0:
        return None
    shares: np.ndarray = counts[:size] / total
    return shares


class DriftMonitor:
    """A rolling window of recent valid model rows and the drift gauges computed from it."""

    def __init__(
        self,
        contract: Contract,
        *,
        window: int,
        update_every: int,
        metrics: ConsumerMetrics | None = None,
    ) -> None:
        self._names = contract.attribute_names
        self._window = np.full((window, len(self._names)), np.nan, dtype=np.float64)
        self._size = 0
        self._next = 0
        self._since_update = 0
        self._update_every = update_every
        self._metrics = metrics
        column_of = {name: i for i, name in enumerate(self._names)}
        references, self.problems = contract.drift_references()
        self._bins = [
            _bins(column_of[name], name, reference) for name, reference in references.items()
        ]

    @property
    def records(self) -> int:
        return self._size

    def add(self, rows: np.ndarray) -> DriftSnapshot | None:
        """Adds scored rows; returns the snapshot when the gauges were updated."""
        count = rows.shape[0]
        if count == 0:
            return None
        capacity = self._window.shape[0]
        if count >= capacity:
            self._window[:] = rows[-capacity:]
            self._next = 0
            self._size = capacity
        else:
            first = min(count, capacity - self._next)
            self._window[self._next : self._next + first] = rows[:first]
            if first < count:
                self._window[: count - first] = rows[first:]
            self._next = (self._next + count) % capacity
            self._size = min(capacity, self._size + count)
        self._since_update += count
        if self._since_update < self._update_every:
            return None
        self._since_update = 0
        snapshot = self.snapshot()
        self._publish(snapshot)
        return snapshot

    def snapshot(self) -> DriftSnapshot:
        window = self._window[: self._size]
        missing = np.isnan(window)
        ratios = missing.mean(axis=0) if self._size else np.zeros(len(self._names))
        psis: dict[str, float] = {}
        for bins in self._bins:
            column = window[:, bins.column]
            values = column[~missing[:, bins.column]]
            if values.size < MIN_PRESENT:
                continue
            shares = bin_shares(values, bins)
            if shares is not None:
                psis[bins.name] = psi(shares, bins.expected)
        return DriftSnapshot(
            records=self._size,
            psi=psis,
            missing_ratio={name: float(r) for name, r in zip(self._names, ratios, strict=True)},
        )

    def _publish(self, snapshot: DriftSnapshot) -> None:
        if self._metrics is None:
            return
        for name, value in snapshot.psi.items():
            self._metrics.feature_psi.labels(attribute=name).set(value)
        for name, ratio in snapshot.missing_ratio.items():
            self._metrics.attribute_missing_ratio.labels(attribute=name).set(ratio)
