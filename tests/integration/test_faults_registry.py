"""Issue 5, scenario 4: registry outages, on real processes.

A dedicated MLflow server (its own port, sqlite store and artifacts, not the session's) holds
the session's trained champion. One KCL application (2 input shards) serves the module; a
worker polls the registry every 2 s. Each test starts from what it needs (a running worker,
or none) and judges only its own records:

a. MLflow down at start: /readyz is 503, processors report waiting_for_model, nothing is scored,
   dead-lettered or checkpointed; a stop meanwhile leaves no processor behind (they wait inside
   a batch, out of the daemon's reach); once MLflow is back every record gets exactly one output.
b. MLflow down when a reload is due (the alias moved while the server was down) and the
   artifact store failing in the middle of a reload (alias resolved, download fails): the
   current model keeps serving, the failed polls are counted, the new version comes in once the
   registry is healthy again.
c. Broken versions behind the alias (contract.json not JSON, an unknown attribute, a corrupt
   pipeline file, a self-test mismatch), each logged as a tampered copy of a good version:
   refused, the old model kept, `model_reloads{outcome}` counts it, the consumer's log says why,
   and later polls do not try it again.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import orjson
import pytest
from mlflow import MlflowClient

from consumer.tools.producer import events
from devstack.consumers import ConsumerHandle, ConsumerSlot, log_events, process_running
from devstack.kcl_tables import lease_checkpoints, wait_checkpointed
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from devstack.services import mlflow_server
from devstack.settings import StackSettings
from devstack.streaming import Position, Streams
from tests.support.champion import SessionChampion
from tests.support.model_builder import EXPERIMENT, corrupt_pipeline, register_model_dir

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

WORKER = "worker-reg"
SHARDS = 2
RELOADS = "dropout_consumer_model_reloads_total"
POLLS = "dropout_consumer_model_polls_total"
POLL_SECONDS = 2


@dataclass
class Registry:
    """The dedicated MLflow server of this module, stopped and started by the tests."""

    settings: StackSettings
    proc: ManagedProcess

    @property
    def url(self) -> str:
        return self.settings.mlflow_url

    @property
    def name(self) -> str:
        return self.settings.model_name

    @property
    def root(self) -> Path:
        return self.settings.stack_dir / "mlflow"

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)

    def offline_client(self) -> MlflowClient:
        """The server's own sqlite store, for changes made while the server is down."""
        uri = f"sqlite:///{(self.root / 'mlflow.db').resolve()}"
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def stop(self) -> None:
        self.proc.stop()
        assert not self.proc.alive()

    def start(self) -> float:
        started = time.monotonic()
        self.proc.start()
        return time.monotonic() - started

    def champion(self) -> str:
        return str(self.client().get_model_version_by_alias(self.name, "champion").version)

    def download(self, version: str, into: Path) -> Path:
        """A registered version's files (the model folder) in a local folder."""
        uri = self.client().get_model_version_download_uri(self.name, version)
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(into), tracking_uri=self.url
            )
        )

    def register(self, model_dir: Path, *, alias: bool) -> str:
        """Logs a model folder as it is as a new version (moving @champion to it if asked)."""
        client = self.client()
        if client.get_experiment_by_name(EXPERIMENT) is None:
            client.create_experiment(EXPERIMENT)
        return register_model_dir(
            model_dir, tracking_uri=self.url, name=self.name, alias="champion" if alias else None
        )

    def artifacts_of(self, version: str) -> Path:
        """The folder of a version logged by `register` in the server's artifact store."""
        client = self.client()
        run_id = client.get_model_version(self.name, version).run_id
        experiment = client.get_run(run_id).info.experiment_id
        folder = self.root / "artifacts" / experiment / run_id / "artifacts" / "model"
        assert folder.is_dir(), folder
        return folder


