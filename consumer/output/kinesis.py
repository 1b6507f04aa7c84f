"""boto3 Kinesis clients configured like the service (endpoint override for emulators)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from consumer.config import ConsumerSettings

if TYPE_CHECKING:  # boto3-stubs is a development dependency only
    from mypy_boto3_kinesis import KinesisClient


def publishing_client(settings: ConsumerSettings) -> KinesisClient:
    """The publisher's client: its own retries are off (the publisher retries and counts).

    It talks to OUTPUT_KINESIS_ENDPOINT_URL when set, else to KINESIS_ENDPOINT_URL."""
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=4,
    )
    return boto3.client(
        "kinesis",
        region_name=settings.aws_region,
        endpoint_url=settings.publish_endpoint_url,
        config=config,
    )


def tools_client(settings: ConsumerSettings) -> KinesisClient:
    """The replay and tail tools' client: boto3's standard retries."""
    return boto3.client(
        "kinesis",
        region_name=settings.aws_region,
        endpoint_url=settings.kinesis_endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": 5}),
    )
