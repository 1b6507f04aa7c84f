"""OUTPUT_KINESIS_ENDPOINT_URL: where the publisher's PutRecords go, apart from the KCL's reads."""

from __future__ import annotations

import pytest

from consumer.config import ConsumerSettings
from consumer.output.kinesis import publishing_client
from consumer.service.kcl_properties import render_properties

INPUT = "http://127.0.0.1:4568"
OUTPUT = "http://127.0.0.1:4999"


def properties(settings: ConsumerSettings) -> dict[str, str]:
    lines = render_properties(settings).splitlines()
    return dict(line.split(" = ", 1) for line in lines if " = " in line)


def test_publishing_defaults_to_the_kinesis_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OUTPUT_KINESIS_ENDPOINT_URL", raising=False)
    settings = ConsumerSettings(KINESIS_ENDPOINT_URL=INPUT)
    assert settings.output_kinesis_endpoint_url is None
    assert settings.publish_endpoint_url == INPUT
    assert publishing_client(settings).meta.endpoint_url == INPUT


def test_an_empty_output_endpoint_means_the_kinesis_endpoint() -> None:
    settings = ConsumerSettings(KINESIS_ENDPOINT_URL=INPUT, OUTPUT_KINESIS_ENDPOINT_URL="")
    assert settings.output_kinesis_endpoint_url is None
    assert settings.publish_endpoint_url == INPUT


def test_the_publisher_uses_the_output_endpoint_and_the_kcl_keeps_reading_the_input() -> None:
    settings = ConsumerSettings(KINESIS_ENDPOINT_URL=INPUT, OUTPUT_KINESIS_ENDPOINT_URL=OUTPUT)
    assert settings.publish_endpoint_url == OUTPUT
    assert publishing_client(settings).meta.endpoint_url == OUTPUT
    assert properties(settings)["kinesisEndpoint"] == INPUT


def test_the_environment_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KINESIS_ENDPOINT_URL", INPUT)
    monkeypatch.setenv("OUTPUT_KINESIS_ENDPOINT_URL", OUTPUT)
    assert ConsumerSettings().publish_endpoint_url == OUTPUT


def test_in_aws_both_unset_use_the_regional_endpoint() -> None:
    settings = ConsumerSettings(
        KINESIS_ENDPOINT_URL="", OUTPUT_KINESIS_ENDPOINT_URL="", AWS_REGION="eu-west-1"
    )
    assert settings.publish_endpoint_url is None
    assert (
        publishing_client(settings).meta.endpoint_url == "https://kinesis.eu-west-1.amazonaws.com"
    )
