"""Issue 5, scenario 6: hostile input, against the model the training package registered.

Generated malformed and edge-case records (the strategies of
tests/consumer/test_consumer_hostile_input.py: broken JSON, wrong types, NaN and infinities,
huge numbers, huge payloads, unicode, nested junk, missing, extra and duplicate keys) go

1. through the shard processor (amazon_kclpy's own message classes, fake Kinesis and
   checkpointer) scoring with the real @champion loaded from the MLflow server: >= 1,000 records;
2. through the offline scoring CLI (`python -m consumer score` as a subprocess, resolving
   @champion on the MLflow server): >= 1,000 lines in one file;
3. through the real stream (kinesis-local, the KCL daemon, its shard processors).

Every record comes out once, scored or dead-lettered with a reason and a detail; nothing
crashes; good records mixed into the same batch score exactly as they do alone.
"""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings

from common.wire import Reason
from consumer.model.loader import ModelLoader
from consumer.records import InputRecord, SourcePosition
from consumer.scoring.batch import run_batch
from consumer.scoring.served_model import ServedModel
from devstack.consumers import ConsumerHandle, log_events
from devstack.processes import inherited_environ
from devstack.settings import REPO_ROOT, StackSettings
from devstack.streaming import Position, Streams
from tests.consumer.test_consumer_hostile_input import (
    EVERY_REASON,
    HOSTILE_SETTINGS,
    batches,
    check_outputs,
    through_the_processor,
)
from tests.support.fakes import logs_in_memory
from tests.support.model_builder import dataset_records
from tests.support.properties import examples

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.property]

KINESIS_MAX_RECORD = 1024 * 1024
PUT_BYTES = 4 * 1024 * 1024
# Dead-letter reasons a record can get (scoring_failed needs a failing model).
RECORD_REASONS = {reason.value for reason in Reason} - {"scoring_failed"}


@pytest.fixture(scope="module")
def champion_model(
    stack: StackSettings, champion: str, tmp_path_factory: pytest.TempPathFactory
) -> ServedModel:
    """The registered @champion, through the consumer's own loader (download + checks)."""
    loader = ModelLoader(
        tracking_uri=stack.mlflow_url,
        model_name=stack.model_name,
        model_alias="champion",
        cache_dir=tmp_path_factory.mktemp("hostile-cache"),
        max_record_bytes=64 * 1024,
    )
    model = loader.load_champion()
    assert model.version == champion
    return model


@pytest.fixture(scope="module")
def good_records(uci_data_path: Path) -> list[bytes]:
    """Full dataset rows: the good records mixed into the hostile batches."""
    return dataset_records(uci_data_path, 40, start=100)


def alone(model: ServedModel, data: bytes) -> float:
    [output] = run_batch(model, [InputRecord(data, SourcePosition("alone", "1"))]).outputs
    return float(orjson.loads(output.data)["dropout_probability"])


def generated_corpus(count: int) -> list[list[bytes]]:
    """`count` hostile batches from the strategies (the same ones every run in the CI profile,
    a random draw in the nightly one)."""
    drawn: list[list[bytes]] = []

    @settings(HOSTILE_SETTINGS, max_examples=count)
    @given(batch=batches)
    def collect(batch: list[bytes]) -> None:
        drawn.append(batch)

    collect()
    return [EVERY_REASON, *drawn]


def check_dead_letter_payload(letter: dict[str, Any], raw: bytes) -> None:
    """The dead letter carries the raw bytes (cut, and saying so, when they are too big)."""
    assert letter["payload_bytes"] == len(raw)
    if letter["payload"] is not None:
        carried = letter["payload"].encode("utf-8")
    else:
        carried = base64.b64decode(letter["payload_base64"])
    if letter["payload_truncated"]:
        assert raw.startswith(carried)
        assert len(carried) < len(raw)
    else:
        assert carried == raw


@pytest.fixture
def quiet_logs() -> Iterator[io.StringIO]:
    """The in-process processor's JSON log lines, kept in memory (not on the test's output)."""
    with logs_in_memory("INFO") as sink:
        yield sink