@pytest.fixture(scope="module")
def registry(
    stack: StackSettings,
    champion_run: SessionChampion,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Registry]:
    settings = stack.model_copy(
        update={
            "stack_dir": tmp_path_factory.mktemp("registry-faults"),
            "mlflow_port": free_port(),
            "model_name": "student-dropout-registry-faults",
        }
    )
    proc = ManagedProcess(mlflow_server(settings), settings.logs_dir, settings.pids_dir).start()
    registry = Registry(settings, proc)
    try:
        # Version 1: the session's trained champion, as files in this registry.
        registry.register(champion_run.model_dir, alias=True)
        assert registry.champion() == "1"
        yield registry
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def good_model(champion_run: SessionChampion) -> Path:
    """The files of version 1 (the session's champion), to log good and tampered copies from."""
    return champion_run.model_dir


@pytest.fixture(scope="module")
def streams(make_streams: Callable[..., Streams]) -> Streams:
    return make_streams(SHARDS)


@pytest.fixture(scope="module")
def worker_env(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": registry.url,
        "MODEL_NAME": registry.name,
        "MODEL_CACHE_DIR": str(tmp_path_factory.mktemp("model-cache")),
        "MODEL_POLL_INTERVAL_SECONDS": str(POLL_SECONDS),
    }


@pytest.fixture(scope="module")
def slot(
    streams: Streams,
    worker_env: dict[str, str],
    start_consumer: Callable[..., ConsumerHandle],
) -> ConsumerSlot:
    return ConsumerSlot(lambda: start_consumer(streams, worker=WORKER, env=worker_env))


@pytest.fixture
def serving(slot: ConsumerSlot, registry: Registry, streams: Streams) -> ConsumerHandle:
    """A running worker, the registry up, everything sent so far out and checkpointed."""
    if not registry.proc.alive():
        registry.start()
    consumer = slot.current()
    streams.wait_for(list(streams.sent), timeout=300)
    wait_checkpointed(streams.settings, list(streams.sent), timeout=120)
    return consumer


def readyz(consumer: ConsumerHandle) -> tuple[int, dict[str, Any]]:
    status, raw = consumer.get("/readyz")
    return status, orjson.loads(raw) if raw else {}


def _by_label(consumer: ConsumerHandle, metric: str, label: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for key, value in consumer.metrics().items():
        if key.startswith(metric + "{"):
            counts[key.split(f'{label}="', 1)[1].split('"', 1)[0]] += int(value)
    return counts


def reloads(consumer: ConsumerHandle) -> Counter[str]:
    return _by_label(consumer, RELOADS, "outcome")


def polls(consumer: ConsumerHandle) -> Counter[str]:
    return _by_label(consumer, POLLS, "result")


@contextlib.contextmanager
def trickle(
    streams: Streams, rows: list[dict[str, float]], seed: int, per_put: int = 10
) -> Iterator[list[Position]]:
    """Sends `per_put` records every half second while the block runs."""
    positions: list[Position] = []
    stop = threading.Event()

    def produce() -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            positions.extend(streams.put(events(rows, per_put, 0.0, seed=seed * 1000 + n)))
            time.sleep(0.5)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        yield positions
    finally:
        stop.set()
        producer.join(30)


def versions_of(streams: Streams, positions: list[Position]) -> list[str]:
    by_position = streams.outputs_by_position()
    return [o["model"]["version"] for p in positions for o in by_position[p]]


def switch_order_holds(streams: Streams, positions: list[Position], order: list[str]) -> None:
    """Per shard, in stream order, versions only move forward along `order`."""
    by_position = streams.outputs_by_position()
    per_shard: dict[str, list[tuple[int, int, str]]] = {}
    for shard, sequence, sub in positions:
        for output in by_position[(shard, sequence, sub)]:
            per_shard.setdefault(shard, []).append((int(sequence), sub, output["model"]["version"]))
    for shard, seen in per_shard.items():
        ranks = [order.index(version) for _, _, version in sorted(seen)]
        assert ranks == sorted(ranks), f"{shard}: versions went back: {sorted(seen)}"


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.5)
    return time.monotonic() - started


def wait_for_version(streams: Streams, positions: list[Position], version: str) -> bool:
    streams.poll()
    return version in set(versions_of_present(streams, positions))


