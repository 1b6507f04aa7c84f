"""The champion gate: the rule, and its effect on a real (sqlite) registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import skops.io
from feature_engine.encoding import OneHotEncoder
from sklearn.pipeline import Pipeline
from typer.testing import CliRunner

from tests.training.helpers import champion_of, register_pipeline, sqlite_registry, tags_of
from training.cli import app
from training.config import TrainingSettings
from training.data.split import Split
from training.errors import RegistryError
from training.registry.gate import GateDecision, decide, run_gate

CHAMPION = {"enrollment": 0.80, "first_semester": 0.90, "second_semester": 0.93}


def scores(**changes: float) -> dict[str, float]:
    return {**CHAMPION, **changes}


@pytest.mark.parametrize(
    ("new", "champion", "force", "promote", "reason"),
    [
        (scores(), None, False, True, "first_model"),
        (scores(), CHAMPION, False, True, "at_least_as_good"),
        (scores(second_semester=0.95), CHAMPION, False, True, "at_least_as_good"),
        (scores(second_semester=0.926), CHAMPION, False, True, "at_least_as_good"),  # tolerance
        (scores(second_semester=0.92), CHAMPION, False, False, "worse on second_semester"),
        (scores(enrollment=0.7, second_semester=0.99), CHAMPION, False, False, "enrollment"),
        (scores(enrollment=0.7), CHAMPION, True, True, "forced (worse on enrollment (0.700"),
        # Better everywhere on UCI, worse on the institution's own held-out students.
        (
            {**scores(second_semester=0.95), "source.institution": 0.80},
            {**CHAMPION, "source.institution": 0.86},
            False,
            False,
            "worse on source.institution (0.800 < champion 0.860 - 0.005)",
        ),
        # Promoted: the decision still names the institution's figures.
        (
            {**scores(), "source.institution": 0.87, "source.uci": 0.93},
            {**CHAMPION, "source.institution": 0.86, "source.uci": 0.93},
            False,
            True,
            "at_least_as_good (per source: source.institution 0.870 vs champion 0.860; "
            "source.uci 0.930 vs champion 0.930)",
        ),
    ],
    ids=[
        "first",
        "equal",
        "better",
        "within tolerance",
        "worse",
        "worse early",
        "forced",
        "worse on the institution",
        "better on the institution",
    ],
)
def test_rule(
    new: dict[str, float],
    champion: dict[str, float] | None,
    force: bool,
    promote: bool,
    reason: str,
) -> None:
    decision = decide(new, champion, tolerance=0.005, force=force)
    assert decision.promote is promote
    assert reason in decision.reason
    tags = decision.tags()
    assert tags["gate.decision"] == ("promoted" if promote else "refused")
    assert tags["gate.new_roc_auc.second_semester"] == new["second_semester"]


@pytest.fixture
def registry(tmp_path: Path, uci_data_path: Path, request: pytest.FixtureRequest) -> Any:
    """A fresh sqlite registry per test; the model is named after the test."""
    name = f"gate-{request.node.name}"[:60].replace("[", "-").replace("]", "")
    return sqlite_registry(tmp_path, uci_data_path, name)


def gate(
    settings: TrainingSettings, client: Any, version: str, split: Split, force: bool = False
) -> GateDecision:
    return run_gate(client, settings, version=version, split=split, force=force)


def test_first_model_is_promoted(registry: Any, split: Split, pipelines: dict[str, Any]) -> None:
    settings, client = registry
    v1 = register_pipeline(pipelines["good"], split, settings)
    decision = gate(settings, client, v1, split)
    assert decision.promote
    assert decision.reason == "first_model"
    assert champion_of(settings, client) == v1
    tags = tags_of(settings, client, v1)
    assert tags["gate.decision"] == "promoted"
    assert tags["gate.reason"] == "first_model"
    assert tags["gate.champion_version"] == "none"
    assert float(tags["gate.new_roc_auc.second_semester"]) > 0.85


def test_worse_model_is_refused(registry: Any, split: Split, pipelines: dict[str, Any]) -> None:
    settings, client = registry
    v1 = register_pipeline(pipelines["good"], split, settings)
    gate(settings, client, v1, split)
    v2 = register_pipeline(pipelines["bad"], split, settings)
    decision = gate(settings, client, v2, split)
    assert not decision.promote
    assert decision.reason.startswith("worse on")
    assert decision.champion_version == v1
    assert champion_of(settings, client) == v1  # the alias did not move
    tags = tags_of(settings, client, v2)
    assert tags["gate.decision"] == "refused"
    assert tags["gate.champion_version"] == v1
    # The champion was scored from the registry on the same held-out split.
    assert float(tags["gate.champion_roc_auc.second_semester"]) > 0.85
    assert float(tags["gate.new_roc_auc.second_semester"]) < 0.65


def test_better_model_is_promoted(registry: Any, split: Split, pipelines: dict[str, Any]) -> None:
    settings, client = registry
    v1 = register_pipeline(pipelines["bad"], split, settings)
    assert gate(settings, client, v1, split).reason == "first_model"
    v2 = register_pipeline(pipelines["good"], split, settings)
    decision = gate(settings, client, v2, split)
    assert decision.promote
    assert decision.reason == "at_least_as_good"
    assert champion_of(settings, client) == v2
    assert tags_of(settings, client, v1)["gate.replaced_by"] == v2


def test_force_promotes_a_worse_model(
    registry: Any, split: Split, pipelines: dict[str, Any]
) -> None:
    settings, client = registry
    v1 = register_pipeline(pipelines["good"], split, settings)
    gate(settings, client, v1, split)
    v2 = register_pipeline(pipelines["bad"], split, settings)
    decision = gate(settings, client, v2, split, force=True)
    assert decision.promote
    assert decision.reason.startswith("forced")
    assert champion_of(settings, client) == v2
    assert tags_of(settings, client, v2)["gate.forced"] == "true"


def test_promote_command(
    registry: Any, split: Split, pipelines: dict[str, Any], uci_data_path: Path
) -> None:
    settings, client = registry
    v1 = register_pipeline(pipelines["good"], split, settings)
    v2 = register_pipeline(pipelines["bad"], split, settings)
    env = {
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MODEL_NAME": settings.model_name,
        "DATA_PATH": str(uci_data_path),
        "SPLIT_SEED": "42",
        "TEST_SIZE": "0.2",
    }
    runner = CliRunner()
    first = runner.invoke(app, ["promote", v1], env=env)
    assert first.exit_code == 0, first.output
    assert "first_model" in first.output
    refused = runner.invoke(app, ["promote", v2], env=env)
    assert refused.exit_code == 5, refused.output
    assert "not promoted" in refused.output
    assert champion_of(settings, client) == v1
    forced = runner.invoke(app, ["promote", v2, "--force"], env=env)
    assert forced.exit_code == 0, forced.output
    assert champion_of(settings, client) == v2
    evaluated = runner.invoke(app, ["evaluate", "--version", v1], env=env)
    assert evaluated.exit_code == 0, evaluated.output
    assert "ROC-AUC" in evaluated.output


def test_unloadable_version_is_refused(
    registry: Any, split: Split, pipelines: dict[str, Any], tmp_path: Path
) -> None:
    """A version whose pipeline holds a type outside the allowlist never becomes champion."""
    settings, client = registry
    v1 = register_pipeline(pipelines["good"], split, settings)
    gate(settings, client, v1, split)
    v2 = register_pipeline(pipelines["good"], split, settings)
    # Swap v2's pipeline for one the model code refuses to open (as a tampered store would).
    source = client.get_model_version(settings.model_name, v2).source  # models:/<model id>
    model_id = source.removeprefix("models:/")
    folder = Path(urlparse(client.get_logged_model(model_id).artifact_location).path)
    foreign = Pipeline([("onehot", OneHotEncoder(variables=["Course"], ignore_format=True))])
    skops.io.dump(foreign.fit(split.x_train), folder / "artifacts" / "pipeline.skops")
    with pytest.raises(RegistryError, match="cannot be loaded"):
        gate(settings, client, v2, split)
    assert champion_of(settings, client) == v1
    tags = tags_of(settings, client, v2)
    assert tags["gate.decision"] == "refused"
    assert tags["gate.reason"] == "unloadable"