def test_hostile_records_through_the_processor_with_the_registered_model(
    champion_model: ServedModel, good_records: list[bytes], quiet_logs: io.StringIO
) -> None:
    first, last = good_records[0], good_records[1]
    expected = (alone(champion_model, first), alone(champion_model, last))
    seen: dict[str, Any] = {"records": 0, "batches": 0, "reasons": Counter(), "predictions": 0}

    @settings(HOSTILE_SETTINGS, max_examples=examples(150))
    @given(batch=batches)
    def run(batch: list[bytes]) -> None:
        payloads = [first, *batch, last]
        by_sequence = through_the_processor(champion_model, payloads, first_sequence=5000)
        for i, raw in enumerate(payloads):
            output = by_sequence[5000 + i]
            if output["schema"] == "dropout.dead_letter.v1":
                check_dead_letter_payload(output, raw)
                seen["reasons"][output["reason"]] += 1
            else:
                assert output["model"]["version"] == champion_model.version
                seen["predictions"] += 1
        # The good records at both ends score exactly as they do alone.
        assert by_sequence[5000]["dropout_probability"] == pytest.approx(expected[0], abs=1e-9)
        assert by_sequence[5000 + len(payloads) - 1]["dropout_probability"] == pytest.approx(
            expected[1], abs=1e-9
        )
        seen["records"] += len(batch)
        seen["batches"] += 1

    run()
    assert seen["records"] >= 1000, seen["records"]
    assert "processor_failed_exiting_without_checkpoint" not in quiet_logs.getvalue()
    print(
        f"\n[scenario 6, processor] {seen['records']} generated records in {seen['batches']} "
        f"batches (+2 good records each) with model v{champion_model.version}: "
        f"{seen['predictions']} predictions, dead letters by reason "
        f"{dict(seen['reasons'].most_common())}"
    )


def run_cli(
    stack: StackSettings, input_path: Path, output_path: Path, cache: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "consumer", "score"),
            *("--input", str(input_path), "--output", str(output_path)),
        ],
        cwd=REPO_ROOT,
        env={
            **inherited_environ(),
            "MLFLOW_TRACKING_URI": stack.mlflow_url,
            "MODEL_NAME": stack.model_name,
            "MODEL_CACHE_DIR": str(cache),
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO_ROOT),
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_hostile_lines_through_the_offline_cli(
    stack: StackSettings,
    champion: str,
    champion_model: ServedModel,
    good_records: list[bytes],
    tmp_path: Path,
) -> None:
    corpus = generated_corpus(examples(150))
    # One file: hostile batches with a good record between any two of them. A record holding
    # a newline is several lines (one line is one record).
    lines: list[bytes] = []
    good_lines: dict[int, bytes] = {}
    for i, batch in enumerate(corpus):
        good = good_records[i % len(good_records)]
        good_lines[len(lines) + 1] = good
        lines.append(good)
        for record in batch:
            lines.extend(record.split(b"\n"))
    hostile = len(lines) - len(good_lines)
    assert hostile >= 1000, hostile
    source = tmp_path / "hostile.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    started = time.monotonic()
    result = run_cli(stack, source, tmp_path / "scored.jsonl", tmp_path / "cache")
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]

    outputs = [orjson.loads(line) for line in (tmp_path / "scored.jsonl").read_bytes().splitlines()]
    check_outputs(outputs, len(lines), champion_model)
    assert [o["source"]["sequence_number"] for o in outputs] == [
        str(n) for n in range(1, len(lines) + 1)
    ]
    summary = orjson.loads(result.stderr.strip().splitlines()[-1])["summary"]
    assert summary["records"] == len(lines)
    assert summary["predictions"] + summary["dead_letters"] == len(lines)
    assert summary["model"]["version"] == champion
    reasons = Counter(o["reason"] for o in outputs if o["schema"] == "dropout.dead_letter.v1")
    assert set(reasons) <= RECORD_REASONS
    assert len(reasons) >= 10, reasons

    # The good lines score exactly as the same records scored alone (a file of their own).
    alone_path = tmp_path / "good.jsonl"
    alone_path.write_bytes(b"\n".join(good_lines.values()) + b"\n")
    alone_result = run_cli(stack, alone_path, tmp_path / "good-scored.jsonl", tmp_path / "cache")
    assert alone_result.returncode == 0, alone_result.stderr[-3000:]
    alone_scores = [
        orjson.loads(line)["dropout_probability"]
        for line in (tmp_path / "good-scored.jsonl").read_bytes().splitlines()
    ]
    mixed_scores = [outputs[n - 1]["dropout_probability"] for n in good_lines]
    assert mixed_scores == pytest.approx(alone_scores, abs=1e-9)
    print(
        f"\n[scenario 6, offline CLI] {hostile} generated lines + {len(good_lines)} good lines "
        f"in {seconds:.1f} s with model v{champion} (exit 0): {summary['predictions']} "
        f"predictions, {summary['dead_letters']} dead letters, reasons {dict(reasons)}"
    )