def versions_of_present(streams: Streams, positions: list[Position]) -> list[str]:
    by_position = streams.outputs_by_position()
    return [o["model"]["version"] for p in list(positions) for o in by_position.get(p, [])]


def _all_waiting(consumer: ConsumerHandle) -> bool:
    status, body = readyz(consumer)
    processors = body.get("processors", [])
    return (
        status == 503
        and len(processors) == SHARDS
        and all(p["state"] == "waiting_for_model" for p in processors)
    )


def _holding(consumer: ConsumerHandle, offset: int) -> int:
    """How many shards' processors logged that a batch waits for a model (since `offset`)."""
    return len(
        {
            e.get("shard_id")
            for e in log_events(consumer.proc.log_path, offset)
            if e.get("event") == "waiting_for_model"
        }
    )


def _nothing_out(consumer: ConsumerHandle, streams: Streams, positions: list[Position]) -> None:
    status, body = readyz(consumer)
    assert status == 503, body
    assert {p["state"] for p in body["processors"]} == {"waiting_for_model"}, body
    streams.poll()
    assert not set(positions) & streams.outputs_by_position().keys(), "published without model"
    # Handed over by the KCL and held, not scored: no prediction, no dead letter.
    assert consumer.metric_sum("dropout_consumer_records_received_total") > 0
    assert consumer.metric_sum("dropout_consumer_predictions_total") == 0
    assert consumer.metric_sum("dropout_consumer_dead_letters_total") == 0
    assert consumer.metric_sum("dropout_consumer_checkpoints_total") == 0
    assert consumer.metric_sum("dropout_consumer_processor_ready") == 0


