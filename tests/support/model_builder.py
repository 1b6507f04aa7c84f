"""Builds small MLflow pyfunc models that follow docs/model-contract.md, for the consumer's tests.

`build_test_model(dst, data_path)` trains a tiny feature-engine + XGBoost pipeline on the UCI data,
stores it as `pipeline.skops`, writes `contract.json` (with the training reference for drift and a
self-test example) and saves a models-from-code pyfunc (`tests/support/python_model.py`) to `dst`.
`register_test_model(...)` logs the same to an MLflow registry and can move an alias. Helpers
break a saved model in the ways a registry can hold a bad version (for reload-failure tests).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import skops.io
from feature_engine.creation import RelativeFeatures
from mlflow import MlflowClient
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import AnyType, ColSpec, Schema
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from common.attributes import ATTRIBUTES, BY_NAME, SEED_RECORD
from common.data_files import sha256_of
from tests.support.python_model import DropoutRiskModel
from training.registry.contract import attribute_entry

MODEL_CODE = Path(__file__).with_name("python_model.py")
MODEL_NAME = "student-dropout"

# The design's sample record: it must score with every model.
SAMPLE_FEATURES: dict[str, Any] = dict(SEED_RECORD)

APPROVAL_FEATURES = (
    ("cu_1st_approval_rate", "1st semester approval rate", "1st"),
    ("cu_2nd_approval_rate", "2nd semester approval rate", "2nd"),
)


def load_uci(data_path: Path) -> tuple[pd.DataFrame, pd.Series]:
    """The UCI file as (36 float64 attributes with trimmed names, 1 = Dropout)."""
    frame = pd.read_csv(data_path, sep=";", encoding="utf-8-sig")
    frame.columns = frame.columns.str.strip()
    target = (frame.pop("Target") == "Dropout").astype(int)
    return frame.astype("float64"), target


def attributes(frame: pd.DataFrame, required: tuple[str, ...]) -> list[dict[str, Any]]:
    """The contract's attributes as training writes them (the product's specs, the codes of the
    categorical ones as the data file has them), with this model's own required set."""
    return [
        {**attribute_entry(spec, frame[spec.name]), "required": spec.name in required}
        for spec in ATTRIBUTES
    ]


def reference(frame: pd.DataFrame) -> dict[str, Any]:
    """Training distribution per attribute: category shares, or decile bins (numpy.histogram)."""
    result: dict[str, Any] = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        if BY_NAME[name].kind == "categorical":
            codes, counts = np.unique(values, return_counts=True)
            result[name] = {
                "categories": [float(c) for c in codes],
                "proportions": (counts / counts.sum()).tolist(),
                "missing_share": 0.0,
            }
            continue
        edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, 11)))
        if edges.size < 2:
            edges = np.array([edges[0], edges[0] + 1.0])
        counts, _ = np.histogram(values, bins=edges)
        result[name] = {
            "edges": edges.tolist(),
            "proportions": (counts / counts.sum()).tolist(),
            "missing_share": 0.0,
        }
    return result


