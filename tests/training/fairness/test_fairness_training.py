"""Fairness in the training job: the settings, the contract's reference, the groups named in a
decision, the model trained without the sensitive attributes, and the fairness gate on a real
(sqlite) registry with a planted bias: a biased challenger is refused, a fair one promoted, a
forced one promoted and marked forced."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from pydantic import ValidationError

from tests.training.fairness.synthetic import cohorts, scored
from tests.training.helpers import (
    champion_of,
    make_settings,
    register_pipeline,
    sqlite_registry,
    tags_of,
)
from training.config import TrainingSettings
from training.data.split import Split
from training.evaluation.fairness import FairnessConfig, audit_model
from training.fairness import (
    DEFAULT_GROUP_NAMES,
    FairnessAudit,
    audit,
    audit_stages,
    describe_worst,
    live_reference,
)
from training.features.augmentation import augment
from training.features.pipeline import build_pipeline
from training.features.selection import FeatureSelection
from training.registry.gate import run_gate
from training.registry.tracking import configure_tracking
from training.search.cv import CandidateResult, SearchConfig, plan_folds
from training.search.unaware import without_sensitive

SENSITIVE = [
    "Nacionality",
    "Displaced",
    "Educational special needs",
    "Debtor",
    "Gender",
    "Scholarship holder",
    "Age at enrollment",
    "International",
]


# -- settings ------------------------------------------------------------------------------------


def test_defaults_audit_the_documented_groups_and_leave_out_their_columns() -> None:
    config = FairnessConfig.from_settings(TrainingSettings())
    assert [d.name for d in config.definitions] == list(DEFAULT_GROUP_NAMES)
    # In the data file's order; International as the proxy of nationality.
    assert config.sensitive_attributes == SENSITIVE
    assert config.kinds == ("dp_difference", "eo_difference")
    assert config.sensitive_features == "with"
    document = config.document()
    assert document["schema"] == "fairness-groups/1"
    assert [g["name"] for g in document["groups"]] == list(DEFAULT_GROUP_NAMES)


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("FAIRNESS_GROUPS", "gender,religion", "valid names: gender, age_band"),
        ("FAIRNESS_GATE_KINDS", "dp_difference,accuracy", "disparity kinds are"),
        ("FAIRNESS_PROXY_ATTRIBUTES", "Shoe size", "not UCI attribute names"),
        ("SENSITIVE_FEATURES", "both", "with"),
    ],
)
def test_bad_fairness_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, words: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=words):
        TrainingSettings()


# -- the contract's reference and the words of a decision ---------------------------------------


def test_live_reference_rates_and_ratios() -> None:
    data = cohorts({"a": (400, 0.3, 0.0), "b": (400, 0.3, 1.5), "c": (20, 0.3, 0.0)})
    labels = data.groups["cohort"].to_numpy().copy()
    labels[:40] = "unknown"  # missing attribute: never part of the reference
    groups = pd.DataFrame({"cohort": labels})
    result = audit_stages(data.y, {"enrollment": data.prob}, 0.5, groups, n_bootstrap=0)
    reference = live_reference(result)["enrollment"]["cohort"]
    assert set(reference["groups"]) == {"a", "b", "c"}
    known = labels != "unknown"
    flags = data.prob >= 0.5
    assert reference["count"] == int(known.sum())
    assert reference["flagged"] == int(flags[known].sum())
    overall = flags[known].mean()
    for group, figures in reference["groups"].items():
        members = labels == group
        assert figures["count"] == int(members.sum())
        assert figures["flag_rate"] == pytest.approx(flags[members].mean(), abs=1e-6)
        assert figures["ratio"] == pytest.approx(flags[members].mean() / overall, abs=1e-5)
    assert reference["groups"]["c"]["small"] is True
    assert reference["groups"]["b"]["ratio"] > 1.2
    assert reference["groups"]["a"]["ratio"] < 0.8


def test_the_words_name_the_planted_group() -> None:
    data = scored(seed=3, shift=2.0, shifted_group="south")
    result = audit_stages(data.y, {"enrollment": data.prob}, 0.5, data.groups, n_bootstrap=0)
    worst = result.worst
    assert worst["dp_difference"].attribute == "region"
    text = describe_worst(result, worst["dp_difference"])
    assert text.startswith("flag rate south ")  # the highest flag rate first
    eo = describe_worst(result, worst["eo_difference"])
    assert eo.startswith("FPR south ")  # the shift flags the group's non-dropouts: FPR rises
    fair = audit(data.y, data.prob, 0.5, data.groups[["gender"]], stage="x", n_bootstrap=0)
    assert describe_worst(fair, replace(fair.worst["dp_difference"], attribute=None)) == ""


# -- the model trained without the sensitive attributes -----------------------------------------


def test_without_sensitive_attributes_the_model_ignores_them(
    split: Split, tmp_path: Path, uci_data_path: Path
) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'mlflow.db'}", uci_data_path, tmp_path)
    configure_tracking(settings)
    config = replace(SearchConfig.from_settings(settings, quick=True), folds=2, n_jobs=1)
    small = replace(split, x_train=split.x_train.iloc[:1500], y_train=split.y_train.iloc[:1500])
    plan = plan_folds(small.x_train, small.y_train, config)
    found = CandidateResult(
        "xgboost", {"n_estimators": 60, "max_depth": 3}, {}, np.zeros(1500), 0.0
    )
    selection = FeatureSelection([], [], [], {}, {}, 0.5)
    with mlflow.start_run():
        variant = without_sensitive(found, small, plan, config, selection, SENSITIVE, {})
    x = split.x_test.iloc[:200]
    shuffled = x.copy()
    rng = np.random.default_rng(0)
    for column in SENSITIVE:  # other students' values: a model that used them would move
        shuffled[column] = rng.permutation(x[column].to_numpy())
    np.testing.assert_array_equal(
        variant.pipeline.predict_proba(x)[:, 1], variant.pipeline.predict_proba(shuffled)[:, 1]
    )
    assert 0.0 < variant.threshold < 1.0
    assert variant.report["roc_auc"] > 0.8
    run = MlflowClient(settings.mlflow_tracking_uri).get_run(variant.run_id)
    assert run.data.tags["sensitive_features"] == "without"
    assert run.data.params["sensitive_attributes"] == ", ".join(SENSITIVE)
    assert "cv_score" in run.data.metrics


# -- the fairness gate on a real registry -------------------------------------------------------


@pytest.fixture(scope="module")
def biased(split: Split) -> Any:
    """A planted bias: trained on labels where 60 % of the male non-dropouts are marked as
    dropouts, so it flags men far more often than women, dropouts or not."""
    rng = np.random.default_rng(5)
    y = split.y_train.copy()
    male = (split.x_train["Gender"] == 1).to_numpy()
    flip = male & (y.to_numpy() == 0) & (rng.random(len(y)) < 0.6)
    y[flip] = 1
    x, ya, _ = augment(split.x_train, y, copies=2, max_missing=0.5, rng=np.random.default_rng(0))
    params = {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.1}
    return build_pipeline("xgboost", params, drop=[], n_jobs=1, seed=0).fit(x, ya)


@pytest.fixture
def registry(tmp_path: Path, uci_data_path: Path, request: pytest.FixtureRequest) -> Any:
    # The quality tolerance is wide open: what these tests decide is the fairness half.
    return sqlite_registry(
        tmp_path, uci_data_path, f"fair-{request.node.name}"[:60], gate_tolerance=0.5
    )


def gender_only(tolerance: float = 0.1, cap: float = 1.0) -> FairnessConfig:
    base = FairnessConfig.from_settings(TrainingSettings())
    definitions = tuple(d for d in base.definitions if d.name == "gender")
    caps = dict.fromkeys(base.caps, cap)
    caps["dp_ratio"] = 0.0
    return replace(base, definitions=definitions, tolerance=tolerance, caps=caps)


def gate(
    settings: Any,
    client: Any,
    version: str,
    split: Split,
    force: bool = False,
    fairness: FairnessConfig | None = None,
    challenger_audit: FairnessAudit | None = None,
) -> Any:
    """The gate with the gender-only fairness rule (`fairness` for another)."""
    return run_gate(
        client,
        settings,
        version=version,
        split=split,
        force=force,
        fairness=fairness or gender_only(),
        challenger_audit=challenger_audit,
    )


def test_the_planted_bias_is_what_the_audit_sees(
    split: Split, pipelines: dict[str, Any], biased: Any
) -> None:
    config = gender_only()

    def worst(pipeline: Any) -> float:
        result = audit_model(
            lambda f: pipeline.predict_proba(f)[:, 1], split.x_test, split.y_test, 0.4, config
        )
        return result.worst["dp_difference"].value

    assert worst(biased) > worst(pipelines["good"]) + 0.2


def test_a_biased_challenger_is_refused_with_groups_and_figures(
    registry: Any, split: Split, pipelines: dict[str, Any], biased: Any
) -> None:
    settings, client = registry
    v1 = register_pipeline(pipelines["good"], split, settings)
    first = gate(settings, client, v1, split)
    assert first.promote
    assert first.fairness is not None
    assert first.fairness.reason.startswith("first model: ")

    v2 = register_pipeline(biased, split, settings)
    decision = gate(settings, client, v2, split)
    assert not decision.promote
    assert decision.reason.startswith("refused on fairness: ")
    assert "on gender at" in decision.reason
    assert "by more than 0.10" in decision.reason
    assert "flag rate male " in decision.reason  # the group, named with its figure
    assert champion_of(settings, client) == v1
    tags = tags_of(settings, client, v2)
    assert tags["gate.decision"] == "refused"
    assert tags["fairness.gate.decision"] == "refused"
    assert tags["fairness.gate.challenger.dp_difference.attribute"] == "gender"
    assert tags["fairness.gate.challenger.dp_difference.groups"].startswith("flag rate male ")
    mine = float(tags["fairness.gate.challenger.dp_difference"])
    theirs = float(tags["fairness.gate.champion.dp_difference"])
    assert mine > theirs + 0.1
    assert tags["gate.reason"] == decision.reason

    forced = gate(settings, client, v2, split, force=True)
    assert forced.promote
    assert "fairness forced (" in forced.reason
    assert champion_of(settings, client) == v2
    assert tags_of(settings, client, v2)["fairness.gate.forced"] == "true"


def test_a_fair_challenger_is_promoted(
    registry: Any, split: Split, pipelines: dict[str, Any], biased: Any
) -> None:
    settings, client = registry
    v1 = register_pipeline(biased, split, settings)
    assert gate(settings, client, v1, split).promote  # no champion: the cap alone (1.0)
    v2 = register_pipeline(pipelines["good"], split, settings)
    decision = gate(settings, client, v2, split)
    assert decision.promote
    assert decision.reason == "at_least_as_good"  # quality's reason: fairness passed plainly
    assert decision.fairness is not None
    assert "within the cap" in decision.fairness.reason
    assert champion_of(settings, client) == v2
    tags = tags_of(settings, client, v2)
    assert tags["fairness.gate.decision"] == "passed"
    assert math.isfinite(float(tags["fairness.worst.eo_difference"]))


def test_the_cap_refuses_a_first_model(registry: Any, split: Split, biased: Any) -> None:
    settings, client = registry
    v1 = register_pipeline(biased, split, settings)
    decision = gate(settings, client, v1, split, fairness=gender_only(cap=0.2))
    assert not decision.promote
    assert decision.reason.startswith("refused on fairness: ")
    assert "exceeds the cap 0.20" in decision.reason
    assert [a.aliases for a in client.search_model_versions(f"name='{settings.model_name}'")] == [
        []
    ]


def test_the_audit_training_hands_the_gate_is_the_registered_versions(
    registry: Any, split: Split, biased: Any
) -> None:
    """The training job gives the gate the audit it made of the pipeline it registered instead
    of auditing the version again: the registered version, scored from the registry, must give
    the same figures, and the gate must decide on them."""
    from training.registry.client import load_version

    settings, client = registry
    version = register_pipeline(biased, split, settings)
    config = gender_only(cap=0.2)
    loaded = load_version(settings.model_name, version)
    handed = audit_model(
        lambda f: biased.predict_proba(f)[:, 1],
        split.x_test,
        split.y_test,
        loaded.threshold,
        config,
        n_bootstrap=20,
    )
    fresh = audit_model(
        loaded.probabilities, split.x_test, split.y_test, loaded.threshold, config, n_bootstrap=0
    )
    for kind, worst in fresh.worst.items():
        # float32 scores through the pyfunc: the same to 1e-8
        assert handed.worst[kind].value == pytest.approx(worst.value, abs=1e-6), kind
        assert (handed.worst[kind].attribute, handed.worst[kind].stage) == (
            worst.attribute,
            worst.stage,
        )
    decision = gate(settings, client, version, split, fairness=config, challenger_audit=handed)
    assert not decision.promote  # the biased model is beyond the cap of 0.2
    assert "exceeds the cap 0.20" in decision.reason
    tags = tags_of(settings, client, version)
    worst_dp = handed.worst["dp_difference"].value
    assert float(tags["fairness.gate.challenger.dp_difference"]) == pytest.approx(
        worst_dp, abs=1e-6
    )


# -- SENSITIVE_FEATURES picks the registered training -------------------------------------------


def test_sensitive_features_without_registers_the_model_that_does_not_see_them(
    tmp_path: Path, uci_data_path: Path
) -> None:
    """`train --quick` on a third of the UCI students (one XGBoost trial, one augmented copy)
    with SENSITIVE_FEATURES=without: the version registered is the one trained without the
    group attributes, and its contract, tags and card say so."""
    import json

    from tests.training.helpers import run_cli
    from training.registry.client import load_version

    text = uci_data_path.read_bytes().decode("utf-8-sig")
    header, *rows = text.splitlines()
    subset = tmp_path / "students.csv"
    subset.write_text("\n".join([header, *rows[::3]]) + "\n", encoding="utf-8")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        "MLFLOW_TRACKING_URI": tracking,
        "MLFLOW_EXPERIMENT_NAME": "fairness-without",
        "MODEL_NAME": "fair-without",
        "DATA_PATH": str(subset),
        "REPORTS_DIR": str(tmp_path / "reports"),
        "SENSITIVE_FEATURES": "without",
        "QUICK_TRIALS": "1",
        "AUGMENT_COPIES": "1",
        "LOG_FORMAT": "json",
    }
    done = run_cli("train", "--quick", env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    summary = json.loads((tmp_path / "reports" / "training-summary.json").read_text())
    with_, without = summary["sensitive_pair"]
    assert without.endswith(f"(registered v{summary['version']})")
    assert "registered" not in with_
    client = MlflowClient(tracking, tracking)
    version = client.get_model_version("fair-without", summary["version"])
    assert version.tags["sensitive_features"] == "without"
    assert client.get_run(version.run_id).data.tags["sensitive_features"] == "without"
    card = (tmp_path / "reports" / "model-card.md").read_text(encoding="utf-8")
    assert "does not use these attributes as inputs: Nacionality" in card

    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(tracking)
    served = load_version("fair-without", summary["version"])
    section = served.contract["fairness"]
    assert section["sensitive_features"] == "without"
    assert section["excluded_features"] == SENSITIVE
    x = pd.read_csv(uci_data_path, sep=";", encoding="utf-8-sig").iloc[1::3][:300]
    x.columns = x.columns.str.strip()
    x = x.drop(columns="Target")
    shuffled = x.copy()
    rng = np.random.default_rng(1)
    for column in SENSITIVE:  # other students' values: a model that used them would move
        shuffled[column] = rng.permutation(x[column].to_numpy())
    np.testing.assert_array_equal(served.probabilities(x), served.probabilities(shuffled))