def test_mlflow_down_at_start_nothing_is_scored_until_it_returns(
    registry: Registry,
    streams: Streams,
    rows: list[dict[str, float]],
    slot: ConsumerSlot,
    worker_env: dict[str, str],
    start_consumer: Callable[..., ConsumerHandle],
) -> None:
    # No worker runs, then the registry goes down.
    running = slot.current()
    streams.wait_for(list(streams.sent), timeout=300)
    wait_checkpointed(streams.settings, list(streams.sent), timeout=120)
    assert running.proc.stop(timeout=120) == 0
    registry.stop()
    checkpoints = lease_checkpoints(streams.settings)
    # Records that arrive while no model can be loaded: 5% malformed, which must not be
    # dead-lettered before a model (and its contract) is there either.
    positions = streams.put(events(rows, 300, 0.05, seed=400))
    consumer = start_consumer(streams, worker=WORKER, env=worker_env)
    started = time.monotonic()
    wait_until(lambda: _all_waiting(consumer), 240, "every processor reports waiting_for_model")
    # Both processors were handed their batch and hold it, waiting for a model.
    wait_until(lambda: _holding(consumer, 0) == SHARDS, 120, "both processors hold a batch")
    # The positive signal: each processor has polled the dead registry several times, with
    # its batch in hand; still nothing scored, dead-lettered, published or checkpointed.
    wait_until(
        lambda: reloads(consumer)["registry_unavailable"] >= 4 * SHARDS,
        120,
        "several failed polls per processor",
    )
    _nothing_out(consumer, streams, positions)
    assert lease_checkpoints(streams.settings) == checkpoints
    first_failed_polls = reloads(consumer)["registry_unavailable"]
    assert reloads(consumer)["success"] == 0

    # A stop while the processors wait: they are inside process_records, so the daemon cannot
    # ask them to shut down and exits after its grace period; they must not outlive it.
    waiting = {int(p["pid"]) for p in readyz(consumer)[1]["processors"]}
    stop_started = time.monotonic()
    assert consumer.proc.stop(timeout=120) == 0
    stop_seconds = time.monotonic() - stop_started
    orphans_gone = wait_until(
        lambda: not any(process_running(pid) for pid in waiting),
        15,
        "no processor outlives its daemon",
    )
    # (Their last log line, daemon_gone_exiting_without_checkpoint, has no supervisor left to
    # relay it: the process table is the evidence.)
    assert lease_checkpoints(streams.settings) == checkpoints
    streams.poll()
    assert not set(positions) & streams.outputs_by_position().keys()

    # Started again, the registry still down: the same records wait again.
    offset = consumer.proc.log_path.stat().st_size
    consumer = start_consumer(streams, worker=WORKER, env=worker_env)
    slot.replace(consumer)
    wait_until(lambda: _all_waiting(consumer), 240, "waiting_for_model after the restart")
    wait_until(lambda: _holding(consumer, offset) == SHARDS, 120, "the batches wait again")
    wait_until(
        lambda: reloads(consumer)["registry_unavailable"] >= 2 * SHARDS,
        120,
        "failed polls after the restart",
    )
    _nothing_out(consumer, streams, positions)
    failed_polls = reloads(consumer)["registry_unavailable"]
    outage = time.monotonic() - started

    mlflow_start = registry.start()
    back = time.monotonic()
    wait_until(lambda: readyz(consumer)[0] == 200, 120, "ready once MLflow is back")
    to_ready = time.monotonic() - back
    streams.wait_for(positions, timeout=180)
    to_outputs = time.monotonic() - back
    wait_checkpointed(streams.settings, positions, timeout=60)
    streams.poll()

    by_position = streams.outputs_by_position()
    assert all(len(by_position[p]) == 1 for p in positions), "each record exactly once"
    outputs = [by_position[p][0] for p in positions]
    kinds = Counter(o["schema"] for o in outputs)
    assert kinds["dropout.dead_letter.v1"] > 0
    assert {o["model"]["version"] for o in outputs if "model" in o} == {registry.champion()}
    assert reloads(consumer)["success"] == SHARDS
    # The outage is logged once per processor, not once per failed poll.
    logged = [
        e
        for e in log_events(consumer.proc.log_path, offset)
        if e.get("event") == "model_load_failed" and e.get("outcome") == "registry_unavailable"
    ]
    assert SHARDS <= len(logged) < failed_polls
    print(
        f"\n[scenario 4a] MLflow down at start: {len(positions)} records waited "
        f"{outage:.0f} s (processors waiting_for_model, /readyz 503, 0 scored, 0 dead letters, "
        f"0 checkpoints; {first_failed_polls} + {failed_polls} failed registry polls, "
        f"{len(logged)} log lines per run). A stop while waiting took {stop_seconds:.1f} s (the "
        f"daemon's grace period), its {SHARDS} processors were gone {orphans_gone:.1f} s later; "
        f"restarted, still waiting. MLflow restart took {mlflow_start:.1f} s, then ready in "
        f"{to_ready:.1f} s and every record out in {to_outputs:.1f} s: {dict(kinds)}, "
        f"duplicates 0"
    )


