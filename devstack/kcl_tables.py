"""The KCL's own DynamoDB tables (leases, leader lock), read for assertions and waits."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from devstack.services import stack_client
from devstack.settings import StackSettings
from devstack.streaming import Position


def kcl_items(settings: StackSettings, table: str) -> list[dict[str, Any]]:
    """Every item of one of the KCL's DynamoDB tables (moto), as plain Python values ([] if none).

    Tables: the lease table (named after the application; key `leaseKey` = shard id, with
    `leaseOwner`, `checkpoint`, `parentShardId`...), `<application>-CoordinatorState` (the
    leader lock: key `Leader`, `ownerName`) and `<application>-WorkerMetricStats`.
    """
    from boto3.dynamodb.types import TypeDeserializer

    client = stack_client(settings, "dynamodb")
    deserializer = TypeDeserializer()
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        try:
            page = client.scan(**kwargs)
        except client.exceptions.ResourceNotFoundException:
            return []  # the KCL has not created it yet
        items += [
            {k: deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"]
        ]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def kcl_leases(settings: StackSettings) -> dict[str, dict[str, Any]]:
    """The lease table by lease key (the shard id)."""
    return {item["leaseKey"]: item for item in kcl_items(settings, settings.kcl_application_name)}


def lease_checkpoints(settings: StackSettings) -> dict[str, str]:
    """The KCL's checkpoint per shard: a sequence number or a sentinel such as TRIM_HORIZON
    (nothing checkpointed yet) or SHARD_END."""
    return {
        shard: str(lease["checkpoint"])
        for shard, lease in kcl_leases(settings).items()
        if "checkpoint" in lease
    }


def kcl_leader(settings: StackSettings) -> str | None:
    """The worker id holding KCL 3's leader lock, if any."""
    for item in kcl_items(settings, f"{settings.kcl_application_name}-CoordinatorState"):
        if item.get("key") == "Leader":
            owner = item.get("ownerName")
            return None if owner is None else str(owner)
    return None


def _reached(checkpoint: str, sequence: int) -> bool:
    if checkpoint == "SHARD_END":
        return True
    return checkpoint.isdigit() and int(checkpoint) >= sequence


def wait_checkpointed(
    settings: StackSettings, positions: Iterable[Position], timeout: float
) -> None:
    """Waits until the KCL has checkpointed every shard at or past the last of `positions`.

    A checkpoint comes only after every output of its batch was published, so once this
    returns, the outputs of these records are all in the output streams: the positive signal
    to wait for before asserting that nothing else (no duplicate, no extra output) came out.
    """
    last: dict[str, int] = {}
    for shard, sequence, _ in positions:
        last[shard] = max(last.get(shard, 0), int(sequence))
    deadline = time.monotonic() + timeout
    while True:
        checkpoints = lease_checkpoints(settings)
        behind = {
            shard: checkpoints.get(shard)
            for shard, sequence in last.items()
            if not _reached(checkpoints.get(shard, ""), sequence)
        }
        if not behind:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"shards not checkpointed past their last record after {timeout:.0f} s: {behind}"
            )
        time.sleep(0.5)
