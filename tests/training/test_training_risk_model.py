"""The served model: partial records, required attributes, output columns, top factors, the
skops allowlist, what the model code may import, and its scoring speed."""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
from feature_engine.encoding import OneHotEncoder
from sklearn.pipeline import Pipeline

from common.attributes import (
    ATTRIBUTE_NAMES,
    REQUIRED,
    SEED_FEATURES,
    SEED_RECORD,
    attributes_known_at,
)
from tests.training.helpers import Trained
from training.data.split import Split
from training.data.views import records_to_frame
from training.evaluation.metrics import views_of
from training.registry import risk_model

OUTPUT_COLUMNS = ["dropout_probability", "at_risk", "risk_band", "top_factors"]


def check_output(out: pd.DataFrame, contract: dict[str, Any], rows: int) -> None:
    assert list(out.columns) == OUTPUT_COLUMNS
    assert len(out) == rows
    assert out["dropout_probability"].dtype == "float64"
    assert out["at_risk"].dtype == bool
    p = out["dropout_probability"].to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    assert (out["at_risk"].to_numpy() == (p >= contract["threshold"])).all()
    bands = contract["risk_bands"]
    for prob, band in zip(p, out["risk_band"], strict=True):
        expected = next(
            b["name"] for b in bands if b["lower"] <= prob < b["upper"] or prob == b["upper"] == 1
        )
        assert band == expected
    known = {f["name"] for f in contract["features"]} | set(ATTRIBUTE_NAMES)
    for factors in out["top_factors"]:
        assert len(factors) == contract["top_k_factors"]
        sizes = [abs(f["contribution"]) for f in factors]
        assert sizes == sorted(sizes, reverse=True)
        for f in factors:
            assert set(f) == {"feature", "label", "value", "contribution"}
            assert f["feature"] in known
            assert isinstance(f["label"], str)
            assert f["value"] is None or isinstance(f["value"], float)
            assert isinstance(f["contribution"], float)
            assert math.isfinite(f["contribution"])


def test_the_seed_record_scores(trained: Trained) -> None:
    out = trained.pyfunc.predict(records_to_frame([SEED_RECORD]))
    check_output(out, trained.pyfunc.unwrap_python_model().contract, 1)
    factors = out["top_factors"].iloc[0]
    for f in factors:  # a factor on a present raw attribute shows the sent value
        if f["feature"] in SEED_RECORD:
            assert f["value"] == pytest.approx(float(SEED_RECORD[f["feature"]]))


def test_partial_records_of_every_stage_score(trained: Trained, split: Split) -> None:
    contract = trained.pyfunc.unwrap_python_model().contract
    for view, frame in views_of(split.x_test.head(40)).items():
        out = trained.pyfunc.predict(frame)
        check_output(out, contract, 40)
        if view == "enrollment":  # semester attributes are unknown: never shown with a value
            for factors in out["top_factors"]:
                for f in factors:
                    if f["feature"] in ATTRIBUTE_NAMES and f["feature"] not in (
                        attributes_known_at("enrollment")
                    ):
                        assert f["value"] is None
    only_required = records_to_frame([{name: 1 for name in REQUIRED}])
    check_output(trained.pyfunc.predict(only_required), contract, 1)


def test_partial_records_get_different_scores(trained: Trained, split: Split) -> None:
    """Missing attributes are modelled, not ignored: knowing more changes the score."""
    views = views_of(split.x_test.head(200))
    full = trained.pyfunc.predict(views["second_semester"])["dropout_probability"]
    early = trained.pyfunc.predict(views["enrollment"])["dropout_probability"]
    assert (full - early).abs().mean() > 0.05


def test_missing_required_attribute_is_refused(trained: Trained) -> None:
    contract = trained.pyfunc.unwrap_python_model().contract
    record = {k: v for k, v in SEED_RECORD.items() if k != "Scholarship holder"}
    frame = records_to_frame([SEED_RECORD, record])
    with pytest.raises(Exception, match="Scholarship holder") as caught:
        trained.pyfunc.predict(frame)
    assert "[1]" in str(caught.value)  # the offending row
    # Without the column at all, the signature refuses it before the model runs.
    absent = records_to_frame([SEED_RECORD]).drop(columns=["Tuition fees up to date"])
    with pytest.raises(Exception, match="Tuition fees up to date"):
        trained.pyfunc.predict(absent)
    # The unwrapped model (what the consumer calls) refuses too.
    with pytest.raises(ValueError, match="Scholarship holder"):
        trained.pyfunc.unwrap_python_model().predict(None, frame)
    assert contract["attributes"][18]["name"] == "Scholarship holder"