def _put_sized(streams: Streams, records: list[bytes]) -> list[Position]:
    """PutRecords in groups under 4 MiB (the helper splits only by count)."""
    positions: list[Position] = []
    group: list[tuple[str, bytes]] = []
    size = 0
    for i, data in enumerate(records):
        key = f"hostile-{i}"
        if group and size + len(data) > PUT_BYTES:
            positions += streams.put(group)
            group, size = [], 0
        group.append((key, data))
        size += len(data) + len(key)
    if group:
        positions += streams.put(group)
    return positions


@pytest.mark.slow
def test_hostile_records_through_the_real_stream(
    champion_model: ServedModel,
    good_records: list[bytes],
    make_streams: Callable[..., Streams],
    start_consumer: Callable[..., ConsumerHandle],
) -> None:
    streams = make_streams(2)
    consumer = start_consumer(streams, worker="worker-hostile")
    # Warm up: leases taken and the model loaded, so the processors are known before the junk.
    warm = streams.put((f"warm-{i}", good_records[i]) for i in range(4))
    streams.wait_for(warm, timeout=300)
    pids_before = {p["pid"] for p in consumer.wait_ready()["processors"]}

    records: list[bytes] = []
    # Not scaled up nightly: the stream's own time bound (300 s) sets the size; the nightly
    # profile still draws other batches.
    for batch in generated_corpus(50):
        records.append(good_records[len(records) % len(good_records)])
        records += [r for r in batch if len(r) + len("hostile-00000") <= KINESIS_MAX_RECORD]
    positions = _put_sized(streams, records)
    started = time.monotonic()
    streams.wait_for(positions, timeout=300)
    seconds = time.monotonic() - started

    assert not streams.duplicates()
    by_position = streams.outputs_by_position()
    reasons: Counter[str] = Counter()
    predictions = 0
    good = set(good_records)
    for position, raw in zip(positions, records, strict=True):
        [output] = by_position[position]
        if output["schema"] == "dropout.dead_letter.v1":
            assert output["reason"] in RECORD_REASONS
            assert output["detail"]
            check_dead_letter_payload(output, raw)
            reasons[output["reason"]] += 1
        else:
            assert output["schema"] == "dropout.prediction.v1"
            assert 0.0 <= output["dropout_probability"] <= 1.0
            predictions += 1
        if raw in good:
            assert output["dropout_probability"] == pytest.approx(
                alone(champion_model, raw), abs=1e-9
            )
    # No processor crashed or restarted: the same processes serve, ready, and none said it
    # gave up.
    assert consumer.proc.alive()
    body = consumer.wait_ready(timeout=30)
    assert {p["pid"] for p in body["processors"]} == pids_before
    crashes = [
        e
        for e in log_events(consumer.proc.log_path)
        if str(e.get("event", "")).startswith("processor_failed")
        or e.get("event") == "publish_failed_exiting_without_checkpoint"
    ]
    assert not crashes, crashes[:3]
    print(
        f"\n[scenario 6, stream] {len(records)} records through kinesis-local + KCL, all out "
        f"{seconds:.1f} s after the put: {predictions} "
        f"predictions, dead letters by reason {dict(reasons.most_common())}; processors "
        f"{sorted(pids_before)} never restarted"
    )
