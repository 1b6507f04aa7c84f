"""Package the chosen pipeline as the registered model: pyfunc from code + skops + contract.

Layout of a version (docs/model-contract.md): MLmodel, python_model.py
(training/registry/risk_model.py copied under MLflow's usual name), artifacts/contract.json,
artifacts/pipeline.skops.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import skops.io
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types.schema import AnyType, Array, ColSpec, Object, Property, Schema
from sklearn.pipeline import Pipeline

from common.attributes import ATTRIBUTE_NAMES, REQUIRED
from common.contract import CONTRACT_VERSION
from training.data.views import records_to_frame
from training.errors import TrainingError
from training.registry import risk_model
from training.registry.contract import check_contract

MODEL_CODE = Path(risk_model.__file__)
# Distributions the model code needs at serving time (the consumer image pins the same).
SERVING_DISTRIBUTIONS = (
    "mlflow-skinny",
    "numpy",
    "pandas",
    "scikit-learn",
    "feature-engine",
    "xgboost-cpu",
    "skops",
)


def for_serving(pipeline: Pipeline) -> Pipeline:
    """One scoring thread: the consumer runs one process per shard and scales by processes."""
    classifier = pipeline.steps[-1][1]
    if "n_jobs" in classifier.get_params():
        classifier.set_params(n_jobs=1)
    return pipeline


def check_allowlist(pipeline: Pipeline) -> None:
    """Refuse to package a type the serving side would refuse to load."""
    untrusted = set(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)))
    extra = sorted(untrusted - set(risk_model.ALLOWLIST))
    if extra:
        raise TrainingError(f"pipeline holds types outside the model's ALLOWLIST: {extra}")


def signature() -> ModelSignature:
    # Inputs are typed Any: MLflow refuses int64 columns for "double" and NaN (a partial
    # record) for "long", so a person with a frame of the data file could not score it. The
    # model checks and converts its inputs itself; contract.json holds each attribute's type.
    inputs = Schema(
        [
            ColSpec(AnyType(), name, required=name in REQUIRED)  # type: ignore[no-untyped-call]
            for name in ATTRIBUTE_NAMES
        ]
    )
    factor = Object(
        [
            Property("feature", "string"),
            Property("label", "string"),
            Property("value", "double", required=False),
            Property("contribution", "double"),
        ]
    )
    outputs = Schema(
        [
            ColSpec("double", "dropout_probability"),
            ColSpec("boolean", "at_risk"),
            ColSpec("string", "risk_band"),
            ColSpec(Array(factor), "top_factors"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def pip_requirements() -> list[str]:
    out = []
    for dist in SERVING_DISTRIBUTIONS:
        try:
            out.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            out.append(dist)
    return out


def stage_model(
    pipeline: Pipeline, contract: dict[str, Any], folder: Path
) -> tuple[dict[str, Any], risk_model.DropoutRiskModel]:
    """Write pipeline.skops, contract.json (with expected outputs) and python_model.py."""
    for_serving(pipeline)
    check_allowlist(pipeline)
    skops.io.dump(pipeline, folder / "pipeline.skops")
    # Score through the reloaded pipeline: exactly what the consumer will run.
    served = _reload(folder)
    model = risk_model.DropoutRiskModel()
    model.configure({**contract, "expected_example_output": []}, served)
    contract = dict(contract)
    examples = records_to_frame(contract["input_example"])
    contract["expected_example_output"] = [
        float(p) for p in model.predict(None, examples)["dropout_probability"]
    ]
    problems = check_contract(contract)
    if problems:
        raise TrainingError("invalid contract: " + "; ".join(problems))
    (folder / "contract.json").write_text(json.dumps(contract, indent=1), encoding="utf-8")
    shutil.copyfile(MODEL_CODE, folder / "python_model.py")
    model.configure(contract, served)
    return contract, model


def _reload(folder: Path) -> Pipeline:
    """The pipeline loaded back with the model's allowlist, as load_context does."""
    loaded: Pipeline = skops.io.load(folder / "pipeline.skops", trusted=risk_model.ALLOWLIST)
    return loaded


def log_model(folder: Path, contract: dict[str, Any], registered_model_name: str) -> ModelInfo:
    """Log the staged files in the active run and register a new version."""
    examples = records_to_frame(contract["input_example"])
    info: ModelInfo = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(folder / "python_model.py"),
        artifacts={
            "contract": str(folder / "contract.json"),
            "pipeline": str(folder / "pipeline.skops"),
        },
        signature=signature(),
        input_example=examples,
        metadata={"contract_version": CONTRACT_VERSION},
        registered_model_name=registered_model_name,
        pip_requirements=pip_requirements(),
    )
    return info


def predict_ms_per_1000(model: risk_model.DropoutRiskModel, frame: pd.DataFrame) -> float:
    """Median wall time of predict() on 1000 rows (probabilities and top factors)."""
    rows = frame.sample(n=1000, replace=len(frame) < 1000, random_state=0).reset_index(drop=True)
    model.predict(None, rows)  # warm-up
    times = []
    for _ in range(7):
        start = time.perf_counter()
        model.predict(None, rows)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def staging_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="dropout-model-")
