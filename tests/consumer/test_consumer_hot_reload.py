"""Model loading and hot reload against a real MLflow registry (sqlite + local artifacts)."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from consumer.model.holder import ModelHolder
from consumer.model.loader import LOCAL_VERSION, ModelLoader
from consumer.model.outcomes import LoadOutcome, ModelLoadError, ModelRef
from consumer.model.poller import ModelPoller
from consumer.observe.metrics import ConsumerMetrics
from consumer.records import InputRecord, OutputKind, SourcePosition
from consumer.scoring.batch import run_batch
from consumer.scoring.served_model import ServedModel
from tests.support.fakes import metric_value
from tests.support.model_builder import (
    BuiltModel,
    copy_model,
    corrupt_pipeline,
    edit_contract,
    register_model_dir,
    sample_record,
)
from tests.support.threads import run_concurrently

RELOADS = "dropout_consumer_model_reloads_total"
_names = itertools.count()


@pytest.fixture
def model_name() -> str:
    # One registered model per test: tests share the session's registry.
    return f"student-dropout-{next(_names)}"


def loader_for(registry_uri: str, name: str, cache: Path) -> ModelLoader:
    return ModelLoader(
        tracking_uri=registry_uri,
        model_name=name,
        model_alias="champion",
        cache_dir=cache,
        max_record_bytes=64 * 1024,
    )


def poller_for(
    registry_uri: str,
    name: str,
    tmp_path: Path,
    *,
    interval_seconds: float = 60.0,
    metrics: ConsumerMetrics | None = None,
) -> tuple[ModelHolder, ModelPoller]:
    """A poller of `name`@champion in the test registry (cache in tmp_path/cache), and the
    holder it offers the versions it loads to."""
    holder = ModelHolder()
    loader = loader_for(registry_uri, name, tmp_path / "cache")
    return holder, ModelPoller(loader, holder, interval_seconds=interval_seconds, metrics=metrics)


def test_loads_the_champion_into_the_shared_cache(
    registry_uri: str, built_model: BuiltModel, model_name: str, tmp_path: Path
) -> None:
    version = register_model_dir(built_model.path, tracking_uri=registry_uri, name=model_name)
    loader = loader_for(registry_uri, model_name, tmp_path / "cache")
    model = loader.load_champion()
    assert (model.name, model.version) == (model_name, version)
    assert model.path == tmp_path / "cache" / model_name / version
    assert (model.path / "artifacts" / "contract.json").is_file()
    # A second processor of the container finds the folder and loads without downloading.
    again = loader_for(registry_uri, model_name, tmp_path / "cache").load_uri(
        f"models:/{model_name}@champion"
    )
    assert again.version == version
    assert [p.name for p in (tmp_path / "cache" / model_name).iterdir()] == [version]


def test_a_one_off_uri_is_loaded_and_leaves_no_folder(
    registry_uri: str, built_model: BuiltModel, model_name: str, tmp_path: Path
) -> None:
    version = register_model_dir(built_model.path, tracking_uri=registry_uri, name=model_name)
    loader = loader_for(registry_uri, model_name, tmp_path / "cache")
    source = loader.client.get_model_version(model_name, version).source
    model = loader.load_uri(source)
    # Loading includes the self-test on the contract's example records.
    assert (model.name, model.version) == (source, LOCAL_VERSION)
    assert list((tmp_path / "cache" / ".uris").iterdir()) == []
    # The model lives in memory: it still scores once its folder is gone.
    result = run_batch(
        model, [InputRecord(orjson.dumps(sample_record(1)), SourcePosition("shard", "1"))]
    )
    assert [o.kind for o in result.outputs] == [OutputKind.PREDICTION]


def test_an_unwritable_cache_is_a_load_error(
    registry_uri: str, model_name: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    loader = loader_for(registry_uri, model_name, blocker)
    with pytest.raises(ModelLoadError) as failed:
        loader.load_uri("runs:/0123456789abcdef/model")
    assert failed.value.outcome is LoadOutcome.DOWNLOAD_FAILED


def test_concurrent_downloads_of_one_version_end_in_one_folder(
    registry_uri: str, built_model: BuiltModel, model_name: str, tmp_path: Path
) -> None:
    version = register_model_dir(built_model.path, tracking_uri=registry_uri, name=model_name)
    ref = ModelRef(model_name, version)
    paths, errors = run_concurrently(
        lambda: loader_for(registry_uri, model_name, tmp_path).cache.download(ref), 4
    )
    assert errors == []
    assert len(set(paths)) == 1
    assert sorted(p.name for p in (tmp_path / model_name).iterdir()) == [version]


def test_no_champion_and_unreachable_registry(
    registry_uri: str, model_name: str, tmp_path: Path
) -> None:
    with pytest.raises(ModelLoadError) as missing:
        loader_for(registry_uri, model_name, tmp_path).resolve_alias()
    assert missing.value.outcome is LoadOutcome.NO_CHAMPION
    with pytest.raises(ModelLoadError) as down:
        loader_for("http://127.0.0.1:9", model_name, tmp_path).resolve_alias()
    assert down.value.outcome is LoadOutcome.REGISTRY_UNAVAILABLE


@pytest.mark.parametrize(
    ("breakage", "outcome"),
    [
        ("incompatible_version", LoadOutcome.INCOMPATIBLE),
        ("unknown_attribute", LoadOutcome.INCOMPATIBLE),
        ("no_contract", LoadOutcome.INCOMPATIBLE),
        ("corrupt_pipeline", LoadOutcome.LOAD_FAILED),
        ("wrong_expected_output", LoadOutcome.VALIDATION_FAILED),
        ("example_refused", LoadOutcome.VALIDATION_FAILED),
    ],
)
def test_a_bad_new_version_keeps_the_old_model(
    registry_uri: str,
    built_model: BuiltModel,
    model_name: str,
    tmp_path: Path,
    metrics: ConsumerMetrics,
    breakage: str,
    outcome: LoadOutcome,
) -> None:
    register_model_dir(built_model.path, tracking_uri=registry_uri, name=model_name)
    holder, poller = poller_for(registry_uri, model_name, tmp_path, metrics=metrics)
    assert poller.poll_once() is LoadOutcome.SUCCESS
    served = holder.for_next_batch()
    assert served is not None

    bad = copy_model(built_model.path, tmp_path / "bad")
    attributes = built_model.contract["attributes"]
    if breakage == "incompatible_version":
        edit_contract(bad, contract_version=2)
    elif breakage == "unknown_attribute":
        edit_contract(bad, attributes=[{**attributes[0], "name": "Shoe size"}, *attributes[1:]])
    elif breakage == "no_contract":
        (bad / "artifacts" / "contract.json").unlink()
    elif breakage == "corrupt_pipeline":
        corrupt_pipeline(bad)
    elif breakage == "wrong_expected_output":
        expected = built_model.contract["expected_example_output"]
        edit_contract(bad, expected_example_output=[1.0 - p for p in expected])
    elif breakage == "example_refused":
        edit_contract(bad, input_example=[{"GDP": "high"}] * 6)
    bad_version = register_model_dir(bad, tracking_uri=registry_uri, name=model_name)

    assert poller.poll_once() is outcome
    assert holder.for_next_batch() is served
    assert holder.known_version == served.version != bad_version
    assert metric_value(metrics, RELOADS, outcome=outcome.value) == 1
    # A refused version is not loaded again on every poll.
    assert poller.poll_once() is None
    assert metric_value(metrics, RELOADS, outcome=outcome.value) == 1


def test_hot_reload_through_the_registry(
    registry_uri: str,
    built_model: BuiltModel,
    model_name: str,
    tmp_path: Path,
    metrics: ConsumerMetrics,
) -> None:
    holder, poller = poller_for(
        registry_uri, model_name, tmp_path, interval_seconds=0.2, metrics=metrics
    )
    poller.start()
    try:
        # No champion yet: the poller keeps trying, the holder has nothing to serve.
        time.sleep(0.5)
        assert holder.for_next_batch() is None
        assert metric_value(metrics, RELOADS, outcome="no_champion") >= 1

        v1 = register_model_dir(built_model.path, tracking_uri=registry_uri, name=model_name)
        first = _wait_for_version(holder, v1)
        assert first.version == v1

        v2 = register_model_dir(
            copy_model(built_model.path, tmp_path / "v2"),
            tracking_uri=registry_uri,
            name=model_name,
        )
        deadline = time.monotonic() + 30
        while holder.known_version != v2 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Offered, but not served until the processor starts its next batch.
        assert holder.current is first
        second = holder.for_next_batch()
        assert second is not None
        assert second.version == v2
        assert metric_value(metrics, RELOADS, outcome="success") == 2
    finally:
        poller.stop(timeout=10)
    assert not poller.running


def register_copy(built_model: BuiltModel, registry_uri: str, name: str, folder: Path) -> str:
    """A new registered version of `name`: a copy of the built model."""
    return register_model_dir(
        copy_model(built_model.path, folder), tracking_uri=registry_uri, name=name
    )


def offer_three_versions(
    registry_uri: str, built_model: BuiltModel, model_name: str, tmp_path: Path, swapped: int
) -> tuple[ModelHolder, ModelPoller, list[str]]:
    """Three versions registered one after the other, each loaded by a poll (cache in
    tmp_path/cache); the first `swapped` are swapped in by a batch as they come, the others
    stay offered."""
    holder, poller = poller_for(registry_uri, model_name, tmp_path)
    versions = []
    for n in range(3):
        versions.append(register_copy(built_model, registry_uri, model_name, tmp_path / f"v{n}"))
        assert poller.poll_once() is LoadOutcome.SUCCESS
        if n < swapped:
            holder.for_next_batch()  # the processor's next batch swaps it in
    return holder, poller, versions


def test_the_cache_keeps_the_serving_and_the_previous_version(
    registry_uri: str, built_model: BuiltModel, model_name: str, tmp_path: Path
) -> None:
    _, poller, versions = offer_three_versions(
        registry_uri, built_model, model_name, tmp_path, swapped=3
    )
    folder = tmp_path / "cache" / model_name
    assert sorted(p.name for p in folder.iterdir()) == sorted(versions[1:])
    # A download in progress (a dot folder) is never touched.
    (folder / ".download-9-abc").mkdir()
    poller._loader.cache.evict(model_name, keep=(versions[2],))
    assert sorted(p.name for p in folder.iterdir()) == sorted([".download-9-abc", versions[2]])


def test_an_offer_never_swapped_in_does_not_evict_the_serving_version(
    registry_uri: str, built_model: BuiltModel, model_name: str, tmp_path: Path
) -> None:
    """v1 serves; v2 and then v3 are offered before any batch swaps: v1 is still serving, so
    its folder stays beside v3's (v2, never served, may go)."""
    holder, _, versions = offer_three_versions(
        registry_uri, built_model, model_name, tmp_path, swapped=1
    )
    current = holder.current
    assert current is not None
    assert current.version == versions[0]
    on_disk = {p.name for p in (tmp_path / "cache" / model_name).iterdir()}
    assert {versions[0], versions[2]} <= on_disk


