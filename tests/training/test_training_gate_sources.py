"""The gate on two sources, with real models in a real (sqlite) registry.

The institution is synthetic but unambiguous: the students of one UCI course (Nursing, 9500,
766 students) whose outcomes follow the opposite rule to UCI's. A model trained on UCI alone
ranks them backwards; a model trained on both sources learns the course's rule. So which model
is better on the institution's own students is not in doubt, and the gate must follow it:
refuse the UCI-only challenger against the two-source champion, promote the two-source
challenger against the UCI-only champion, and name the per-source figures in both decisions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.training.helpers import register_pipeline, sqlite_registry
from training.data.reading import Dataset
from training.data.split import Split, held_out_split
from training.features.augmentation import augment
from training.features.pipeline import build_pipeline
from training.registry.gate import run_gate

COURSE = 9500


@pytest.fixture(scope="module")
def two_sources(dataset: Dataset) -> Split:
    ours = (dataset.features["Course"] == COURSE).to_numpy()
    target = pd.Series(np.where(ours, 1 - dataset.target, dataset.target), name="target")
    labels = pd.Series(np.where(target == 1, "Dropout", "Graduate"), name="Target")
    origin = pd.Series(np.where(ours, "institution", "uci"), name="origin")
    mixed = dataclasses.replace(dataset, target=target, labels=labels, origin=origin)
    return held_out_split(mixed, seed=42, test_size=0.2)


def _fit(split: Split, rows: pd.Series) -> Any:
    x, y, _ = augment(
        split.x_train[rows.to_numpy()].reset_index(drop=True),
        split.y_train[rows.to_numpy()].reset_index(drop=True),
        copies=2,
        max_missing=0.5,
        rng=np.random.default_rng(0),
    )
    params = {"n_estimators": 80, "max_depth": 4, "learning_rate": 0.1}
    return build_pipeline("xgboost", params, drop=[], n_jobs=1, seed=0).fit(x, y)


@pytest.fixture(scope="module")
def models(two_sources: Split) -> dict[str, Any]:
    everyone = pd.Series(True, index=two_sources.origin_train.index)
    return {
        "uci_only": _fit(two_sources, two_sources.origin_train == "uci"),
        "both": _fit(two_sources, everyone),
    }


@pytest.fixture
def registry(tmp_path: Path, uci_data_path: Path, request: pytest.FixtureRequest) -> Any:
    return sqlite_registry(
        tmp_path, uci_data_path, f"gate-sources-{request.node.name}"[:60], gate_tolerance=0.02
    )


def _gate(registry: Any, split: Split, pipeline: Any) -> Any:
    settings, client = registry
    version = register_pipeline(pipeline, split, settings)
    return run_gate(client, settings, version=version, split=split, force=False)


def test_a_challenger_worse_on_the_institution_is_refused(
    registry: Any, two_sources: Split, models: dict[str, Any]
) -> None:
    assert _gate(registry, two_sources, models["both"]).reason == "first_model"
    decision = _gate(registry, two_sources, models["uci_only"])
    assert not decision.promote
    new, old = decision.new_scores, decision.champion_scores
    assert old is not None
    assert new["source.institution"] < old["source.institution"] - 0.2
    assert "worse on" in decision.reason
    assert (
        f"source.institution ({new['source.institution']:.3f} < champion "
        f"{old['source.institution']:.3f}" in decision.reason
    )
    assert f"source.uci {new['source.uci']:.3f} vs champion {old['source.uci']:.3f}" in (
        decision.reason
    )


def test_a_challenger_better_on_the_institution_is_promoted(
    registry: Any, two_sources: Split, models: dict[str, Any]
) -> None:
    assert _gate(registry, two_sources, models["uci_only"]).reason == "first_model"
    decision = _gate(registry, two_sources, models["both"])
    assert decision.promote, decision.reason
    new, old = decision.new_scores, decision.champion_scores
    assert old is not None
    assert new["source.institution"] > old["source.institution"] + 0.2
    assert decision.reason.startswith("at_least_as_good (per source: source.institution")
    assert f"source.institution {new['source.institution']:.3f} vs champion" in decision.reason
