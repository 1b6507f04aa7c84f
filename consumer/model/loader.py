"""Find, download, check and load a registered model version (docs/model-contract.md).

Steps, each with its own failure outcome (the `model_reloads{outcome}` label):

1. resolve `MODEL_NAME@MODEL_ALIAS` in the registry   -> registry_unavailable / no_champion
2. download the version into MODEL_CACHE_DIR           -> download_failed
   (into a fresh temporary folder, then renamed into place: the shard processors of one
   container share the cache, and a folder that exists there is always complete)
3. read and validate artifacts/contract.json, before any model code runs   -> incompatible
4. load the pyfunc (the model's code opens pipeline.skops with its allowlist) -> load_failed
5. self-test: run the contract's input_example through the consumer's own batch path and
   compare with expected_example_output (within 1e-6)                       -> validation_failed

Only a model that passed all five is returned.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Final

import mlflow.pyfunc
import structlog
from mlflow import MlflowClient

from common.contract import ContractError, load_contract
from consumer.config import ConsumerSettings
from consumer.model.cache import ModelCache
from consumer.model.outcomes import LoadOutcome, ModelLoadError, ModelRef
from consumer.model.self_test import self_test
from consumer.scoring.scorer import PredictFn, direct_predict
from consumer.scoring.served_model import ServedModel

log = structlog.get_logger("consumer.model.loader")

LOCAL_VERSION: Final = "local"
# MLflow's HTTP client retries 7 times with growing backoff and waits 120 s per request by
# default: a registry outage would freeze a poll for minutes. The poller has its own backoff.
_MLFLOW_HTTP_DEFAULTS: Final = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    # Download progress bars would land in the daemon's (or the CLI's) standard error.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))$")


def configure_mlflow_http() -> None:
    """Bounded retries and timeouts for MLflow's HTTP client (unless the environment sets
    them) and no progress bars."""
    for key, value in _MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def _is_not_found(exc: Exception) -> bool:
    code = str(getattr(exc, "error_code", ""))
    return code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"} or (
        "not found" in str(exc).lower()
    )


class ModelLoader:
    """Loads model versions from the registry (or a local folder) and checks them."""

    def __init__(
        self,
        *,
        tracking_uri: str,
        model_name: str,
        model_alias: str,
        cache_dir: Path,
        max_record_bytes: int,
        client: Any = None,
    ) -> None:
        configure_mlflow_http()
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.model_alias = model_alias
        self.cache_dir = cache_dir
        self.max_record_bytes = max_record_bytes
        self._client = client
        self._cache: ModelCache | None = None

    @classmethod
    def from_settings(cls, settings: ConsumerSettings) -> ModelLoader:
        return cls(
            tracking_uri=settings.mlflow_tracking_uri,
            model_name=settings.model_name,
            model_alias=settings.model_alias,
            cache_dir=settings.model_cache_dir,
            max_record_bytes=settings.max_record_bytes,
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
            )
        return self._client

    @property
    def cache(self) -> ModelCache:
        if self._cache is None:
            self._cache = ModelCache(self.cache_dir, self.tracking_uri, self.client)
        return self._cache

    # --- registry ------------------------------------------------------------------------

    def resolve_alias(self, name: str | None = None, alias: str | None = None) -> ModelRef:
        name = name or self.model_name
        alias = alias or self.model_alias
        try:
            version = self.client.get_model_version_by_alias(name, alias)
        except Exception as exc:
            if _is_not_found(exc):
                raise ModelLoadError(
                    LoadOutcome.NO_CHAMPION, f"no version behind {name}@{alias}: {exc}"
                ) from exc
            raise ModelLoadError(
                LoadOutcome.REGISTRY_UNAVAILABLE, f"registry unavailable: {str(exc)[:500]}"
            ) from exc
        return ModelRef(name=name, version=str(version.version))

    def load_version(self, ref: ModelRef) -> ServedModel:
        path = self.cache.download(ref)
        return self.load_local(path, name=ref.name, version=ref.version, uri=ref.uri)

    def load_champion(self) -> ServedModel:
        return self.load_version(self.resolve_alias())

    def load_uri(self, uri: str) -> ServedModel:
        """A local model folder, `models:/name/version`, `models:/name@alias` or any MLflow URI."""
        local = Path(uri)
        if local.is_dir():
            try:
                name = load_contract(local).model_name
            except ContractError:
                name = local.name  # load_local reports the contract problem
            return self.load_local(local, name=name, version=LOCAL_VERSION, uri=str(local))
        match = _MODELS_URI.match(uri)
        if match:
            name = match["name"]
            if match["alias"]:
                return self.load_version(self.resolve_alias(name, match["alias"]))
            return self.load_version(ModelRef(name=name, version=match["version"]))
        # Any other MLflow artifact URI (runs:/..., s3://...): a one-off download, not cached;
        # the loaded model lives in memory, so its folder goes once it is loaded.
        try:
            scratch = self.cache_dir / ".uris"
            scratch.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(dir=scratch))
        except OSError as exc:
            raise ModelLoadError(
                LoadOutcome.DOWNLOAD_FAILED,
                f"cannot make a download folder in {self.cache_dir}: {exc}",
                LOCAL_VERSION,
            ) from exc
        try:
            path = self.cache.fetch(uri, work / "model", "uri")
            return self.load_local(path, name=uri, version=LOCAL_VERSION, uri=uri)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # --- checks and loading ----------------------------------------------------------------

    def load_local(self, path: Path, *, name: str, version: str, uri: str) -> ServedModel:
        try:
            contract = load_contract(path)
        except ContractError as exc:
            raise ModelLoadError(LoadOutcome.INCOMPATIBLE, str(exc), version) from exc
        predict = self._load_pyfunc(path, version)
        model = ServedModel.build(
            name=name,
            version=version,
            contract=contract,
            predict=predict,
            max_record_bytes=self.max_record_bytes,
            path=path,
            uri=uri,
        )
        self_test(model)
        return model

    def _load_pyfunc(self, path: Path, version: str) -> PredictFn:
        try:
            pyfunc = mlflow.pyfunc.load_model(str(path))
        except Exception as exc:
            raise ModelLoadError(
                LoadOutcome.LOAD_FAILED,
                f"cannot load the model: {type(exc).__name__}: {str(exc)[:500]}",
                version,
            ) from exc
        try:
            return direct_predict(pyfunc.unwrap_python_model())
        except Exception:  # noqa: BLE001
            # Not a PythonModel (another pyfunc flavor): use the wrapper's predict.
            wrapped: PredictFn = pyfunc.predict
            return wrapped