def examples(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Wire-format student_features objects: the sample record, full rows and partial rows."""
    rows: list[dict[str, Any]] = [dict(SAMPLE_FEATURES)]
    for index in (0, 1, 2, 10):
        row = frame.iloc[index]
        full = {
            name: (float(row[name]) if BY_NAME[name].dtype == "float" else int(row[name]))
            for name in frame.columns
        }
        rows.append(full)
    enrollment_only = {k: v for k, v in rows[1].items() if BY_NAME[k].stage == "enrollment"}
    rows.append(enrollment_only)
    return rows


@dataclass(frozen=True)
class BuiltModel:
    path: Path
    contract: dict[str, Any]


class _Context:
    def __init__(self, artifacts: dict[str, str]) -> None:
        self.artifacts = artifacts


def _fit_pipeline(frame: pd.DataFrame, target: pd.Series, n_estimators: int, seed: int) -> Any:
    steps: list[tuple[str, Any]] = [
        (
            name,
            RelativeFeatures(
                variables=[f"Curricular units {sem} sem (approved)"],
                reference=[f"Curricular units {sem} sem (enrolled)"],
                func=["div"],
                missing_values="ignore",
                fill_value=np.nan,
            ),
        )
        for name, _, sem in APPROVAL_FEATURES
    ]
    classifier = XGBClassifier(
        n_estimators=n_estimators, max_depth=3, learning_rate=0.3, random_state=seed, n_jobs=1
    )
    pipeline = Pipeline([*steps, ("classifier", classifier)])
    pipeline.fit(frame, target)
    return pipeline


def _features(frame: pd.DataFrame) -> list[dict[str, Any]]:
    features = [{"name": name, "label": name, "sources": [name]} for name in frame.columns]
    for name, label, sem in APPROVAL_FEATURES:
        features.append(
            {
                "name": name,
                "label": label,
                "sources": [
                    f"Curricular units {sem} sem (approved)",
                    f"Curricular units {sem} sem (enrolled)",
                ],
            }
        )
    return features


def build_artifacts(
    workdir: Path,
    data_path: Path,
    *,
    required: tuple[str, ...] = ("Tuition fees up to date", "Scholarship holder"),
    n_estimators: int = 30,
    seed: int = 7,
    threshold: float = 0.42,
) -> tuple[Path, Path, dict[str, Any]]:
    """Trains the pipeline and writes pipeline.skops and contract.json into `workdir`."""
    frame, target = load_uci(data_path)
    pipeline = _fit_pipeline(frame, target, n_estimators, seed)
    workdir.mkdir(parents=True, exist_ok=True)
    pipeline_path = workdir / "pipeline.skops"
    skops.io.dump(pipeline, pipeline_path)
    contract: dict[str, Any] = {
        "contract_version": 1,
        "model_name": MODEL_NAME,
        "model_kind": "xgboost",
        "created_at": "2026-11-26T10:00:00Z",
        "training": {
            "run_id": "test-model",
            "data_sha256": sha256_of(data_path.read_bytes()),
            "git_commit": "test",
            "split_seed": seed,
            "test_size": 0.0,
            "n_train": len(frame),
            "n_test": 0,
        },
        "threshold": threshold,
        "risk_bands": [
            {"name": "low", "lower": 0.0, "upper": 0.2},
            {"name": "medium", "lower": 0.2, "upper": threshold},
            {"name": "high", "lower": threshold, "upper": 1.0},
        ],
        "top_k_factors": 3,
        "contributions": "tree_shap",
        "attributes": attributes(frame, required),
        "stages": ["enrollment", "first_semester", "second_semester"],
        "features": _features(frame),
        "reference": reference(frame),
        "input_example": examples(frame),
        "expected_example_output": [],
        # In-sample figures of this test model (no held-out split): the contract needs them.
        "metrics": _in_sample_metrics(pipeline, frame, target, threshold),
    }
    contract_path = workdir / "contract.json"
    contract_path.write_text(json.dumps(contract), encoding="utf-8")
    contract["expected_example_output"] = expected_outputs(contract_path, pipeline_path)
    contract_path.write_text(json.dumps(contract, indent=1), encoding="utf-8")
    return contract_path, pipeline_path, contract


def _in_sample_metrics(
    pipeline: Any, frame: pd.DataFrame, target: pd.Series, threshold: float
) -> dict[str, Any]:
    from sklearn.metrics import brier_score_loss, f1_score, roc_auc_score

    p = pipeline.predict_proba(frame)[:, 1]
    return {
        "roc_auc": round(float(roc_auc_score(target, p)), 6),
        "f1_dropout": round(float(f1_score(target, p >= threshold)), 6),
        "brier": round(float(brier_score_loss(target, p)), 6),
        "per_stage": {},
    }


def expected_outputs(contract_path: Path, pipeline_path: Path) -> list[float]:
    """Scores the contract's input_example with the model code itself."""
    model = DropoutRiskModel()
    model.load_context(_Context({"contract": str(contract_path), "pipeline": str(pipeline_path)}))
    contract = json.loads(contract_path.read_text(encoding="utf-8"))
    columns = [a["name"] for a in contract["attributes"]]
    frame = pd.DataFrame(
        [[row.get(c, np.nan) for c in columns] for row in contract["input_example"]],
        columns=columns,
        dtype="float64",
    )
    return [float(p) for p in model.predict(None, frame)["dropout_probability"]]


def _signature(contract: dict[str, Any]) -> Any:
    # As training's (training/registry/packaging.py): typed Any, the model checks its inputs.
    return ModelSignature(
        inputs=Schema(
            [ColSpec(AnyType(), a["name"], required=a["required"]) for a in contract["attributes"]]
        )
    )


def _pyfunc_kwargs(contract_path: Path, pipeline_path: Path, contract: dict[str, Any]) -> Any:
    return {
        "python_model": str(MODEL_CODE),
        "artifacts": {"contract": str(contract_path), "pipeline": str(pipeline_path)},
        "signature": _signature(contract),
        "input_example": pd.DataFrame(
            [
                [row.get(a["name"], np.nan) for a in contract["attributes"]]
                for row in contract["input_example"]
            ],
            columns=[a["name"] for a in contract["attributes"]],
            dtype="float64",
        ),
        "metadata": {"contract_version": 1},
        "pip_requirements": ["xgboost", "feature-engine", "scikit-learn", "skops", "pandas"],
    }


def build_test_model(dst: Path, data_path: Path, **options: Any) -> BuiltModel:
    """Saves a contract-conforming pyfunc model to the folder `dst` (must not exist)."""
    with tempfile.TemporaryDirectory() as work:
        contract_path, pipeline_path, contract = build_artifacts(Path(work), data_path, **options)
        mlflow.pyfunc.save_model(str(dst), **_pyfunc_kwargs(contract_path, pipeline_path, contract))
    return BuiltModel(dst, contract)


EXPERIMENT = "consumer-tests"


def make_registry(root: Path) -> str:
    """An MLflow tracking + registry store in `root` (sqlite, local artifacts); its URI."""
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())
    return uri


