"""Issue 5, scenario 5: output trouble. PutRecords throttled, failing with 5xx, partly failing.

The consumer's publisher talks to kinesis-local through the fault-injecting proxy of
faultproxy.py (OUTPUT_KINESIS_ENDPOINT_URL); the KCL daemon reads the input stream from the
emulator directly. One KCL application (2 input shards) goes through four phases:

1. mixed faults on every PutRecords call (throttling, 500, 503, partial failures, dropped
   connections): every failure is retried with backoff and counted, every record gets exactly
   one output (the proxy never writes what it reports as failed, so no duplicates either);
2. an outage (every PutRecords throttled): the processors keep the batch, the checkpoints in
   the lease table (DynamoDB) stay at the last fully published record; once the proxy heals,
   every record gets exactly one output and the checkpoints move on;
3. a stop while the processors retry (output down): the daemon exits after its grace period and
   its processors go with it, nothing checkpointed, nothing published once the output heals;
4. the retry budget runs out: the processor exits (code 3) without checkpointing, the daemon and
   the supervisor exit non-zero; a restart resumes from the checkpoints and loses nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from consumer.tools.producer import events, read_rows
from devstack.consumers import ConsumerHandle, log_events, process_running
from devstack.kcl_tables import lease_checkpoints
from devstack.settings import StackSettings
from devstack.streaming import Position, Streams
from tests.integration.faultproxy import Fault, FaultProxy, always, cycle

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKER = "worker-out"
# Backoff capped at 2 s so that a healed output recovers quickly; a budget phases 1-3 never
# exhaust (phase 4 starts a worker with a small one).
PATIENT = {
    "PUBLISH_MAX_ATTEMPTS": "1000",
    "PUBLISH_BACKOFF_INITIAL_SECONDS": "0.1",
    "PUBLISH_BACKOFF_MAX_SECONDS": "2",
}
MIXED = (
    Fault.THROTTLE,
    Fault.PARTIAL,
    Fault.UNAVAILABLE,
    Fault.PASS,
    Fault.SERVER_ERROR,
    Fault.PARTIAL,
    Fault.DISCONNECT,
    Fault.PASS,
)
RETRIES = "dropout_consumer_publish_retries_total"


@pytest.fixture(scope="module")
def rows(uci_data_path: Path) -> list[dict[str, float]]:
    return read_rows(uci_data_path)


@pytest.fixture(scope="module")
def proxy(stack: StackSettings) -> Iterator[FaultProxy]:
    with FaultProxy(stack.host, stack.kinesis_port) as running:
        yield running


@pytest.fixture(scope="module")
def streams(make_streams: Callable[..., Streams]) -> Streams:
    return make_streams(2)


def output_env(proxy: FaultProxy, **extra: str) -> dict[str, str]:
    return {"OUTPUT_KINESIS_ENDPOINT_URL": proxy.url, **PATIENT, **extra}


@pytest.fixture(scope="module")
def consumer(
    champion: str,
    streams: Streams,
    proxy: FaultProxy,
    rows: list[dict[str, float]],
    start_consumer: Callable[..., ConsumerHandle],
) -> ConsumerHandle:
    """A worker publishing through the proxy, warmed up (leases held, model loaded)."""
    started = time.monotonic()
    handle = start_consumer(streams, worker=WORKER, env=output_env(proxy))
    streams.wait_for(streams.put(events(rows, 20, 0.0, seed=500)), timeout=300)
    print(f"\n[scenario 5] worker start to first outputs: {time.monotonic() - started:.1f} s")
    return handle


def retries_by_code(consumer: ConsumerHandle) -> Counter[str]:
    counts: Counter[str] = Counter()
    for key, value in consumer.observe.metrics().items():
        if key.startswith(RETRIES + "{"):
            code = key.split('error_code="', 1)[1].split('"', 1)[0]
            counts[code] += int(value)
    return counts


def seq_by_shard(positions: list[Position]) -> dict[str, int]:
    last: dict[str, int] = {}
    for shard, sequence, _ in positions:
        last[shard] = max(last.get(shard, 0), int(sequence))
    return last


def wait_checkpoints(settings: StackSettings, wanted: dict[str, int], timeout: float) -> None:
    """Until every shard's checkpoint is the given sequence number."""
    deadline = time.monotonic() + timeout
    while True:
        seen = lease_checkpoints(settings)
        if all(seen.get(shard) == str(seq) for shard, seq in wanted.items()):
            return
        assert time.monotonic() < deadline, f"checkpoints {seen}, expected {wanted}"
        time.sleep(0.5)


