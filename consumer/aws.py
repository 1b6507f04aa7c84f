"""A boto3 Kinesis client configured like the service (endpoint override for emulators)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from consumer.config import ConsumerSettings


def kinesis_client(settings: ConsumerSettings) -> Any:
    return boto3.client(
        "kinesis",
        region_name=settings.aws_region,
        endpoint_url=settings.kinesis_endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": 5}),
    )
