"""Scoring throughput of the consumer's batch path, next to the seed's one-record-at-a-time path.

The batch path is exactly the stream's: decode + validate + score + encode
(`consumer.scoring.batch.run_batch`) on batches of 500 and 1,000 realistic records (UCI rows,
half of them full 36-attribute records, half the 7 attributes producers send today). The
baseline is the seed's way with the same model: for each record, parse the JSON, build a
one-row DataFrame and call the MLflow pyfunc's predict. Both run in the same process, one
after the other.

Models: a small contract-conforming test model built on the fly (tests/support), and, when a
model is given (--model-uri, or MLFLOW_TRACKING_URI set: MODEL_NAME@MODEL_ALIAS), the real one.

    python -m benchmarks.scoring_throughput [--model-uri models:/student-dropout@champion]

Targets (issue 3): >= 20,000 records/s per process and >= 100x the one-at-a-time path.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import orjson
import pandas as pd

from common.data_files import UciDownload, find_data_file
from consumer.config import ConsumerSettings
from consumer.model.loader import ModelLoader
from consumer.observe.drift import DriftMonitor
from consumer.records import InputRecord, SourcePosition
from consumer.scoring.batch import run_batch
from consumer.scoring.scorer import direct_predict
from consumer.scoring.served_model import ServedModel
from tests.support.model_builder import SAMPLE_FEATURES, build_test_model, load_uci

TARGET_RECORDS_PER_SECOND = 20_000
TARGET_SPEEDUP = 100
SEED_ATTRIBUTES = tuple(SAMPLE_FEATURES)


@dataclass
class Measure:
    model: str
    batch_size: int
    records_per_second: float
    best_records_per_second: float
    ms_per_batch: float
    validate_ms: float
    score_ms: float
    encode_ms: float
    model_call_pyfunc_ms: float
    model_call_direct_ms: float
    one_at_a_time_records_per_second: float
    speedup: float
    drift_add_ms: float
    drift_snapshot_ms: float


def default_data_path() -> Path:
    """DATA_PATH, an offline copy, or the checked UCI download (common/data_files.py)."""
    return find_data_file(None, download=UciDownload(), offline_copies=True).path


def realistic_records(data_path: Path, count: int) -> list[bytes]:
    """UCI rows as input records: even ones complete, odd ones the seed's 7 attributes."""
    frame, _ = load_uci(data_path)
    ints = {c for c in frame.columns if (frame[c] % 1 == 0).all()}
    records = []
    for i in range(count):
        row = frame.iloc[i % len(frame)]
        names = frame.columns if i % 2 == 0 else SEED_ATTRIBUTES
        features = {n: int(row[n]) if n in ints else float(row[n]) for n in names}
        records.append(orjson.dumps({"student_id": i, "student_features": features}))
    return records


def timings(action: Callable[[], Any], repeats: int) -> list[float]:
    action()  # warm up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return seconds


def median_seconds(action: Callable[[], Any], repeats: int) -> float:
    return statistics.median(timings(action, repeats))


def one_at_a_time(pyfunc: Any, columns: list[str], records: list[bytes]) -> float:
    """The seed's path: parse, one-row frame, pyfunc predict, per record. Records/s."""
    started = time.perf_counter()
    for data in records:
        features = json.loads(data)["student_features"]
        frame = pd.DataFrame([features], columns=columns).astype("float64")
        pyfunc.predict(frame)
    return len(records) / (time.perf_counter() - started)


def measure(
    label: str, model: ServedModel, records: list[bytes], args: argparse.Namespace
) -> list[Measure]:
    assert model.path is not None
    pyfunc = mlflow.pyfunc.load_model(str(model.path))
    columns = model.contract.attribute_names
    baseline = one_at_a_time(pyfunc, columns, records[: args.one_at_a_time])
    results = []
    for size in args.batch_sizes:
        batch = [
            InputRecord(data, SourcePosition("shardId-000000000000", str(i), 0, None))
            for i, data in enumerate(records[:size])
        ]
        phases: list[tuple[float, float, float]] = []

        def run(batch: list[InputRecord] = batch, phases: list[Any] = phases) -> None:
            result = run_batch(model, batch)
            phases.append(
                (result.validation_seconds, result.scoring_seconds, result.encoding_seconds)
            )

        runs = timings(run, args.repeats)
        seconds = statistics.median(runs)
        validate, score, encode = (statistics.median(p[i] for p in phases) for i in range(3))
        rows = np.array(
            [model.validator.validate(r.data).row for r in batch],  # type: ignore[union-attr]
            dtype=np.float64,
        )
        frame = pd.DataFrame(rows, columns=columns)
        direct = direct_predict(pyfunc.unwrap_python_model())
        pyfunc_ms = median_seconds(partial(pyfunc.predict, frame), args.repeats) * 1000
        direct_ms = median_seconds(partial(direct, frame), args.repeats) * 1000
        add_ms, snapshot_ms = drift_costs(model, rows, args.repeats)
        rate = size / seconds
        results.append(
            Measure(
                model=label,
                batch_size=size,
                records_per_second=rate,
                best_records_per_second=size / min(runs),
                ms_per_batch=seconds * 1000,
                validate_ms=validate * 1000,
                score_ms=score * 1000,
                encode_ms=encode * 1000,
                model_call_pyfunc_ms=pyfunc_ms,
                model_call_direct_ms=direct_ms,
                one_at_a_time_records_per_second=baseline,
                speedup=rate / baseline,
                drift_add_ms=add_ms,
                drift_snapshot_ms=snapshot_ms,
            )
        )
    return results


