"""Fixtures of the consumer's unit tests: the data file, a real test model, fakes, metrics."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from common.contract import Contract, parse_contract
from consumer.model.loader import ModelLoader
from consumer.observe.metrics import ConsumerMetrics
from consumer.scoring.served_model import ServedModel
from tests.support.fakes import FakeModel, logs_in_memory
from tests.support.model_builder import BuiltModel, build_test_model, make_registry

MAX_RECORD_BYTES = 64 * 1024


@pytest.fixture(scope="session")
def data_path(uci_data_path: Path) -> Path:
    """The UCI file (the suite-wide fixture, under the name these tests use)."""
    return uci_data_path


@pytest.fixture(autouse=True)
def log_lines() -> Iterator[io.StringIO]:
    """Logs rendered exactly as in the service (structlog JSON via orjson), kept in memory."""
    with logs_in_memory("DEBUG") as sink:
        yield sink


@pytest.fixture(autouse=True)
def _no_multiprocess_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    # Unit tests keep metric values in memory (a fresh registry per test).
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    # A down registry must fail fast in tests.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


@pytest.fixture
def mocked_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's in-process AWS for one test, with dummy credentials and region us-east-1."""
    from moto import mock_aws

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


@pytest.fixture(scope="session")
def built_model(tmp_path_factory: pytest.TempPathFactory, data_path: Path) -> BuiltModel:
    """A real contract-conforming pyfunc model (feature-engine + XGBoost), saved locally."""
    return build_test_model(tmp_path_factory.mktemp("models") / "v1", data_path)


@pytest.fixture(scope="session")
def contract(built_model: BuiltModel) -> Contract:
    return parse_contract(json.dumps(built_model.contract))


@pytest.fixture(scope="session")
def served_model(built_model: BuiltModel, tmp_path_factory: pytest.TempPathFactory) -> ServedModel:
    """A real model through the real loader: the test model, or CONSUMER_TEST_MODEL_URI.

    Set CONSUMER_TEST_MODEL_URI (with MLFLOW_TRACKING_URI for models:/ URIs) to run the tests
    that score through a real model (batch path, hostile input, processor, offline) against a
    model the training package registered.
    """
    loader = ModelLoader(
        tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///unused.db"),
        model_name="student-dropout",
        model_alias="champion",
        cache_dir=tmp_path_factory.mktemp("cache"),
        max_record_bytes=MAX_RECORD_BYTES,
    )
    return loader.load_uri(os.environ.get("CONSUMER_TEST_MODEL_URI") or str(built_model.path))


@pytest.fixture
def fake_model() -> FakeModel:
    return FakeModel(poison=7.77)


@pytest.fixture
def fake_served(contract: Contract, fake_model: FakeModel) -> ServedModel:
    """The test model's contract with a fast, scriptable predict (version "1")."""
    return ServedModel.build(
        name="student-dropout",
        version="1",
        contract=contract,
        predict=fake_model,
        max_record_bytes=MAX_RECORD_BYTES,
    )


@pytest.fixture
def metrics() -> ConsumerMetrics:
    return ConsumerMetrics(CollectorRegistry())


@pytest.fixture(scope="session")
def registry_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry")


@pytest.fixture(scope="session")
def registry_uri(registry_root: Path) -> str:
    """A real MLflow tracking + model registry (sqlite, local artifacts) for the session."""
    return make_registry(registry_root)