def register_model_dir(
    model_dir: Path,
    *,
    tracking_uri: str,
    name: str = MODEL_NAME,
    alias: str | None = "champion",
) -> str:
    """Logs a saved model folder as a new version of `name` (and moves `alias` to it).

    The folder's files are logged as they are, so a broken copy registers as broken.
    """
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        # A tracking server: its own artifact store (sqlite registries come from make_registry).
        experiment_id = client.create_experiment(EXPERIMENT)
    else:
        experiment_id = experiment.experiment_id
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(model_dir), artifact_path="model")
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_contract(model_dir: Path, **changes: Any) -> Path:
    """Rewrites fields of a saved model's contract.json (for incompatible/bad versions)."""
    path = model_dir / "artifacts" / "contract.json"
    contract = json.loads(path.read_text(encoding="utf-8"))
    contract.update(changes)
    path.write_text(json.dumps(contract), encoding="utf-8")
    return model_dir


def corrupt_pipeline(model_dir: Path) -> Path:
    """Replaces pipeline.skops with junk: the contract is fine, loading the model fails."""
    (model_dir / "artifacts" / "pipeline.skops").write_bytes(b"not a skops file")
    return model_dir


def sample_record(student_id: int | str = 256, **features: Any) -> dict[str, Any]:
    return {"student_id": student_id, "student_features": {**SAMPLE_FEATURES, **features}}


def dataset_records(data_path: Path, count: int, *, start: int = 0) -> list[bytes]:
    """Realistic input records (full rows of the UCI data), JSON-encoded."""
    frame, _ = load_uci(data_path)
    records = []
    for offset in range(count):
        index = (start + offset) % len(frame)
        row = frame.iloc[index]
        features = {
            name: (float(row[name]) if BY_NAME[name].dtype == "float" else int(row[name]))
            for name in frame.columns
        }
        records.append(
            json.dumps({"student_id": index, "student_features": features}).encode("utf-8")
        )
    return records