def exactly_once(streams: Streams, positions: list[Position]) -> None:
    by_position = streams.outputs_by_position()
    missing = [p for p in positions if p not in by_position]
    assert not missing, f"{len(missing)} records without output"
    assert not streams.duplicates(), f"duplicates: {streams.duplicates().most_common(3)}"


def test_throttling_5xx_and_partial_failures_are_retried_and_nothing_is_lost(
    consumer: ConsumerHandle,
    streams: Streams,
    proxy: FaultProxy,
    rows: list[dict[str, float]],
) -> None:
    before = retries_by_code(consumer)
    log_offset = consumer.proc.log_path.stat().st_size
    stats_before = proxy.stats.snapshot()
    proxy.set_plan(cycle(MIXED))
    positions: list[Position] = []
    started = time.monotonic()
    for seed in range(510, 520):
        # 10% malformed: the dead-letter stream's calls go through the faults too.
        positions += streams.put(events(rows, 100, 0.10, seed=seed))
        time.sleep(0.5)
    streams.wait_for(positions, timeout=300)
    elapsed = time.monotonic() - started
    proxy.heal()

    exactly_once(streams, positions)
    outputs = [streams.outputs_by_position()[p][0] for p in positions]
    kinds = Counter(o["schema"] for o in outputs)
    assert kinds["dropout.dead_letter.v1"] > 0
    assert kinds["dropout.prediction.v1"] > 0
    # Retrying refused entries kept each student's predictions in input order (the positions
    # are in put order; a student's outputs all land on one shard of the output stream).
    landed_by_student: dict[object, list[tuple[str, str]]] = {}
    for output in outputs:
        if output["schema"] == "dropout.prediction.v1":
            landed_by_student.setdefault(output["student_id"], []).append(
                output["_output_position"]
            )
    repeated = {k: v for k, v in landed_by_student.items() if len(v) > 1}
    assert repeated, "no student came twice: the order check would be empty"
    for student, landed in repeated.items():
        assert len({shard for shard, _ in landed}) == 1
        sequences = [int(sequence) for _, sequence in landed]
        assert sequences == sorted(sequences), f"student {student}: outputs out of input order"

    stats = proxy.stats.snapshot()
    faults = Counter(stats["faults"]) - Counter(stats_before["faults"])
    refused = (
        stats["entries_refused_in_partial_calls"] - stats_before["entries_refused_in_partial_calls"]
    )
    assert all(faults[f.value] > 0 for f in set(MIXED) - {Fault.PASS}), faults
    assert refused > 0
    # Every injected failure was retried and counted under its error code: a throttled call
    # counts 1, a partial call counts its refused entries.
    deadline = time.monotonic() + 15
    while True:
        retries = retries_by_code(consumer) - before
        expected = Counter(
            {
                "ProvisionedThroughputExceededException": faults["throttle"] + refused,
                "InternalFailure": faults["server_error"],
                "ServiceUnavailable": faults["unavailable"],
            }
        )
        connection = sum(v for k, v in retries.items() if k not in expected)
        if all(retries[k] == v for k, v in expected.items()) and connection == faults["disconnect"]:
            break
        assert time.monotonic() < deadline, (retries, expected, faults)
        time.sleep(1)
    assert "retry_budget_exhausted" not in retries

    # With backoff: one publish_retry line per failed call, each with its delay; the delay
    # ceiling doubles per attempt (full jitter), so later attempts wait longer on average.
    lines = [
        e
        for e in log_events(consumer.proc.log_path, log_offset)
        if e.get("event") == "publish_retry"
    ]
    failed_calls = faults["throttle"] + faults["server_error"] + faults["unavailable"]
    failed_calls += faults["disconnect"]
    assert len(lines) >= failed_calls
    delays: dict[int, list[float]] = {}
    for line in lines:
        delays.setdefault(int(line["attempt"]), []).append(float(line["delay_seconds"]))
    assert max(delays) >= 2, "some chunk needed more than one retry"
    # Full jitter under an exponential ceiling: 0.1 s, 0.2 s, 0.4 s, ... capped at 2 s (the log
    # rounds to the millisecond).
    for attempt, waited in delays.items():
        ceiling = min(2.0, 0.1 * 2 ** (attempt - 1))
        assert all(0 <= d <= ceiling + 0.001 for d in waited), (attempt, max(waited))
    mean_delay = {a: round(sum(ds) / len(ds), 3) for a, ds in sorted(delays.items())}
    print(
        f"\n[scenario 5a] {len(positions)} records ({dict(kinds)}) through "
        f"{stats['put_records_calls'] - stats_before['put_records_calls']} PutRecords calls in "
        f"{elapsed:.1f} s; faults injected {dict(faults)}, entries refused in partial calls "
        f"{refused}; publish_retries {dict(retries)}; mean backoff by attempt {mean_delay}; "
        f"duplicates 0; {len(repeated)} students sent more than once, each in input order"
    )