def test_contributions_add_up_to_the_score(trained: Trained, split: Split) -> None:
    model = trained.pyfunc.unwrap_python_model()
    frame = pd.concat(list(views_of(split.x_test.head(100)).values()), ignore_index=True)
    p = model.predict(None, frame)["dropout_probability"].to_numpy()
    _, contributions = model.explain(frame)
    bias = np.log(p / (1 - p)) - contributions.sum(axis=1)
    assert np.std(bias) < 1e-3  # log-odds = constant bias + sum of contributions


def test_consumer_call_and_column_order(trained: Trained, split: Split) -> None:
    model = trained.pyfunc.unwrap_python_model()
    frame = split.x_test.head(30)
    direct = model.predict(None, frame)
    shuffled = model.predict(None, frame[frame.columns[::-1]])
    assert direct["dropout_probability"].tolist() == shuffled["dropout_probability"].tolist()
    wrapped = trained.pyfunc.predict(frame)
    assert wrapped["dropout_probability"].tolist() == pytest.approx(
        direct["dropout_probability"].tolist()
    )


def test_a_large_mixed_batch_scores_each_row_as_it_would_alone(
    trained: Trained, split: Split
) -> None:
    # How fast one call scores 1,000 rows is measured by benchmarks/scoring_throughput.py (the
    # "direct" column, with the real model given by --model-uri), not asserted here.
    model = trained.pyfunc.unwrap_python_model()
    views = views_of(split.x_test.head(250)).values()  # 3 stages + the seed subset
    rows = pd.concat(list(views), ignore_index=True)
    batch = model.predict(None, rows)
    assert len(batch) == len(rows)
    # Rows of every view (they follow each other in the batch), each scored on its own: the
    # batch around a row changes nothing about its score.
    for i in range(0, len(rows), 83):
        alone = model.predict(None, rows.iloc[[i]])
        assert alone["dropout_probability"].iloc[0] == pytest.approx(
            batch["dropout_probability"].iloc[i], abs=1e-6
        )
        assert alone["at_risk"].iloc[0] == batch["at_risk"].iloc[i]
        assert alone["risk_band"].iloc[0] == batch["risk_band"].iloc[i]


class _Context:
    def __init__(self, artifacts: dict[str, str]) -> None:
        self.artifacts = artifacts


def test_allowlist_refuses_other_types(trained: Trained, tmp_path: Path) -> None:
    contract_path = trained.model_dir / "artifacts" / "contract.json"
    fine = risk_model.DropoutRiskModel()
    fine.load_context(
        _Context(
            {
                "contract": str(contract_path),
                "pipeline": str(trained.model_dir / "artifacts" / "pipeline.skops"),
            }
        )
    )
    frame = pd.DataFrame({"Course": [1.0, 2.0, 1.0], "GDP": [0.1, 0.2, 0.3]})
    foreign = Pipeline([("onehot", OneHotEncoder(variables=["Course"], ignore_format=True))])
    foreign.fit(frame)
    path = tmp_path / "pipeline.skops"
    skops.io.dump(foreign, path)
    with pytest.raises(Exception, match="OneHotEncoder"):
        risk_model.DropoutRiskModel().load_context(
            _Context({"contract": str(contract_path), "pipeline": str(path)})
        )


ALLOWED_IMPORTS = {
    "__future__",
    "json",
    "math",
    "typing",
    "mlflow",
    "numpy",
    "pandas",
    "skops",
    "sklearn",
    "feature_engine",
    "xgboost",
}


def test_model_code_is_self_contained(trained: Trained) -> None:
    for path in (Path(risk_model.__file__), trained.model_dir / "python_model.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        roots = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                roots.add(node.module.split(".")[0])
        assert roots <= ALLOWED_IMPORTS, roots - ALLOWED_IMPORTS
        assert "training" not in roots
    assert set(SEED_FEATURES) >= set(REQUIRED)