def test_mlflow_down_during_a_reload_keeps_the_current_model(
    registry: Registry,
    streams: Streams,
    rows: list[dict[str, float]],
    serving: ConsumerHandle,
    good_model: Path,
) -> None:
    consumer = serving
    current = registry.champion()
    v2 = registry.register(good_model, alias=False)
    v3 = registry.register(good_model, alias=False)
    before = reloads(consumer)

    # 1. The registry goes down; while it is down the alias moves to v2 (written to its
    #    store directly), so the reload falls due during the outage.
    registry.stop()
    registry.offline_client().set_registered_model_alias(registry.name, "champion", v2)
    with trickle(streams, rows, seed=41) as during_outage:
        down_at = time.monotonic()
        # The positive signal: each processor's reload fell due and failed, twice.
        wait_until(
            lambda: (
                reloads(consumer)["registry_unavailable"] - before["registry_unavailable"]
                >= 2 * SHARDS
            ),
            60,
            "failed reload polls during the outage",
        )
        assert readyz(consumer)[0] == 200, "the consumer keeps serving without a registry"
        wait_until(lambda: len(during_outage) >= 40, 30, "records sent during the outage")
        outage = time.monotonic() - down_at
    streams.wait_for(during_outage, timeout=120)
    assert set(versions_of(streams, during_outage)) == {current}
    unavailable = reloads(consumer)["registry_unavailable"] - before["registry_unavailable"]

    with trickle(streams, rows, seed=42) as after_outage:
        registry.start()

        def every_shard_on_v2() -> bool:
            streams.poll()
            on_v2 = {
                position[0]
                for position, outputs in streams.outputs_by_position().items()
                for o in outputs
                if o.get("model", {}).get("version") == v2
            }
            return len(on_v2) == SHARDS

        first_v2 = wait_until(every_shard_on_v2, 120, f"every shard serves v{v2}")
    streams.wait_for(after_outage, timeout=120)
    switch_order_holds(streams, during_outage + after_outage, [current, v2])
    assert reloads(consumer)["success"] - before["success"] == SHARDS

    # 2. The artifact store fails in the middle of a reload: the alias resolves to v3 but its
    #    files cannot be downloaded. Transient: retried on later polls, served once healed.
    folder = registry.artifacts_of(v3)
    hidden = folder.with_name("model-unavailable")
    folder.rename(hidden)
    mid = reloads(consumer)
    try:
        with trickle(streams, rows, seed=43) as during_store_outage:
            registry.client().set_registered_model_alias(registry.name, "champion", v3)
            wait_until(
                lambda: reloads(consumer)["download_failed"] - mid["download_failed"] >= 2 * SHARDS,
                60,
                "failed downloads are counted, and retried",
            )
            assert readyz(consumer)[0] == 200
        # All scored while v3's files are still missing, so by v2.
        streams.wait_for(during_store_outage, timeout=120)
        assert set(versions_of(streams, during_store_outage)) == {v2}
    finally:
        hidden.rename(folder)
    download_failures = reloads(consumer)["download_failed"] - mid["download_failed"]
    with trickle(streams, rows, seed=44) as after_store_outage:
        healed = time.monotonic()
        wait_until(
            lambda: reloads(consumer)["success"] - mid["success"] >= SHARDS,
            60,
            f"v{v3} is loaded once its files are back",
        )
        to_v3 = time.monotonic() - healed
        wait_until(
            lambda: wait_for_version(streams, after_store_outage, v3),
            60,
            f"records scored by v{v3}",
        )
    streams.wait_for(after_store_outage, timeout=120)
    everything = during_outage + after_outage + during_store_outage + after_store_outage
    switch_order_holds(streams, everything, [current, v2, v3])
    assert versions_of(streams, after_store_outage)[-1] == v3
    assert not {p: n for p, n in streams.duplicates().items() if p in set(everything)}
    failures = [
        e
        for e in log_events(consumer.proc.log_path)
        if e.get("event") == "model_load_failed" and e.get("model_version") == v3
    ]
    assert failures
    assert all(e["outcome"] == "download_failed" for e in failures)
    assert all(e["serving_version"] == v2 for e in failures)
    print(
        f"\n[scenario 4b] registry down {outage:.0f} s when the alias moved to v{v2}: "
        f"{len(during_outage)} records all scored by v{current}, {unavailable} failed polls; "
        f"every shard on v{v2} {first_v2:.1f} s after MLflow returned. Artifact store failing "
        f"mid-reload (alias at v{v3}): {download_failures} failed downloads counted as "
        f"download_failed, {len(during_store_outage)} records scored by v{v2}; v{v3} loaded "
        f"{to_v3:.1f} s after the files came back; duplicates 0"
    )


def _broken_json(model_dir: Path) -> None:
    path = model_dir / "artifacts" / "contract.json"
    path.write_text(path.read_text(encoding="utf-8")[:-40], encoding="utf-8")


def _unknown_attribute(model_dir: Path) -> None:
    path = model_dir / "artifacts" / "contract.json"
    contract = json.loads(path.read_text(encoding="utf-8"))
    contract["attributes"][0]["name"] = "Shoe size"
    path.write_text(json.dumps(contract), encoding="utf-8")