def test_no_checkpoint_passes_unpublished_records_while_output_is_down(
    consumer: ConsumerHandle,
    streams: Streams,
    proxy: FaultProxy,
    rows: list[dict[str, float]],
) -> None:
    # Everything so far is published: the checkpoints are at the last record of each shard.
    published = seq_by_shard(list(streams.sent))
    wait_checkpoints(streams.settings, published, timeout=30)
    received = consumer.metric_sum("dropout_consumer_records_received_total")
    throttled = retries_by_code(consumer)["ProvisionedThroughputExceededException"]

    proxy.set_plan(always(Fault.THROTTLE))
    positions = streams.put(events(rows, 300, 0.05, seed=530))
    outage_started = time.monotonic()
    # The processors hold the new records (received, not published) ...
    deadline = time.monotonic() + 60
    while consumer.metric_sum("dropout_consumer_records_received_total") < received + 300:
        assert time.monotonic() < deadline, "the processors never received the new records"
        time.sleep(0.5)
    # ... and for 25 s nothing is published and no checkpoint moves.
    samples = 0
    retries_seen = []
    while time.monotonic() - outage_started < 25:
        assert lease_checkpoints(streams.settings) == {s: str(q) for s, q in published.items()}
        retries_seen.append(retries_by_code(consumer)["ProvisionedThroughputExceededException"])
        samples += 1
        time.sleep(1)
    streams.poll()
    assert not set(positions) & streams.outputs_by_position().keys()
    assert retries_seen[-1] > retries_seen[0] >= throttled, retries_seen

    proxy.heal()
    healed = time.monotonic()
    streams.wait_for(positions, timeout=120)
    recovery = time.monotonic() - healed
    exactly_once(streams, list(streams.sent))
    wait_checkpoints(streams.settings, seq_by_shard(list(streams.sent)), timeout=30)
    print(
        f"\n[scenario 5b] {len(positions)} records held through a "
        f"{healed - outage_started:.0f} s output outage: {samples} checkpoint samples, none "
        f"moved; throttled retries during the outage "
        f"{retries_seen[-1] - throttled}; all published {recovery:.1f} s after the output "
        f"healed; duplicates 0"
    )


def test_a_stop_while_the_output_is_down_leaves_no_processor_behind(
    consumer: ConsumerHandle,
    streams: Streams,
    proxy: FaultProxy,
    rows: list[dict[str, float]],
) -> None:
    """The processors are inside a batch, retrying PutRecords, when the worker is stopped: the
    daemon cannot reach them and exits after its grace period; they must exit with it, not
    linger and publish the batch once the output heals (the shard's next owner does that)."""
    published = seq_by_shard(list(streams.sent))
    wait_checkpoints(streams.settings, published, timeout=30)
    received = consumer.metric_sum("dropout_consumer_records_received_total")
    proxy.set_plan(always(Fault.THROTTLE))
    held = streams.put(events(rows, 100, 0.0, seed=535))
    deadline = time.monotonic() + 60
    while consumer.metric_sum("dropout_consumer_records_received_total") < received + 100:
        assert time.monotonic() < deadline, "the processors never received the new records"
        time.sleep(0.5)
    _, raw = consumer.get("/readyz")
    retrying = {int(p["pid"]) for p in orjson.loads(raw)["processors"]}
    assert retrying

    stop_started = time.monotonic()
    assert consumer.proc.stop(timeout=120) == 0
    stop_seconds = time.monotonic() - stop_started
    deadline = time.monotonic() + 20
    while any(process_running(pid) for pid in retrying):
        assert time.monotonic() < deadline, "a processor outlived its stopped worker"
        time.sleep(0.2)
    gone_after = time.monotonic() - stop_started - stop_seconds
    assert lease_checkpoints(streams.settings) == {s: str(q) for s, q in published.items()}
    # The output heals: nothing may come out of the stopped worker any more.
    proxy.heal()
    time.sleep(6)
    streams.poll()
    assert not set(held) & streams.outputs_by_position().keys()
    print(
        f"\n[scenario 5, stop during an output outage] stop took {stop_seconds:.1f} s (the "
        f"daemon's grace period: its {len(retrying)} processors were inside a batch), they "
        f"were gone {gone_after:.1f} s later; checkpoints unchanged, nothing published after "
        f"the output healed"
    )


