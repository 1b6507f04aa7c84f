"""End to end against a real `mlflow server`: train --quick through the CLI, then load
`models:/<name>@champion` in a fresh Python process, as the consumer does."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.training.helpers import clean_env

REPO_ROOT = Path(__file__).resolve().parents[2]
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
    mlflow_server: str, uci_data_path: Path, tmp_path: Path
) -> None:
    model_name = "student-dropout-it"
    env = clean_env(
        PYTHONPATH=str(REPO_ROOT),
        MLFLOW_TRACKING_URI=mlflow_server,
        MODEL_NAME=model_name,
        REPORTS_DIR=str(tmp_path / "reports"),
        LOG_FORMAT="json",
    )
    train = subprocess.run(
        [sys.executable, "-m", "training", "train", "--quick", "--data", str(uci_data_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert train.returncode == 0, f"{train.stdout}\n{train.stderr}"
    assert "promoted to @champion: first_model" in " ".join(train.stdout.split())
    events = [json.loads(line) for line in train.stderr.splitlines() if line.startswith("{")]
    decisions = [e for e in events if e.get("event") == "gate_decision"]
    assert decisions
    assert decisions[0]["decision"] == "promoted"

    client = MlflowClient(mlflow_server, mlflow_server)
    version = client.get_model_version_by_alias(model_name, "champion")
    assert version.tags["gate.decision"] == "promoted"
    assert version.tags["model_kind"] in ("xgboost", "logistic_regression")

    # A fresh interpreter outside the repository, as a consumer process would be.
    fresh_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    fresh = subprocess.run(
        [sys.executable, "-c", LOAD_AND_SCORE, mlflow_server, model_name],
        cwd=tmp_path,
        env=fresh_env,
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