def drift_costs(model: ServedModel, rows: np.ndarray, repeats: int) -> tuple[float, float]:
    """The processor's drift bookkeeping after each batch (consumer/observe/drift.py): adding
    the batch's rows to a full window, and the snapshot of that window it takes every
    DRIFT_UPDATE_EVERY_RECORDS. Milliseconds, medians; window at the default size."""
    window = ConsumerSettings().drift_window_records
    monitor = DriftMonitor(model.contract, window=window, update_every=10**9)
    while monitor.records < window:
        monitor.add(rows)
    add_ms = median_seconds(partial(monitor.add, rows), repeats) * 1000
    snapshot_ms = median_seconds(monitor.snapshot, repeats) * 1000
    return add_ms, snapshot_ms


def load_models(args: argparse.Namespace, workdir: Path) -> list[tuple[str, ServedModel]]:
    settings = ConsumerSettings(MODEL_CACHE_DIR=str(workdir / "cache"))
    loader = ModelLoader.from_settings(settings)
    built = build_test_model(workdir / "test-model", args.data)
    models = [("test model", loader.load_uri(str(built.path)))]
    real_uri = args.model_uri
    if real_uri or os.environ.get("MLFLOW_TRACKING_URI"):
        try:
            real = loader.load_uri(real_uri) if real_uri else loader.load_champion()
        except Exception as exc:  # noqa: BLE001 (reported, the test model still runs)
            print(f"real model not measured: {exc}", file=sys.stderr)
        else:
            models.append((f"{real.name} v{real.version}", real))
    return models


def print_table(results: list[Measure]) -> None:
    print(
        "Consumer scoring path: decode + validate + score + encode, one process "
        "(records/s and ms: median of the runs; best/s: the fastest run)"
    )
    header = (
        f"{'model':<28}{'batch':>6}{'records/s':>12}{'best/s':>10}{'ms/batch':>10}{'validate':>10}"
        f"{'score':>8}{'encode':>8}{'pyfunc':>9}{'direct':>8}{'1-at-a-time/s':>15}{'speed-up':>10}"
    )
    print(header)
    print("-" * len(header))
    for m in results:
        print(
            f"{m.model[:27]:<28}{m.batch_size:>6}{m.records_per_second:>12,.0f}"
            f"{m.best_records_per_second:>10,.0f}"
            f"{m.ms_per_batch:>10.1f}{m.validate_ms:>10.1f}{m.score_ms:>8.1f}{m.encode_ms:>8.1f}"
            f"{m.model_call_pyfunc_ms:>9.1f}{m.model_call_direct_ms:>8.1f}"
            f"{m.one_at_a_time_records_per_second:>15,.1f}{m.speedup:>9,.0f}x"
        )
    print(
        "(ms columns: validate/score/encode are the batch path's phases; pyfunc/direct are the "
        "model call alone through the MLflow wrapper and through the unwrapped python model)"
    )
    for m in results:
        print(
            f"drift bookkeeping, {m.model}, batch {m.batch_size}: add {m.drift_add_ms:.3f} ms, "
            f"snapshot of the full window {m.drift_snapshot_ms:.2f} ms"
        )
    for m in results:
        ok = m.records_per_second >= TARGET_RECORDS_PER_SECOND and m.speedup >= TARGET_SPEEDUP
        print(
            f"target >= {TARGET_RECORDS_PER_SECOND:,} records/s and >= {TARGET_SPEEDUP}x: "
            f"{m.model}, batch {m.batch_size}: {'met' if ok else 'NOT met'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", help="the real model (models:/name@alias, a folder...)")
    parser.add_argument("--data", type=Path, default=default_data_path(), help="UCI data file")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--one-at-a-time", type=int, default=300, help="baseline sample size")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    records = realistic_records(args.data, max(args.batch_sizes))
    with tempfile.TemporaryDirectory() as work:
        results: list[Measure] = []
        for label, model in load_models(args, Path(work)):
            results.extend(measure(label, model, records, args))
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(m) for m in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
