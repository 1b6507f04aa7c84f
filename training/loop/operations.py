"""The learning loop's commands, wired to the settings: import outcomes, monitor the live
model, build the institution's dataset (`python -m training outcomes|monitor|dataset`).

Each opens the loop's store (LOOP_URI, LOOP_S3_ENDPOINT_URL) and the registry
(MLFLOW_TRACKING_URI); the library modules beside this one do the work and never read settings.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient

from common.contract import CONTRACT_PATH
from common.object_store import Store, StoreError, open_store
from training.config import TrainingSettings
from training.errors import DataSourceError, RegistryError
from training.log import get_logger
from training.loop.captures import read_captures
from training.loop.dataset import LabelledDataset, build_dataset, write_dataset
from training.loop.estimate import Calibrator
from training.loop.monitor import MonitorReport, monitor
from training.loop.outcomes import ImportSummary, OutcomeImportError, import_outcomes, read_outcomes
from training.loop.publish import push_to_gateway, record_in_mlflow
from training.registry.tracking import configure_tracking

log = get_logger(__name__)


def loop_store(settings: TrainingSettings) -> Store:
    try:
        return open_store(settings.loop_uri, endpoint_url=settings.loop_s3_endpoint_url)
    except StoreError as exc:
        raise DataSourceError(f"learning-loop store: {exc}") from exc


def import_outcome_file(settings: TrainingSettings, path: Path, today: date) -> ImportSummary:
    """Validate an outcome file and upload its valid rows to `outcomes/`."""
    try:
        return import_outcomes(path, loop_store(settings), today=today)
    except OutcomeImportError as exc:
        raise DataSourceError(str(exc)) from exc
    except StoreError as exc:
        raise DataSourceError(f"outcomes not uploaded: {exc}") from exc


@dataclass(frozen=True)
class VersionFacts:
    """What the monitor needs of a registered version: its run, held-out AUC and calibrator."""

    version: str
    run_id: str
    held_out_auc: float
    calibrator: Calibrator | None


def version_facts(client: MlflowClient, name: str, versions: set[str]) -> dict[str, VersionFacts]:
    """Each version's contract.json (nothing else of the model is downloaded)."""
    facts: dict[str, VersionFacts] = {}
    for version in sorted(versions, key=lambda v: (len(v), v)):
        try:
            registered = client.get_model_version(name, version)
            uri = str(client.get_model_version_download_uri(name, version))
            if uri.startswith("models:/"):
                uri = str(client.get_logged_model(uri.removeprefix("models:/")).artifact_location)
            with tempfile.TemporaryDirectory() as work:
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{uri.rstrip('/')}/{CONTRACT_PATH.as_posix()}",
                    dst_path=work,
                    tracking_uri=client.tracking_uri,
                )
                contract: dict[str, Any] = json.loads(Path(local).read_text(encoding="utf-8"))
        except Exception as exc:  # noqa: BLE001 (one unreadable version must not hide the rest)
            log.warning("version_facts_unavailable", version=version, error=str(exc)[:300])
            continue
        raw = (contract.get("calibration") or {}).get("calibrator")
        facts[version] = VersionFacts(
            version=version,
            run_id=str(registered.run_id),
            held_out_auc=float(contract.get("metrics", {}).get("roc_auc", float("nan"))),
            calibrator=Calibrator.from_dict(raw) if isinstance(raw, dict) else None,
        )
    return facts


def run_monitor(
    settings: TrainingSettings,
    *,
    today: date | None = None,
    publish: bool = True,
) -> tuple[MonitorReport, dict[str, VersionFacts]]:
    """Realized and estimated quality of the live versions; recorded on each version's MLflow
    run and pushed to the Pushgateway (unless PUSHGATEWAY_URL is empty)."""
    today = today or datetime.now(tz=UTC).date()
    store = loop_store(settings)
    client = configure_tracking(settings)
    try:
        versions = set(
            read_captures(store, models=[settings.model_name]).frame["model_version"].dropna()
        )
    except StoreError as exc:
        raise DataSourceError(f"captures unreadable: {exc}") from exc
    facts = version_facts(client, settings.model_name, {str(v) for v in versions})
    try:
        report = monitor(
            store,
            reference_auc_by_version={v: f.held_out_auc for v, f in facts.items()},
            today=today,
            n_bootstrap=settings.monitor_bootstrap,
            seed=settings.search_seed,
            calibrators={v: f.calibrator for v, f in facts.items() if f.calibrator is not None},
            model_name=settings.model_name,
        )
    except StoreError as exc:
        raise DataSourceError(f"learning-loop store: {exc}") from exc
    if publish:
        record_in_mlflow(client, report, {v: f.run_id for v, f in facts.items()})
        if settings.pushgateway_url:
            try:
                push_to_gateway(settings.pushgateway_url, report, settings.model_name)
            except OSError as exc:
                raise RegistryError(
                    f"Pushgateway {settings.pushgateway_url} unreachable: {exc}"
                ) from exc
    return report, facts


class NothingToBuild(Exception):  # noqa: N818 (a normal outcome, not an error)
    """No student has both a complete captured record and an outcome yet."""


def champion_version(settings: TrainingSettings) -> str | None:
    """The version behind MODEL_ALIAS, or None when there is none yet or the registry cannot
    say (the monitor's figures stand without it)."""
    from mlflow.exceptions import MlflowException

    try:
        registered = configure_tracking(settings).get_model_version_by_alias(
            settings.model_name, settings.model_alias
        )
    except MlflowException as exc:
        log.warning("champion_unknown", error=str(exc)[:300])
        return None
    return str(registered.version)


def build_institution_dataset(
    settings: TrainingSettings, *, today: date | None = None
) -> tuple[LabelledDataset, str]:
    """The institution's labelled dataset from captures and outcomes, written to `datasets/`
    (named by its sha256) and logged to MLflow as a dataset input of a run of its own."""
    from common.attributes import ATTRIBUTE_NAMES, ATTRIBUTES

    store = loop_store(settings)
    try:
        captures = read_captures(
            store, models=[settings.model_name], attribute_names=ATTRIBUTE_NAMES
        )
        outcomes = read_outcomes(store, today=today)
        dataset = build_dataset(
            captures.frame,
            outcomes.frame,
            attribute_names=ATTRIBUTE_NAMES,
            integer_attributes=[a.name for a in ATTRIBUTES if a.dtype == "int"],
        )
        if dataset.rows == 0:
            raise NothingToBuild(
                "no student has both a complete captured record and an outcome: nothing to "
                f"build ({dataset.summary.excluded.by_reason()})"
            )
        key = write_dataset(dataset, store)
    except StoreError as exc:
        raise DataSourceError(f"learning-loop store: {exc}") from exc
    uri = f"{store.uri}{key}"
    _log_dataset_run(settings, dataset, uri)
    return dataset, uri


def _log_dataset_run(settings: TrainingSettings, dataset: LabelledDataset, uri: str) -> None:
    import io

    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas

    configure_tracking(settings)
    frame = pd.read_csv(io.BytesIO(dataset.content), sep=";")
    with mlflow.start_run(run_name=f"dataset-{dataset.sha256[:12]}"):
        mlflow.set_tags({"role": "dataset", "data_sha256": dataset.sha256, "dataset_uri": uri})
        mlflow.log_metrics(
            {"rows": dataset.rows, "students_with_outcome": dataset.summary.students_with_outcome}
        )
        mlflow.log_input(
            from_pandas(frame, source=uri, name=dataset.name, targets="Target"),
            context="institution",
        )
