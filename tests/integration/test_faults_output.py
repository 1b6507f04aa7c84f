"""Output trouble (issue 5, scenario 5; issue 10's throttling and refusals), on real processes.

The consumer's publisher talks to kinesis-local through the fault-injecting proxy of
faultproxy.py (OUTPUT_KINESIS_ENDPOINT_URL); the KCL daemon reads the input stream from the
emulator directly. One KCL application (2 input shards) serves the module; each test starts from
a running, caught-up worker, sends records of its own, and judges only those:

1. mixed faults on every PutRecords call (throttling, 500, 503, partial failures, dropped
   connections): every failure is retried and counted, every record gets exactly one output;
2. a long throttle is back-pressure, not a failure: the processors hold the batch far past the
   budget of transient failures, report it, checkpoint nothing, publish nothing, stay alive;
   once the output heals every record comes out once;
3. a stop while the processors retry (output down): the daemon exits after its grace period and
   its processors go with it, nothing checkpointed, nothing published once the output heals;
4. 503s past the budget: the processor exits (10) without checkpointing, the daemon and the
   supervisor exit non-zero; a restart resumes from the checkpoints and loses nothing;
5. a refusal no retry can cure (AccessDenied): the processor stops at once (11) with one line
   naming the stream; after the fix and a restart, nothing is lost.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from consumer.tools.producer import events
from devstack.consumers import ConsumerHandle, ConsumerSlot, log_events, process_running
from devstack.kcl_tables import lease_checkpoints, wait_checkpointed
from devstack.settings import StackSettings
from devstack.streaming import Position, Streams
from tests.integration.faultproxy import Fault, FaultProxy, always, cycle

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

WORKER = "worker-out"
# Backoff capped at 1 s so that a healed output recovers quickly; a budget of transient
# failures the mixed faults never exhaust.
PATIENT = {
    "PUBLISH_MAX_ATTEMPTS": "50",
    "PUBLISH_BACKOFF_INITIAL_SECONDS": "0.1",
    "PUBLISH_BACKOFF_MAX_SECONDS": "1",
    "THROTTLE_REPORT_INTERVAL_SECONDS": "2",
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
THROTTLED = "dropout_consumer_publish_throttled_seconds_total"


@pytest.fixture(scope="module")
def streams(make_streams: Callable[..., Streams], champion: str) -> Streams:
    return make_streams(2)


def output_env(proxy: FaultProxy, **extra: str) -> dict[str, str]:
    return {"OUTPUT_KINESIS_ENDPOINT_URL": proxy.url, **PATIENT, **extra}


@pytest.fixture(scope="module")
def slot(
    streams: Streams, output_proxy: FaultProxy, start_consumer: Callable[..., ConsumerHandle]
) -> ConsumerSlot:
    return ConsumerSlot(
        lambda: start_consumer(streams, worker=WORKER, env=output_env(output_proxy))
    )


@pytest.fixture
def consumer(
    slot: ConsumerSlot, streams: Streams, output_proxy: FaultProxy, rows: list[dict[str, float]]
) -> Iterator[ConsumerHandle]:
    """A running worker that has caught up: everything the module sent so far is out and
    checkpointed (records an earlier test left held are published here)."""
    output_proxy.heal()
    handle = slot.current()
    streams.put(events(rows, 10, 0.0, seed=len(streams.sent)))
    streams.wait_for(list(streams.sent), timeout=300)
    wait_checkpointed(streams.settings, list(streams.sent), timeout=120)
    yield handle
    output_proxy.heal()


def retries_by_code(consumer: ConsumerHandle) -> Counter[str]:
    counts: Counter[str] = Counter()
    for key, value in consumer.metrics().items():
        if key.startswith(RETRIES + "{"):
            code = key.split('error_code="', 1)[1].split('"', 1)[0]
            counts[code] += int(value)
    return counts


def exactly_once(streams: Streams, positions: list[Position]) -> None:
    by_position = streams.outputs_by_position()
    missing = [p for p in positions if p not in by_position]
    assert not missing, f"{len(missing)} records without output"
    twice = {p: len(by_position[p]) for p in positions if len(by_position[p]) > 1}
    assert not twice, f"duplicates: {list(twice.items())[:3]}"


def wait_received(consumer: ConsumerHandle, at_least: float, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while consumer.metric_sum("dropout_consumer_records_received_total") < at_least:
        assert time.monotonic() < deadline, "the processors never received the new records"
        time.sleep(0.5)


def test_throttling_5xx_and_partial_failures_are_retried_and_nothing_is_lost(
    consumer: ConsumerHandle,
    streams: Streams,
    output_proxy: FaultProxy,
    rows: list[dict[str, float]],
) -> None:
    before = retries_by_code(consumer)
    log_offset = consumer.proc.log_path.stat().st_size
    stats_before = output_proxy.stats.snapshot()
    output_proxy.set_plan(cycle(MIXED))
    positions: list[Position] = []
    started = time.monotonic()
    for seed in range(510, 520):
        # 10% malformed: the dead-letter stream's calls go through the faults too.
        positions += streams.put(events(rows, 100, 0.10, seed=seed))
        time.sleep(0.5)
    streams.wait_for(positions, timeout=300)
    elapsed = time.monotonic() - started
    output_proxy.heal()
    wait_checkpointed(streams.settings, positions, timeout=60)
    streams.poll()

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

    stats = output_proxy.stats.snapshot()
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

    # A publish_retry line, with its delay, for every transient failure (throttles are
    # counted and reported per interval instead); the delay ceiling doubles per attempt
    # (full jitter), capped at 1 s.
    lines = [
        e
        for e in log_events(consumer.proc.log_path, log_offset)
        if e.get("event") == "publish_retry"
    ]
    transient = faults["server_error"] + faults["unavailable"] + faults["disconnect"]
    assert len(lines) >= transient
    for line in lines:
        ceiling = min(1.0, 0.1 * 2 ** (int(line["attempt"]) - 1))
        assert 0 <= float(line["delay_seconds"]) <= ceiling + 0.001, line
    print(
        f"\n[scenario 5a] {len(positions)} records ({dict(kinds)}) through "
        f"{stats['put_records_calls'] - stats_before['put_records_calls']} PutRecords calls in "
        f"{elapsed:.1f} s; faults injected {dict(faults)}, entries refused in partial calls "
        f"{refused}; publish_retries {dict(retries)}; duplicates 0; {len(repeated)} students "
        "sent more than once, each in input order"
    )


def test_a_long_throttle_holds_the_batch_and_is_not_a_failure(
    consumer: ConsumerHandle,
    streams: Streams,
    output_proxy: FaultProxy,
    rows: list[dict[str, float]],
) -> None:
    """Throttled far longer than the budget of transient failures would allow (50 calls at
    most 1 s apart): the same processes keep the batch, report it, checkpoint nothing."""
    published = lease_checkpoints(streams.settings)
    received = consumer.metric_sum("dropout_consumer_records_received_total")
    throttled_before = consumer.metric_sum(THROTTLED)
    _, raw = consumer.get("/readyz")
    pids = {p["pid"] for p in orjson.loads(raw)["processors"]}
    log_offset = consumer.proc.log_path.stat().st_size

    output_proxy.set_plan(always(Fault.THROTTLE))
    positions = streams.put(events(rows, 300, 0.05, seed=530))
    outage_started = time.monotonic()
    wait_received(consumer, received + 300)
    # The positive signal: the processors report over a minute of throttled waiting in all
    # (two shards wait at once), i.e. well past the 50 calls the budget of transient
    # failures allows.
    deadline = time.monotonic() + 120
    while consumer.metric_sum(THROTTLED) - throttled_before < 60:
        assert time.monotonic() < deadline, "the throttled seconds did not grow"
        assert lease_checkpoints(streams.settings) == published
        time.sleep(1)
    outage = time.monotonic() - outage_started
    # Nothing published, nothing checkpointed, the same processes still there and ready.
    streams.poll()
    assert not set(positions) & streams.outputs_by_position().keys()
    assert lease_checkpoints(streams.settings) == published
    status, raw = consumer.get("/readyz")
    assert status == 200
    assert {p["pid"] for p in orjson.loads(raw)["processors"]} == pids
    reports = [
        e
        for e in log_events(consumer.proc.log_path, log_offset)
        if e.get("event") == "publish_throttled"
    ]
    assert reports, "a long throttle is reported once per interval"
    assert all(r["lease_held"] is True for r in reports)
    assert retries_by_code(consumer)["retry_budget_exhausted"] == 0

    output_proxy.heal()
    healed = time.monotonic()
    streams.wait_for(positions, timeout=120)
    recovery = time.monotonic() - healed
    wait_checkpointed(streams.settings, positions, timeout=60)
    streams.poll()
    exactly_once(streams, positions)
    ended = [
        e
        for e in log_events(consumer.proc.log_path, log_offset)
        if e.get("event") == "publish_throttle_ended"
    ]
    assert ended
    print(
        f"\n[throttle] {len(positions)} records held through a {outage:.0f} s throttle "
        f"({len(reports)} publish_throttled reports, no checkpoint moved, same processes); "
        f"all published {recovery:.1f} s after it ended; duplicates 0"
    )


def test_a_stop_while_the_output_is_down_leaves_no_processor_behind(
    consumer: ConsumerHandle,
    streams: Streams,
    output_proxy: FaultProxy,
    rows: list[dict[str, float]],
) -> None:
    """The processors are inside a batch, retrying PutRecords, when the worker is stopped: the
    daemon cannot reach them and exits after its grace period; they must exit with it, not
    linger and publish the batch once the output heals (the shard's next owner does that)."""
    published = lease_checkpoints(streams.settings)
    received = consumer.metric_sum("dropout_consumer_records_received_total")
    output_proxy.set_plan(always(Fault.THROTTLE))
    held = streams.put(events(rows, 100, 0.0, seed=535))
    wait_received(consumer, received + 100)
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
    assert lease_checkpoints(streams.settings) == published
    # The output heals: with every processor gone, nothing can come out of the stopped worker.
    output_proxy.heal()
    streams.poll()
    assert not set(held) & streams.outputs_by_position().keys()
    print(
        f"\n[scenario 5, stop during an output outage] stop took {stop_seconds:.1f} s (the "
        f"daemon's grace period: its {len(retrying)} processors were inside a batch), they "
        f"were gone {gone_after:.1f} s later; checkpoints unchanged, nothing published after "
        f"the output healed"
    )


def _child_exit_codes(log: Path, offset: int) -> list[str]:
    return [
        str(e["event"])
        for e in log_events(log, offset)
        if e.get("source") == "kcl" and "Child process exited with value" in str(e.get("event"))
    ]


@pytest.mark.parametrize(
    ("fault", "env", "code", "event"),
    [
        (
            Fault.UNAVAILABLE,
            {"PUBLISH_MAX_ATTEMPTS": "4", "PUBLISH_BACKOFF_MAX_SECONDS": "0.5"},
            10,
            "publish_failed_exiting_without_checkpoint",
        ),
        (Fault.ACCESS_DENIED, {}, 11, "output_refused_exiting_without_checkpoint"),
    ],
    ids=["transient_past_the_budget", "refused_for_good"],
)
def test_an_output_that_cannot_take_the_batch_stops_the_worker_and_a_restart_loses_nothing(
    consumer: ConsumerHandle,
    stack: StackSettings,
    streams: Streams,
    output_proxy: FaultProxy,
    rows: list[dict[str, float]],
    start_consumer: Callable[..., ConsumerHandle],
    slot: ConsumerSlot,
    fault: Fault,
    env: dict[str, str],
    code: int,
    event: str,
) -> None:
    assert consumer.proc.stop(timeout=120) == 0
    worker = start_consumer(streams, worker=WORKER, env=output_env(output_proxy, **env))
    worker.wait_ready()
    published = lease_checkpoints(streams.settings)
    log_offset = worker.proc.log_path.stat().st_size

    output_proxy.set_plan(always(fault))
    positions = streams.put(events(rows, 200, 0.05, seed=540 + code))
    refused_at = time.monotonic()
    assert worker.proc.proc is not None
    exit_code = worker.proc.proc.wait(timeout=180)
    exited_after = time.monotonic() - refused_at
    assert exit_code not in (0, None), "the supervisor must exit non-zero when the daemon dies"

    logged = log_events(worker.proc.log_path, log_offset)
    gave_up = [e for e in logged if e.get("event") == event]
    assert gave_up, f"the processor must say why it exits ({event})"
    if fault is Fault.ACCESS_DENIED:
        # One clear line naming the stream and the error, at the first refusal.
        refusals = [e for e in logged if e.get("event") == "output_refused"]
        assert refusals
        assert refusals[0]["stream"] == streams.settings.predictions_stream
        assert "AccessDeniedException" in refusals[0]["errors"]
        assert not [e for e in logged if e.get("event") == "publish_retry"]
    else:
        assert "after 4 attempt(s)" in gave_up[0]["error"]
    # The daemon saw its shard processor end with the exit code that says why.
    assert any(
        line.endswith(f": {code}") for line in _child_exit_codes(worker.proc.log_path, log_offset)
    )
    assert any(e.get("event") == "KCL daemon exited on its own" for e in logged)
    # Nothing was checkpointed past the last published record, and nothing of these is out.
    assert lease_checkpoints(streams.settings) == published
    streams.poll()
    assert not set(positions) & streams.outputs_by_position().keys()

    output_proxy.heal()
    restarted_at = time.monotonic()
    restarted = start_consumer(streams, worker=WORKER, env=output_env(output_proxy))
    slot.replace(restarted)
    streams.wait_for(positions, timeout=300)
    recovery = time.monotonic() - restarted_at
    wait_checkpointed(streams.settings, positions, timeout=60)
    streams.poll()
    exactly_once(streams, positions)
    print(
        f"\n[output {fault.value}] supervisor exited with code {exit_code} {exited_after:.1f} s "
        f"after the output went bad (processor exit {code}: {gave_up[0]['error'][:120]}); "
        f"checkpoints unchanged; after a restart all {len(positions)} records came out in "
        f"{recovery:.1f} s, duplicates 0"
    )
