"""End to end against a real `mlflow server`: train --quick through the CLI (the session's one
training run), then load `models:/<name>@champion` in a fresh Python process, as the consumer
does."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow import MlflowClient

from devstack.ports import free_port
from tests.support.champion import SessionChampion
from tests.training.helpers import clean_env

OUTPUT_COLUMNS = ["dropout_probability", "at_risk", "risk_band", "top_factors"]

# Runs in a new interpreter without the training package on its path: only the registry.
LOAD_AND_SCORE = textwrap.dedent(
    """
    import json, sys
    import mlflow
    import pandas as pd

    assert "training" not in sys.modules
    mlflow.set_tracking_uri(sys.argv[1])
    model = mlflow.pyfunc.load_model(f"models:/{sys.argv[2]}@champion")
    contract = model.unwrap_python_model().contract
    names = [a["name"] for a in contract["attributes"]]
    seed = {"GDP": 1.74, "Inflation rate": 1.4, "Tuition fees up to date": 1,
            "Scholarship holder": 0, "Curricular units 1st sem (approved)": 5,
            "Curricular units 1st sem (enrolled)": 6, "Curricular units 2nd sem (approved)": 5}
    frame = pd.DataFrame([seed], columns=names).astype("float64")
    out = model.predict(frame)
    examples = pd.DataFrame(contract["input_example"], columns=names).astype("float64")
    again = model.predict(examples)["dropout_probability"].tolist()
    print(json.dumps({
        "columns": list(out.columns),
        "dtypes": [str(t) for t in out.dtypes],
        "row": {k: out.iloc[0][k] if k != "at_risk" else bool(out.iloc[0][k])
                for k in out.columns},
        "threshold": contract["threshold"],
        "expected": contract["expected_example_output"],
        "again": again,
        "modules": sorted(m for m in sys.modules if m.split(".")[0] == "training"),
    }, default=float))
    """
)


@pytest.mark.integration
def test_train_quick_then_load_champion_in_a_fresh_process(
    champion_run: SessionChampion, tmp_path: Path
) -> None:
    """The session's one training run (tests/support/champion.py) went through the CLI against
    a real `mlflow server`; its registry, served again, gives the champion to a fresh process."""
    assert champion_run.returncode == 0, f"{champion_run.stdout}\n{champion_run.stderr}"
    assert "promoted to @champion: first_model" in " ".join(champion_run.stdout.split())
    events = [json.loads(line) for line in champion_run.stderr.splitlines() if line.startswith("{")]
    decisions = [e for e in events if e.get("event") == "gate_decision"]
    assert decisions
    assert decisions[0]["decision"] == "promoted"

    model_name = champion_run.model_name
    with champion_run.open_registry(free_port()) as url:
        client = MlflowClient(url, url)
        version = client.get_model_version_by_alias(model_name, "champion")
        assert str(version.version) == champion_run.version
        assert version.tags["gate.decision"] == "promoted"
        assert version.tags["model_kind"] in ("xgboost", "logistic_regression")

        # A fresh interpreter outside the repository, as a consumer process would be.
        fresh = subprocess.run(
            [sys.executable, "-c", LOAD_AND_SCORE, url, model_name],
            cwd=tmp_path,
            # Without the repository on its path: only the registry can give it the model.
            env={k: v for k, v in clean_env().items() if k != "PYTHONPATH"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert fresh.returncode == 0, fresh.stderr
    result = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert result["modules"] == []
    assert result["columns"] == OUTPUT_COLUMNS
    assert result["dtypes"][:2] == ["float64", "bool"]
    row = result["row"]
    assert 0.0 <= row["dropout_probability"] <= 1.0
    assert row["at_risk"] == (row["dropout_probability"] >= result["threshold"])
    assert row["risk_band"] in ("low", "medium", "high")
    assert len(row["top_factors"]) == 3
    assert {"feature", "label", "value", "contribution"} == set(row["top_factors"][0])
    assert result["again"] == pytest.approx(result["expected"], abs=1e-6)
