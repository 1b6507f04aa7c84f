"""Kinesis streams of the embedded stack: create them, and read one back from the start."""

from __future__ import annotations

import time
from typing import Any

from devstack.services import stack_client
from devstack.settings import StackSettings


def kinesis_client(settings: StackSettings) -> Any:
    return stack_client(settings, "kinesis")


def wait_active(client: Any, stream: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
                "StreamStatus"
            ]
        except client.exceptions.ResourceNotFoundException:
            status = "MISSING"
        if status == "ACTIVE":
            return
        time.sleep(0.2)
    raise TimeoutError(f"stream {stream} is not ACTIVE after {timeout:.0f} s")


def create_loop_bucket(settings: StackSettings) -> None:
    """Creates the learning loop's bucket in moto's S3 (idempotent)."""
    client = stack_client(settings, "s3")
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if settings.loop_bucket not in existing:
        client.create_bucket(Bucket=settings.loop_bucket)


def create_streams(settings: StackSettings) -> None:
    """Creates the input, predictions and dead-letter streams (idempotent), and the learning
    loop's bucket the consumers capture into."""
    create_loop_bucket(settings)
    client = kinesis_client(settings)
    wanted = {
        settings.input_stream: settings.input_shards,
        settings.predictions_stream: settings.output_shards,
        settings.dead_letter_stream: 1,
    }
    existing = set(client.list_streams()["StreamNames"])
    for name, shards in wanted.items():
        if name not in existing:
            client.create_stream(StreamName=name, ShardCount=shards)
    for name in wanted:
        wait_active(client, name)


def read_all(settings: StackSettings, stream: str) -> list[dict[str, Any]]:
    """Every record in the stream, from every shard (closed ones too), oldest first per shard."""
    client = kinesis_client(settings)
    records: list[dict[str, Any]] = []
    shards = client.list_shards(StreamName=stream)["Shards"]
    for shard in shards:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=10000)
            for record in response["Records"]:
                records.append({**record, "ShardId": shard["ShardId"]})
            if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
                break
            iterator = response.get("NextShardIterator")
    return records