def _wrong_expected_output(model_dir: Path) -> None:
    path = model_dir / "artifacts" / "contract.json"
    contract = json.loads(path.read_text(encoding="utf-8"))
    contract["expected_example_output"] = [
        min(1.0, p + 0.25) if p < 0.5 else p - 0.25 for p in contract["expected_example_output"]
    ]
    path.write_text(json.dumps(contract), encoding="utf-8")


# (how the copy is broken, the outcome it must be refused with, words the log line must hold)
BREAKAGES: list[tuple[str, Callable[[Path], Any], str, str]] = [
    ("contract.json is not JSON", _broken_json, "incompatible", "contract"),
    ("unknown attribute", _unknown_attribute, "incompatible", "Shoe size"),
    ("corrupt pipeline file", corrupt_pipeline, "load_failed", "cannot load the model"),
    ("self-test mismatch", _wrong_expected_output, "validation_failed", "self-test"),
]


def test_broken_versions_behind_the_alias_are_refused_and_the_old_model_kept(
    registry: Registry,
    streams: Streams,
    rows: list[dict[str, float]],
    serving: ConsumerHandle,
    good_model: Path,
) -> None:
    consumer = serving
    current = registry.champion()
    report = []
    positions: list[Position] = []
    for title, breakage, outcome, words in BREAKAGES:
        with tempfile.TemporaryDirectory() as work:
            copy = Path(shutil.copytree(good_model, Path(work) / "model"))
            breakage(copy)
            before = reloads(consumer)
            log_offset = consumer.proc.log_path.stat().st_size
            with trickle(streams, rows, seed=50 + len(report)) as sent:
                bad = registry.register(copy, alias=True)
                took = wait_until(
                    lambda: reloads(consumer)[outcome] - before[outcome] >= SHARDS,  # noqa: B023
                    60,
                    f"{title}: refused as {outcome}",
                )
                # Not tried again while the alias stays: the next polls (the positive signal)
                # each see a version refused before, and load nothing.
                seen = polls(consumer)["refused_before"]
                wait_until(
                    lambda: polls(consumer)["refused_before"] - seen >= 2 * SHARDS,  # noqa: B023
                    60,
                    "later polls skip the refused version",
                )
                after = reloads(consumer)
                assert after[outcome] - before[outcome] == SHARDS, (title, after, before)
                assert after["success"] == before["success"]
                assert readyz(consumer)[0] == 200
            positions += sent
            streams.wait_for(sent, timeout=120)
            assert set(versions_of(streams, sent)) == {current}, title
            lines = [
                e
                for e in log_events(consumer.proc.log_path, log_offset)
                if e.get("event") == "model_load_failed" and e.get("model_version") == bad
            ]
            assert len(lines) == SHARDS, (title, lines)
            for line in lines:
                assert line["outcome"] == outcome
                assert line["serving_version"] == current
                assert words in line["error"], (title, line["error"])
            report.append(f"{title} (v{bad}): {outcome} in {took:.1f} s: {lines[0]['error'][:90]}")

    # A good version after the bad ones is taken at once.
    with trickle(streams, rows, seed=60) as sent:
        good = registry.register(good_model, alias=True)
        before_success = reloads(consumer)["success"]
        took = wait_until(
            lambda: reloads(consumer)["success"] - before_success >= SHARDS, 60, "good again"
        )
        wait_until(lambda: wait_for_version(streams, sent, good), 60, f"records scored by v{good}")
    positions += sent
    streams.wait_for(sent, timeout=120)
    switch_order_holds(streams, positions, [current, good])
    assert versions_of(streams, sent)[-1] == good
    assert not {p: n for p, n in streams.duplicates().items() if p in set(positions)}
    print(
        "\n[scenario 4c] broken versions behind @champion, all refused while "
        f"v{current} kept serving {len(positions)} records:\n  "
        + "\n  ".join(report)
        + f"\n  then good v{good} loaded in {took:.1f} s; duplicates 0"
    )
