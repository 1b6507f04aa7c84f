"""Reads a predictions or dead-letter stream from its start and prints it as a table."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from consumer.config import ConsumerSettings
from consumer.output.kinesis import tools_client

console = Console(width=None if sys.stdout.isatty() else 160)


def read_stream(settings: ConsumerSettings, stream: str, wait_seconds: float) -> list[Any]:
    """Every record from TRIM_HORIZON on every shard, until none came for `wait_seconds`."""
    client = tools_client(settings)
    shards = client.list_shards(StreamName=stream)["Shards"]
    iterators = {
        shard["ShardId"]: client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for shard in shards
    }
    records: list[Any] = []
    last_new = time.monotonic()
    while iterators and time.monotonic() - last_new < wait_seconds:
        for shard_id, iterator in list(iterators.items()):
            response = client.get_records(ShardIterator=iterator, Limit=10000)
            for record in response["Records"]:
                try:
                    records.append(orjson.loads(record["Data"]))
                except orjson.JSONDecodeError:
                    records.append({"unreadable": True})
            if response["Records"]:
                last_new = time.monotonic()
            next_iterator = response.get("NextShardIterator")
            if next_iterator:
                iterators[shard_id] = next_iterator
            else:
                del iterators[shard_id]
        # Kinesis allows 5 GetRecords per second per shard.
        time.sleep(0.25)
    return records


def predictions_table(records: list[Any], limit: int) -> Table:
    scored = [r for r in records if r.get("schema") == "dropout.prediction.v1"]
    scored.sort(key=lambda r: r["dropout_probability"], reverse=True)
    table = Table(title=f"Highest-risk students ({len(scored)} predictions read)")
    for column in ("student", "P(dropout)", "band", "at risk", "top factors", "model", "stage"):
        table.add_column(column)
    for record in scored[:limit]:
        factors = "; ".join(
            f"{f['label']} = {_fmt(f['value'])} ({f['contribution']:+.2f})"
            for f in record["top_factors"]
        )
        table.add_row(
            str(record["student_id"]),
            f"{record['dropout_probability']:.3f}",
            record["risk_band"],
            "yes" if record["at_risk"] else "no",
            factors,
            f"{record['model']['name']} v{record['model']['version']}",
            record.get("stage", ""),
        )
    return table


def dead_letters_table(records: list[Any]) -> Table:
    reasons = Counter(r.get("reason", "?") for r in records)
    table = Table(title=f"Dead letters ({len(records)} read)")
    table.add_column("reason")
    table.add_column("count", justify="right")
    table.add_column("example detail")
    examples = {r.get("reason"): r.get("detail", "") for r in records}
    for reason, count in reasons.most_common():
        table.add_row(reason, str(count), str(examples.get(reason, ""))[:80])
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def tail(settings: ConsumerSettings, stream: str, limit: int, wait_seconds: float) -> list[Any]:
    records = read_stream(settings, stream, wait_seconds)
    if records and all(r.get("schema") == "dropout.dead_letter.v1" for r in records):
        console.print(dead_letters_table(records))
    else:
        console.print(predictions_table(records, limit))
    return records
