"""Is this shard's lease still ours? One consistent read of the KCL's lease table.

A processor inside a long throttled publish cannot receive `lease_lost` (the daemon talks to it
one message at a time), so the publisher asks this once per report interval: if another worker
took the shard, the batch is the new owner's to publish, and this processor must stop without
publishing or checkpointing. Any doubt (no worker id, a failed read) answers "held": giving up
a batch on a transient DynamoDB error would only cause a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import structlog
from botocore.config import Config

from consumer.config import ConsumerSettings

if TYPE_CHECKING:  # boto3-stubs is a development dependency only
    from mypy_boto3_dynamodb import DynamoDBClient

log = structlog.get_logger("consumer.intake.lease_watch")


@dataclass(frozen=True)
class LeaseWatch:
    """Reads the owner of one shard's lease (the lease table is named after the application)."""

    client: DynamoDBClient | Any
    table: str
    shard_id: str
    worker_id: str | None

    @classmethod
    def from_settings(cls, settings: ConsumerSettings, shard_id: str) -> LeaseWatch:
        client = boto3.client(
            "dynamodb",
            region_name=settings.aws_region,
            endpoint_url=settings.dynamodb_endpoint_url,
            config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2}),
        )
        return cls(client, settings.kcl_application_name, shard_id, settings.kcl_worker_id)

    def held(self) -> bool:
        if self.worker_id is None:
            return True
        try:
            item = self.client.get_item(
                TableName=self.table,
                Key={"leaseKey": {"S": self.shard_id}},
                ConsistentRead=True,
                ProjectionExpression="leaseOwner",
            ).get("Item")
        except Exception as exc:  # noqa: BLE001 (doubt means held; see the module docstring)
            log.warning("lease_check_failed", shard_id=self.shard_id, error=str(exc)[:300])
            return True
        owner = (item or {}).get("leaseOwner", {}).get("S")
        return owner is None or owner == self.worker_id