def _budget_exhausted_in(metrics_dir: Path) -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if (
                sample.name == RETRIES
                and sample.labels.get("error_code") == "retry_budget_exhausted"
            ):
                total += sample.value
    return total


def test_an_exhausted_retry_budget_stops_the_worker_and_a_restart_loses_nothing(
    stack: StackSettings,
    consumer: ConsumerHandle,
    streams: Streams,
    proxy: FaultProxy,
    rows: list[dict[str, float]],
    start_consumer: Callable[..., ConsumerHandle],
) -> None:
    if consumer.proc.alive():
        assert consumer.proc.stop(timeout=120) == 0
    # The same worker again, with a budget of 4 calls per chunk (the records the stopped worker
    # held come out now).
    impatient = start_consumer(
        streams,
        worker=WORKER,
        env=output_env(proxy, PUBLISH_MAX_ATTEMPTS="4", PUBLISH_BACKOFF_MAX_SECONDS="0.5"),
    )
    warm = streams.put(events(rows, 20, 0.0, seed=540))
    streams.wait_for(warm, timeout=300)
    published = seq_by_shard(list(streams.sent))
    wait_checkpoints(streams.settings, published, timeout=30)
    log_offset = impatient.proc.log_path.stat().st_size

    proxy.set_plan(always(Fault.THROTTLE))
    positions = streams.put(events(rows, 200, 0.05, seed=541))
    refused_at = time.monotonic()
    assert impatient.proc.proc is not None
    code = impatient.proc.proc.wait(timeout=180)
    exited_after = time.monotonic() - refused_at
    assert code not in (0, None), "the supervisor must exit non-zero when the daemon dies"

    events_logged = log_events(impatient.proc.log_path, log_offset)
    gave_up = [
        e for e in events_logged if e.get("event") == "publish_failed_exiting_without_checkpoint"
    ]
    assert gave_up, "the processor must say why it exits"
    assert "after 4 attempt(s)" in gave_up[0]["error"]
    # The daemon saw its shard processor end with the publish failure's exit code.
    child_exits = [
        e["event"]
        for e in events_logged
        if e.get("source") == "kcl" and "Child process exited with value" in str(e.get("event"))
    ]
    assert any(line.endswith(": 3") for line in child_exits), child_exits
    assert any(e.get("event") == "KCL daemon exited on its own" for e in events_logged)
    metrics_dir = stack.stack_dir / "consumer" / f"{WORKER}-{streams.tag}" / "metrics"
    assert _budget_exhausted_in(metrics_dir) >= 1
    # Nothing was checkpointed past the last published record.
    assert lease_checkpoints(streams.settings) == {s: str(q) for s, q in published.items()}
    streams.poll()
    assert not set(positions) & streams.outputs_by_position().keys()

    proxy.heal()
    restarted_at = time.monotonic()
    restarted = start_consumer(streams, worker=WORKER, env=output_env(proxy))
    streams.wait_for(positions, timeout=300)
    recovery = time.monotonic() - restarted_at
    exactly_once(streams, list(streams.sent))
    wait_checkpoints(streams.settings, seq_by_shard(list(streams.sent)), timeout=30)
    assert restarted.metric_sum("dropout_consumer_records_received_total") >= len(positions)
    print(
        f"\n[scenario 5c] budget of 4 calls exhausted: supervisor exited with code {code} "
        f"{exited_after:.1f} s after the output went down ({len(gave_up)} processor(s) gave "
        f"up: {gave_up[0]['error']}); checkpoints unchanged; after a restart all "
        f"{len(positions)} held records came out in {recovery:.1f} s, duplicates 0"
    )
