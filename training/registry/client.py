"""Model registry access: find the champion, load a version as the consumer would, tag it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from training.errors import RegistryError


@dataclass(frozen=True)
class LoadedModel:
    """A registered version loaded through pyfunc, with its contract."""

    uri: str
    version: str
    contract: dict[str, Any]
    pyfunc: Any

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        out = self.pyfunc.predict(frame)
        return np.asarray(out["dropout_probability"], dtype="float64")

    @property
    def threshold(self) -> float:
        return float(self.contract["threshold"])


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise RegistryError(f"registry: {exc.message}") from exc


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        raise RegistryError(f"model {name!r} has no version {version!r}: {exc.message}") from exc


def load_version(name: str, version: str) -> LoadedModel:
    """Load `models:/name/version` (exactly what the consumer serves) and its contract."""
    uri = f"models:/{name}/{version}"
    try:
        model = mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        raise RegistryError(f"cannot load {uri}: {exc.message}") from exc
    contract = getattr(model.unwrap_python_model(), "contract", None)
    if not isinstance(contract, dict):
        raise RegistryError(f"{uri} is not a dropout risk model (no contract)")
    return LoadedModel(uri=uri, version=str(version), contract=contract, pyfunc=model)


def set_tags(client: MlflowClient, name: str, version: str, tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
