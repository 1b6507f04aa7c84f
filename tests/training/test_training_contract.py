"""The registered model's files and contract.json, field by field (docs/model-contract.md)."""

from __future__ import annotations

import copy
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.attributes import ATTRIBUTE_NAMES, BY_NAME, REQUIRED, SEED_FEATURES, SEED_RECORD, STAGES
from tests.training.helpers import Trained
from training.data.reading import Dataset
from training.data.split import held_out_split
from training.registry.contract import check_contract


@pytest.fixture(scope="module")
def contract(trained: Trained) -> dict[str, Any]:
    path = trained.model_dir / "artifacts" / "contract.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def test_model_files(trained: Trained) -> None:
    files = {p.relative_to(trained.model_dir).as_posix() for p in trained.model_dir.rglob("*")}
    assert {
        "MLmodel",
        "python_model.py",
        "artifacts/contract.json",
        "artifacts/pipeline.skops",
    } <= files
    assert not any(f.endswith((".pkl", ".pickle")) for f in files)


def test_mlmodel_signature_and_metadata(trained: Trained) -> None:
    mlmodel = yaml.safe_load((trained.model_dir / "MLmodel").read_text())
    assert mlmodel["metadata"]["contract_version"] == 1
    assert "python_function" in mlmodel["flavors"]
    inputs = json.loads(mlmodel["signature"]["inputs"])
    assert [c["name"] for c in inputs] == list(ATTRIBUTE_NAMES)
    # Any: MLflow's own enforcement would refuse integer columns or missing values (see
    # test_a_person_with_a_data_frame_gets_predictions); the model checks its inputs itself.
    assert {c["type"] for c in inputs} == {"any"}
    assert {c["name"] for c in inputs if c["required"]} == set(REQUIRED)
    outputs = [c["name"] for c in json.loads(mlmodel["signature"]["outputs"])]
    assert outputs == ["dropout_probability", "at_risk", "risk_band", "top_factors"]
    assert "saved_input_example_info" in mlmodel


def test_contract_is_valid(contract: dict[str, Any]) -> None:
    assert check_contract(contract) == []


def test_contract_top_level(contract: dict[str, Any], trained: Trained, dataset: Dataset) -> None:
    assert contract["contract_version"] == 1
    assert contract["model_name"] == trained.model_name
    assert contract["model_kind"] in ("xgboost", "logistic_regression")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", contract["created_at"])
    training = contract["training"]
    assert training["run_id"] == trained.run_id
    assert re.fullmatch(r"[0-9a-f]{64}", training["data_sha256"])
    assert training["git_commit"]
    assert (training["split_seed"], training["test_size"]) == (42, 0.2)
    split = held_out_split(dataset, seed=42, test_size=0.2)
    assert (training["n_train"], training["n_test"]) == (len(split.x_train), len(split.x_test))
    assert 0 < contract["threshold"] < 1
    assert contract["top_k_factors"] == 3
    assert (
        contract["contributions"]
        == {"xgboost": "saabas", "logistic_regression": "linear"}[contract["model_kind"]]
    )
    assert contract["stages"] == list(STAGES)


def test_risk_bands(contract: dict[str, Any]) -> None:
    bands = contract["risk_bands"]
    assert [b["name"] for b in bands] == ["low", "medium", "high"]
    assert bands[0]["lower"] == 0.0
    assert bands[-1]["upper"] == 1.0
    assert bands[-1]["lower"] == contract["threshold"]
    for left, right in itertools.pairwise(bands):
        assert left["upper"] == right["lower"]


def test_attributes(contract: dict[str, Any]) -> None:
    attributes = contract["attributes"]
    assert [a["name"] for a in attributes] == list(ATTRIBUTE_NAMES)
    required = [a["name"] for a in attributes if a["required"]]
    assert required == ["Tuition fees up to date", "Scholarship holder"]
    assert set(required) <= set(SEED_FEATURES)  # the seed's record always scores
    for a in attributes:
        spec = BY_NAME[a["name"]]
        assert (a["dtype"], a["kind"], a["stage"]) == (spec.dtype, spec.kind, spec.stage)
        assert (a["min"], a["max"]) == (spec.min, spec.max)
        number = int if a["dtype"] == "int" else float
        assert type(a["min"]) is number
        assert type(a["max"]) is number
        if a["kind"] == "categorical":
            assert a["categories"] == sorted(set(a["categories"]))
            assert all(type(c) is int and a["min"] <= c <= a["max"] for c in a["categories"])
        else:
            assert a["categories"] is None
    course = next(a for a in attributes if a["name"] == "Course")
    assert len(course["categories"]) == 17


def test_categories_are_every_code_of_the_data(
    contract: dict[str, Any], uci_data_path: Path
) -> None:
    """A code seen only in the held-out part is still a valid student, never a dead letter."""
    import pandas as pd

    frame = pd.read_csv(uci_data_path, sep=";", encoding="utf-8-sig")
    frame.columns = frame.columns.str.strip()
    for a in contract["attributes"]:
        if a["kind"] == "categorical":
            assert a["categories"] == sorted(int(v) for v in frame[a["name"]].unique()), a["name"]


