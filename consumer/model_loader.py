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
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import mlflow.artifacts
import mlflow.pyfunc
import orjson
import structlog
from mlflow import MlflowClient

from consumer.batch import InputRecord, OutputKind, SourcePosition, run_batch
from consumer.config import ConsumerSettings
from consumer.contract import Contract, ContractError, load_contract
from consumer.scoring import PredictFn, ServedModel, close_enough, direct_predict

log = structlog.get_logger("consumer.model_loader")

SELF_TEST_TOLERANCE: Final = 1e-6
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


class LoadOutcome(StrEnum):
    SUCCESS = "success"
    REGISTRY_UNAVAILABLE = "registry_unavailable"
    NO_CHAMPION = "no_champion"
    DOWNLOAD_FAILED = "download_failed"
    INCOMPATIBLE = "incompatible"
    VALIDATION_FAILED = "validation_failed"
    LOAD_FAILED = "load_failed"

    @property
    def permanent(self) -> bool:
        """Whether retrying the same version can never help."""
        return self in {
            LoadOutcome.INCOMPATIBLE,
            LoadOutcome.VALIDATION_FAILED,
            LoadOutcome.LOAD_FAILED,
        }


class ModelLoadError(Exception):
    def __init__(self, outcome: LoadOutcome, message: str, version: str | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.version = version


@dataclass(frozen=True)
class ModelRef:
    """A registered model version."""

    name: str
    version: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def configure_mlflow_http() -> None:
    """Bounded retries and timeouts for MLflow's HTTP client (unless the environment sets
    them) and no progress bars."""
    for key, value in _MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", part) or "_"


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

    def download(self, ref: ModelRef) -> Path:
        """The version's files in the shared cache (downloaded once, renamed into place)."""
        final = self.cache_dir / _safe(ref.name) / _safe(ref.version)
        if final.is_dir():
            return final
        try:
            artifact_uri = self._artifact_uri(ref)
        except Exception as exc:
            raise ModelLoadError(
                LoadOutcome.DOWNLOAD_FAILED,
                f"cannot locate the files of {ref.uri}: {str(exc)[:500]}",
                ref.version,
            ) from exc
        return self._download(artifact_uri, final, ref.version)

    def _artifact_uri(self, ref: ModelRef) -> str:
        # Resolved with this loader's client: MLflow's own models:/ resolution would use the
        # process-wide registry URI instead of ours.
        uri = str(self.client.get_model_version_download_uri(ref.name, ref.version))
        if uri.startswith("models:/"):
            # An MLflow 3 logged model (models:/m-<id>): its artifact location.
            model_id = uri.removeprefix("models:/").strip("/")
            uri = str(self.client.get_logged_model(model_id).artifact_location)
        return uri

    def _download(self, artifact_uri: str, final: Path, version: str) -> Path:
        final.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".download-{final.name}-", dir=final.parent))
        try:
            # The returned path is the model's root (a runs:/.../model URI lands in .../model).
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=artifact_uri,
                    dst_path=str(work),
                    tracking_uri=self.tracking_uri,
                    registry_uri=self.tracking_uri,
                )
            )
            if not local.is_dir():
                raise NotADirectoryError(f"{artifact_uri} is not a model folder")
            try:
                local.rename(final)
            except OSError:
                # Another processor of this container finished the same download first.
                if not final.is_dir():
                    raise
        except Exception as exc:
            raise ModelLoadError(
                LoadOutcome.DOWNLOAD_FAILED,
                f"cannot download {artifact_uri}: {str(exc)[:500]}",
                version,
            ) from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return final

    def load_version(self, ref: ModelRef) -> ServedModel:
        path = self.download(ref)
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
            path = self._download(uri, work / "model", "uri")
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


def self_test(model: ServedModel) -> None:
    """Scores the contract's input_example through the batch path and checks the outputs."""
    contract: Contract = model.contract
    records = [
        InputRecord(
            data=orjson.dumps({"student_id": f"example-{i}", "student_features": features}),
            position=SourcePosition(shard_id="self-test", sequence_number=str(i + 1)),
        )
        for i, features in enumerate(contract.input_example)
    ]
    try:
        result = run_batch(model, records)
    except Exception as exc:
        raise ModelLoadError(
            LoadOutcome.VALIDATION_FAILED,
            f"self-test raised {type(exc).__name__}: {exc}",
            model.version,
        ) from exc
    refused = [o for o in result.outputs if o.kind is not OutputKind.PREDICTION]
    if refused:
        detail = orjson.loads(refused[0].data).get("detail")
        raise ModelLoadError(
            LoadOutcome.VALIDATION_FAILED,
            f"self-test: {len(refused)} example(s) not scored, first: {refused[0].reason}: "
            f"{detail}",
            model.version,
        )
    actual = [float(o.probability or 0.0) for o in result.outputs]
    if not close_enough(actual, contract.expected_example_output, SELF_TEST_TOLERANCE):
        raise ModelLoadError(
            LoadOutcome.VALIDATION_FAILED,
            f"self-test: scores {actual} differ from expected_example_output "
            f"{contract.expected_example_output}",
            model.version,
        )
