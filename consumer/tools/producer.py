"""Replays rows of the UCI data as student events on the input stream, at a chosen rate.

Each row becomes one record in the input wire format (docs/wire-formats.md); `--malformed-share`
mixes in deliberately broken records, one of each kind in turn, so that the dead-letter path is
exercised too. Records go out with PutRecords in small batches paced to the requested rate.
"""

from __future__ import annotations

import csv
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from common.data_files import UciDownload, find_data_file
from consumer.config import ConsumerSettings
from consumer.output.kinesis import tools_client

console = Console(stderr=True)

# One broken record of each kind, in turn; each maps to a reason code of the consumer.
MALFORMATIONS = (
    "invalid_json",
    "not_an_object",
    "missing_student_id",
    "wrong_type",
    "out_of_range",
    "missing_features",
    "invalid_encoding",
)
PUT_BATCH = 100


def read_rows(path: Path) -> list[dict[str, float]]:
    """Rows of a UCI-format file (semicolon separated, UTF-8 with BOM) without the target."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=";")
        header = [name.strip() for name in next(reader)]
        rows: list[dict[str, float]] = []
        for values in reader:
            if not values:
                continue
            row = dict(zip(header, values, strict=True))
            row.pop("Target", None)
            rows.append({name: _number(value) for name, value in row.items()})
    return rows


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() else value


def resolve_data_path(data: Path | None) -> Path:
    """The file to replay (common/data_files.py's order): --data, DATA_PATH, an offline copy,
    or the checked UCI download (cached in DATA_CACHE_DIR, where training keeps it too)."""
    cache = Path(os.environ.get("DATA_CACHE_DIR") or ".cache/data")
    return find_data_file(data, download=UciDownload(cache_dir=cache), offline_copies=True).path


def malformed(kind: str, row: dict[str, float], student_id: int) -> bytes:
    good = {"student_id": student_id, "student_features": row}
    if kind == "invalid_json":
        return orjson.dumps(good)[:-3]
    if kind == "not_an_object":
        return b"[1, 2, 3]"
    if kind == "missing_student_id":
        return orjson.dumps({"student_features": row})
    if kind == "wrong_type":
        return orjson.dumps({**good, "student_features": {**row, "GDP": "high"}})
    if kind == "out_of_range":
        return orjson.dumps({**good, "student_features": {**row, "Age at enrollment": 400}})
    if kind == "missing_features":
        return orjson.dumps({"student_id": student_id})
    return b"\xff\xfe" + orjson.dumps(good)


def events(
    rows: list[dict[str, float]], count: int, malformed_share: float, seed: int
) -> Iterator[tuple[str, bytes]]:
    """(partition key, payload) pairs: dataset rows in random order, some of them broken."""
    rng = random.Random(seed)  # noqa: S311 (sampling rows, not secrets)
    kinds = iter(MALFORMATIONS * (count // len(MALFORMATIONS) + 1))
    for _ in range(count):
        index = rng.randrange(len(rows))
        row = rows[index]
        if rng.random() < malformed_share:
            yield str(index), malformed(next(kinds), row, index)
        else:
            yield str(index), orjson.dumps({"student_id": index, "student_features": row})


def replay(
    settings: ConsumerSettings,
    data: Path | None,
    rate: float,
    count: int,
    malformed_share: float,
    seed: int,
    stream: str,
) -> dict[str, Any]:
    """Sends `count` records at `rate` per second; returns what was sent."""
    if rate <= 0 or count < 0 or not 0 <= malformed_share <= 1:
        raise ValueError("rate must be > 0, count >= 0 and malformed share within [0, 1]")
    rows = read_rows(resolve_data_path(data))
    client = tools_client(settings)
    started = time.monotonic()
    sent = failed_puts = 0
    batch: list[dict[str, Any]] = []
    for n, (key, payload) in enumerate(events(rows, count, malformed_share, seed), start=1):
        batch.append({"PartitionKey": key, "Data": payload})
        if len(batch) >= min(PUT_BATCH, max(1, int(rate / 10))) or n == count:
            failed_puts += _put_all(client, stream, batch)
            sent += len(batch)
            batch = []
            # Pace to the rate: sleep until the time the next record is due.
            delay = started + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    elapsed = time.monotonic() - started
    summary = {
        "stream": stream,
        "sent": sent,
        "seconds": round(elapsed, 2),
        "rate": round(sent / elapsed, 1) if elapsed else None,
        "retried_entries": failed_puts,
    }
    console.print(f"replay: {summary}")
    return summary


def _put_all(client: Any, stream: str, entries: list[dict[str, Any]]) -> int:
    """PutRecords until every entry is accepted; returns how many entries were retried."""
    retried = 0
    delay = 0.05
    while entries:
        response = client.put_records(StreamName=stream, Records=entries)
        if response["FailedRecordCount"] == 0:
            return retried
        entries = [
            entry
            for entry, result in zip(entries, response["Records"], strict=True)
            if "ErrorCode" in result
        ]
        retried += len(entries)
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
    return retried