def test_features_and_reference(contract: dict[str, Any]) -> None:
    for feature in contract["features"]:
        assert feature["name"] not in ATTRIBUTE_NAMES
        assert feature["label"]
        assert feature["label"] != feature["name"]
        assert set(feature["sources"]) <= set(ATTRIBUTE_NAMES)
    reference = contract["reference"]
    assert set(reference) == set(ATTRIBUTE_NAMES)
    for name, ref in reference.items():
        assert len(ref["edges"]) == len(ref["proportions"]) + 1
        assert ref["edges"] == sorted(ref["edges"])
        assert sum(ref["proportions"]) == pytest.approx(1.0, abs=1e-4)
        assert ref["missing_share"] == 0.0, name
    gender = reference["Gender"]  # one bin per code for categorical attributes
    assert gender["edges"] == [-0.5, 0.5, 1.5]


def test_examples_and_metrics(contract: dict[str, Any], trained: Trained) -> None:
    examples = contract["input_example"]
    assert examples[0] == SEED_RECORD
    assert all(set(record) <= set(ATTRIBUTE_NAMES) for record in examples)
    assert len(contract["expected_example_output"]) == len(examples)
    metrics = contract["metrics"]
    assert {"roc_auc", "f1_dropout", "brier", "per_stage", "seed_subset"} <= set(metrics)
    assert set(metrics["per_stage"]) == set(STAGES)
    assert metrics["roc_auc"] == pytest.approx(metrics["per_stage"]["second_semester"]["roc_auc"])
    # Quick search, held-out complete records: far above chance, and calibrated enough.
    assert metrics["roc_auc"] > 0.9
    assert metrics["brier"] < 0.12


def test_expected_output_reproduces(contract: dict[str, Any], trained: Trained) -> None:
    from training.data.views import records_to_frame

    out = trained.pyfunc.predict(records_to_frame(contract["input_example"]))
    assert out["dropout_probability"].tolist() == pytest.approx(
        contract["expected_example_output"], abs=1e-6
    )


BREAKS = [
    ("threshold", lambda c: c.update(threshold=1.5), "threshold"),
    ("band gap", lambda c: c["risk_bands"][1].update(lower=0.01), "contiguous"),
    ("attribute missing", lambda c: c["attributes"].pop(), "36 UCI attributes"),
    ("bad dtype", lambda c: c["attributes"][0].update(dtype="str"), "dtype"),
    ("version", lambda c: c.update(contract_version=2), "contract_version"),
    ("field", lambda c: c.pop("reference"), "reference"),
    ("proportions", lambda c: c["reference"]["GDP"]["proportions"].append(0.5), "reference"),
    ("examples", lambda c: c["expected_example_output"].pop(), "pair one to one"),
    ("method", lambda c: c.update(contributions="lime"), "contributions"),
]


@pytest.mark.parametrize(("change", "words"), [b[1:] for b in BREAKS], ids=[b[0] for b in BREAKS])
def test_check_contract_catches(contract: dict[str, Any], change: Any, words: str) -> None:
    broken = copy.deepcopy(contract)
    change(broken)
    problems = check_contract(broken)
    assert problems
    assert any(words in p for p in problems), problems


def test_reports_written(trained: Trained) -> None:
    card = Path(trained.reports_dir / "model-card.md").read_text(encoding="utf-8")
    assert "seed 7-feature baseline" in card
    assert "## Limitations" in card
    summary = json.loads((trained.reports_dir / "training-summary.json").read_text())
    assert summary["version"] == trained.version


def test_a_person_with_a_data_frame_gets_predictions(trained: Trained, uci_data_path: Path) -> None:
    """The registered model scores the data file as pandas reads it (integer columns), and
    partial records (absent columns, missing values), through MLflow's own predict."""
    import pandas as pd

    frame = pd.read_csv(uci_data_path, sep=";", encoding="utf-8-sig")
    frame.columns = frame.columns.str.strip()
    frame = frame.drop(columns="Target").head(50)
    assert (frame.dtypes == "int64").any()
    out = trained.pyfunc.predict(frame)
    assert len(out) == 50
    assert out["dropout_probability"].between(0, 1).all()

    # At enrollment: the semester columns absent; and a missing optional value in one row.
    early = frame[[c for c in frame.columns if "sem" not in c]].copy()
    early.loc[early.index[0], "Admission grade"] = None
    out = trained.pyfunc.predict(early)
    assert len(out) == 50
    assert out["dropout_probability"].notna().all()
    # The seed's sample record alone, with integer codes.
    seed = pd.DataFrame([SEED_RECORD])
    assert 0.0 <= float(trained.pyfunc.predict(seed)["dropout_probability"].iloc[0]) <= 1.0