def test_the_hand_off_keeps_model_info_and_readiness_in_step(
    fake_served: ServedModel, metrics: ConsumerMetrics
) -> None:
    from consumer.observe.status import StatusReporter
    from tests.support.fakes import FakeStatus
    from tests.support.harness import model_handoff

    holder = ModelHolder()
    handoff = model_handoff(holder, metrics)
    status_file = FakeStatus()
    handoff.start("shard-1", StatusReporter(status_file, lambda: handoff.version))
    assert status_file.states == [("waiting_for_model", None)]
    info = "dropout_consumer_model_info"
    holder.offer(fake_served)  # no batch in flight: swapped in at once
    assert handoff.model is fake_served
    assert status_file.states[-1] == ("ready", "1")
    assert metric_value(metrics, info, model_name="student-dropout", model_version="1") == 1
    assert metric_value(metrics, "dropout_consumer_processor_ready", shard_id="shard-1") == 1
    v2 = replace(fake_served, version="2")
    with handoff.batch():
        holder.offer(v2)  # a batch is in flight: it waits for the next one
        assert handoff.model is fake_served
    assert handoff.await_model() is v2
    assert metric_value(metrics, info, model_name="student-dropout", model_version="1") == 0
    assert metric_value(metrics, info, model_name="student-dropout", model_version="2") == 1
    assert status_file.states[-1] == ("ready", "2")


def test_registry_down_keeps_serving(
    built_model: BuiltModel, tmp_path: Path, metrics: ConsumerMetrics
) -> None:
    holder = ModelHolder()
    local = ModelLoader(
        tracking_uri="http://127.0.0.1:9",
        model_name="student-dropout",
        model_alias="champion",
        cache_dir=tmp_path,
        max_record_bytes=65536,
    )
    holder.offer(local.load_uri(str(built_model.path)))
    served = holder.for_next_batch()
    poller = ModelPoller(local, holder, interval_seconds=60, metrics=metrics)
    assert poller.poll_once() is LoadOutcome.REGISTRY_UNAVAILABLE
    assert holder.for_next_batch() is served
    assert metric_value(metrics, RELOADS, outcome="registry_unavailable") == 1


def _wait_for_version(holder: ModelHolder, version: str, timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = holder.for_next_batch()
        if model is not None and model.version == version:
            return model
        time.sleep(0.05)
    raise AssertionError(f"version {version} was not loaded within {timeout} s")
