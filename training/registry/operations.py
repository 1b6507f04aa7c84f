"""`evaluate` and `promote`: act on a registered version with the current data's held-out split."""

from __future__ import annotations

from typing import Any

from training.config import TrainingSettings
from training.data.reading import load_dataset
from training.data.split import Split, held_out_split
from training.errors import RegistryError
from training.evaluation.fairness import FairnessConfig
from training.evaluation.metrics import evaluate
from training.log import get_logger
from training.registry.client import LoadedModel, get_version, load_version, version_by_alias
from training.registry.gate import GateDecision, run_gate
from training.registry.tracking import configure_tracking

log = get_logger(__name__)


def _split(settings: TrainingSettings) -> Split:
    return held_out_split(load_dataset(settings), settings.split_seed, settings.test_size)


def split_warnings(model: LoadedModel, split: Split, data_sha256: str | None) -> list[str]:
    """Reasons the held-out rows may not be unseen by this model."""
    training = model.contract.get("training", {})
    out = []
    if training.get("split_seed") != split.seed or training.get("test_size") != split.test_size:
        out.append(
            f"version {model.version} was trained with split seed {training.get('split_seed')} "
            f"and test size {training.get('test_size')}: some held-out rows may be in its "
            "training part"
        )
    if data_sha256 is not None and training.get("data_sha256") != data_sha256:
        out.append(f"version {model.version} was trained on other data (sha256 differs)")
    return out


def evaluate_registered(
    settings: TrainingSettings, *, version: str | None, alias: str | None
) -> tuple[LoadedModel, dict[str, Any], list[str]]:
    """Held-out report of `models:/name/version` (or the version behind `alias`)."""
    client = configure_tracking(settings)
    name = settings.model_name
    if version is None:
        alias = alias or settings.model_alias
        found = version_by_alias(client, name, alias)
        if found is None:
            raise RegistryError(f"model {name!r} has no version with alias @{alias}")
        version = str(found.version)
    else:
        get_version(client, name, version)
    model = load_version(name, version)
    dataset = load_dataset(settings)
    split = held_out_split(dataset, settings.split_seed, settings.test_size)
    report = evaluate(
        model.probabilities, split.x_test, split.y_test, model.threshold, split.origin_test
    )
    return model, report, split_warnings(model, split, dataset.source.sha256)


def promote_version(settings: TrainingSettings, version: str, *, force: bool) -> GateDecision:
    """Run the gate, quality and fairness, for an existing version (the alias moves only if it
    passes or is forced)."""
    client = configure_tracking(settings)
    get_version(client, settings.model_name, version)
    return run_gate(
        client,
        settings,
        version=version,
        split=_split(settings),
        force=force,
        fairness=FairnessConfig.from_settings(settings),
    )
