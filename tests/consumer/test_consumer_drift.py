"""Drift: PSI per attribute against the model's training reference, and missing ratios."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.contract import Contract
from consumer.observe.drift import DriftMonitor, psi
from consumer.observe.metrics import ConsumerMetrics
from tests.support.fakes import metric_value
from tests.support.model_builder import load_uci


def training_rows(data_path: Path, contract: Contract) -> np.ndarray:
    frame, _ = load_uci(data_path)
    return frame[contract.attribute_names].to_numpy(dtype=np.float64)


def test_psi_of_identical_distributions_is_zero() -> None:
    shares = np.array([0.1, 0.2, 0.0, 0.7])
    assert psi(shares, shares) == 0.0
    assert psi(np.array([0.5, 0.5]), np.array([0.9, 0.1])) > 0.5


def test_the_reference_distribution_has_zero_psi(
    contract: Contract, data_path: Path, metrics: ConsumerMetrics
) -> None:
    rows = training_rows(data_path, contract)
    monitor = DriftMonitor(contract, window=5000, update_every=len(rows), metrics=metrics)
    snapshot = monitor.add(rows)
    assert snapshot is not None
    assert snapshot.records == len(rows)
    assert set(snapshot.psi) == set(contract.attribute_names)
    assert max(snapshot.psi.values()) < 1e-9
    assert max(snapshot.missing_ratio.values()) == 0.0
    assert metric_value(metrics, "dropout_consumer_feature_psi", attribute="GDP") < 1e-9


def test_a_sample_of_the_reference_has_small_psi(contract: Contract, data_path: Path) -> None:
    rows = training_rows(data_path, contract)
    sample = np.random.default_rng(5).choice(rows, size=2000, replace=False)
    monitor = DriftMonitor(contract, window=2000, update_every=2000)
    snapshot = monitor.add(sample)
    assert snapshot is not None
    assert max(snapshot.psi.values()) < 0.1


def test_a_shifted_distribution_has_large_psi(
    contract: Contract, data_path: Path, metrics: ConsumerMetrics
) -> None:
    rows = training_rows(data_path, contract).copy()
    gdp = contract.attribute_names.index("GDP")
    age = contract.attribute_names.index("Age at enrollment")
    tuition = contract.attribute_names.index("Tuition fees up to date")
    rows[:, gdp] += 3.0
    rows[:, age] += 10.0
    rows[:, tuition] = 0.0  # everyone behind on fees
    monitor = DriftMonitor(contract, window=5000, update_every=1, metrics=metrics)
    snapshot = monitor.add(rows)
    assert snapshot is not None
    assert snapshot.psi["GDP"] > 1.0
    assert snapshot.psi["Age at enrollment"] > 0.5
    assert snapshot.psi["Tuition fees up to date"] > 1.0
    assert snapshot.psi["Course"] < 1e-9
    assert metric_value(metrics, "dropout_consumer_feature_psi", attribute="GDP") > 1.0


def test_missing_values_are_left_out_of_psi_and_reported(
    contract: Contract, data_path: Path, metrics: ConsumerMetrics
) -> None:
    rows = training_rows(data_path, contract).copy()
    course = contract.attribute_names.index("Course")
    rows[::2, course] = np.nan
    monitor = DriftMonitor(contract, window=5000, update_every=1, metrics=metrics)
    snapshot = monitor.add(rows)
    assert snapshot is not None
    assert snapshot.missing_ratio["Course"] == 0.5
    assert snapshot.psi["Course"] < 0.01
    ratio = metric_value(metrics, "dropout_consumer_attribute_missing_ratio", attribute="Course")
    assert ratio == 0.5


def test_too_few_values_give_no_psi(contract: Contract, data_path: Path) -> None:
    rows = training_rows(data_path, contract)[:10]
    snapshot = DriftMonitor(contract, window=100, update_every=1).add(rows)
    assert snapshot is not None
    assert snapshot.psi == {}


def test_the_window_rolls_and_updates_every_n_records(contract: Contract, data_path: Path) -> None:
    rows = training_rows(data_path, contract)
    monitor = DriftMonitor(contract, window=300, update_every=250)
    assert monitor.add(rows[:100]) is None
    assert monitor.add(rows[100:200]) is None
    snapshot = monitor.add(rows[200:260])
    assert snapshot is not None
    assert snapshot.records == 260
    monitor.add(rows[260:400])
    assert monitor.records == 300
    # The window now holds rows 100..399, in ring order.
    held = monitor._window
    assert sorted(map(tuple, held.tolist())) == sorted(map(tuple, rows[100:400].tolist()))
    monitor.add(rows[:1000])
    assert sorted(map(tuple, monitor._window.tolist())) == sorted(
        map(tuple, rows[700:1000].tolist())
    )


def test_a_snapshot_reads_the_window_and_changes_nothing(
    contract: Contract, data_path: Path, metrics: ConsumerMetrics
) -> None:
    # What a snapshot of a full window costs is measured by benchmarks/scoring_throughput.py
    # (its drift line), not asserted here: a timed assertion fails on a busy machine.
    rows = training_rows(data_path, contract)
    monitor = DriftMonitor(contract, window=5000, update_every=10**9, metrics=metrics)
    assert monitor.add(rows) is None  # below update_every: no snapshot, no gauges
    window = monitor._window.copy()
    first = monitor.snapshot()
    second = monitor.snapshot()
    assert first == second
    assert first.records == min(5000, len(rows))
    assert set(first.psi) == set(contract.attribute_names)
    assert np.array_equal(monitor._window, window, equal_nan=True)
    assert monitor.records == first.records
    # Only add() publishes: the gauges were never set.
    gdp = {"attribute": "GDP"}
    assert metrics.registry.get_sample_value("dropout_consumer_feature_psi", gdp) is None
