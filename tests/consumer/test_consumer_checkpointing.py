"""Checkpointing through the KCL: throttling, lease loss, invalid state."""

from __future__ import annotations

import random

from consumer.backoff import Backoff, Retry
from consumer.checkpoint.checkpointer import CheckpointOutcome, ShardCheckpointer
from consumer.observe.metrics import ConsumerMetrics
from tests.support.fakes import FakeCheckpointer, metric_value

CHECKPOINTS = "dropout_consumer_checkpoints_total"


def make(metrics: ConsumerMetrics, sleeps: list[float], attempts: int = 4) -> ShardCheckpointer:
    return ShardCheckpointer(
        Retry(attempts, Backoff(0.1, 2.0), sleep=sleeps.append, rng=random.Random(3)),
        metrics,
    )


def test_success(metrics: ConsumerMetrics) -> None:
    kcl = FakeCheckpointer()
    shard = make(metrics, [])
    assert shard.checkpoint(kcl, "49590", 0) is CheckpointOutcome.SUCCESS
    assert kcl.calls == [("49590", 0)]
    assert shard.last_checkpoint == ("49590", 0)
    assert metric_value(metrics, CHECKPOINTS, outcome="success") == 1


def test_throttling_is_retried_with_backoff(metrics: ConsumerMetrics) -> None:
    kcl = FakeCheckpointer(errors=["ThrottlingException", "ThrottlingException", None])
    sleeps: list[float] = []
    assert make(metrics, sleeps).checkpoint(kcl, "7", 1) is CheckpointOutcome.SUCCESS
    assert kcl.calls == [("7", 1)] * 3
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.1
    assert 0 <= sleeps[1] <= 0.2
    assert metric_value(metrics, CHECKPOINTS, outcome="throttled") == 2
    assert metric_value(metrics, CHECKPOINTS, outcome="success") == 1


def test_throttling_past_the_budget_gives_up(metrics: ConsumerMetrics) -> None:
    kcl = FakeCheckpointer(errors=["ThrottlingException"] * 10)
    shard = make(metrics, [], attempts=3)
    assert shard.checkpoint(kcl, "7", 0) is CheckpointOutcome.THROTTLED
    assert len(kcl.calls) == 3
    assert not shard.lease_lost


def test_dependency_trouble_is_retried(metrics: ConsumerMetrics) -> None:
    kcl = FakeCheckpointer(errors=["KinesisClientLibDependencyException", None])
    assert make(metrics, []).checkpoint(kcl, "7", 0) is CheckpointOutcome.SUCCESS
    assert metric_value(metrics, CHECKPOINTS, outcome="error") == 1


def test_shutdown_means_the_lease_is_gone_for_good(metrics: ConsumerMetrics) -> None:
    kcl = FakeCheckpointer(errors=["ShutdownException"])
    shard = make(metrics, [])
    assert shard.checkpoint(kcl, "7", 0) is CheckpointOutcome.SHUTDOWN
    assert shard.lease_lost
    assert shard.checkpoint(kcl, "8", 0) is CheckpointOutcome.SHUTDOWN
    assert kcl.calls == [("7", 0)]
    assert metric_value(metrics, CHECKPOINTS, outcome="shutdown") == 1


def test_invalid_state_is_counted_not_retried(metrics: ConsumerMetrics) -> None:
    kcl = FakeCheckpointer(errors=["InvalidStateException", None])
    shard = make(metrics, [])
    assert shard.checkpoint(kcl, "7", 0) is CheckpointOutcome.INVALID_STATE
    assert len(kcl.calls) == 1
    assert metric_value(metrics, CHECKPOINTS, outcome="invalid_state") == 1
    assert shard.checkpoint(kcl, "8", 0) is CheckpointOutcome.SUCCESS


def test_unknown_errors_are_not_retried(metrics: ConsumerMetrics) -> None:
    kcl = FakeCheckpointer(errors=["IllegalArgumentException"])
    assert make(metrics, []).checkpoint(kcl, "7", 0) is CheckpointOutcome.ERROR
    assert len(kcl.calls) == 1
