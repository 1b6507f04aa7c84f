"""A RecordProcessor wired to fakes (Kinesis, checkpointer, status), for unit tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import orjson

from consumer.backoff import Backoff, Retry
from consumer.batch_handler import BatchHandler, CaptureStep
from consumer.checkpoint.checkpointer import ShardCheckpointer
from consumer.intake.kcl_processor import RecordProcessor
from consumer.model.handoff import ModelHandOff
from consumer.model.holder import ModelHolder
from consumer.model.poller import ModelPoller
from consumer.observe.metrics import ConsumerMetrics
from consumer.output.publisher import Publisher
from consumer.scoring.served_model import ServedModel
from tests.support.fakes import (
    FakeCheckpointer,
    FakeKinesis,
    FakeStatus,
    initialize_input,
    kcl_record,
    process_records_input,
)

SHARD = "shardId-000000000001"
PREDICTIONS = "preds"
DEAD_LETTERS = "dlq"


def exit_by_raising(code: int) -> NoReturn:
    raise SystemExit(code)


def model_handoff(
    holder: ModelHolder,
    metrics: ConsumerMetrics,
    poller: ModelPoller | None = None,
    *,
    drift_window: int = 100,
    drift_update_every: int = 10,
    daemon_alive: Callable[[], bool] = lambda: True,
) -> ModelHandOff:
    """A model hand-off wired as `build_processor` wires one; an exit raises SystemExit."""
    return ModelHandOff(
        holder,
        poller,
        metrics=metrics,
        drift_window=drift_window,
        drift_update_every=drift_update_every,
        daemon_alive=daemon_alive,
        exit_process=exit_by_raising,
    )


class Harness:
    def __init__(
        self,
        metrics: ConsumerMetrics,
        model: ServedModel | None,
        *,
        kinesis: FakeKinesis | None = None,
        checkpoint_errors: list[str | None] | None = None,
        publish_attempts: int = 3,
        drift_update_every: int = 1000,
        keep_trying: Callable[[], bool] | None = None,
        lease_held: Callable[[], bool] | None = None,
        daemon_alive: Callable[[], bool] | None = None,
        status: FakeStatus | None = None,
        capture: CaptureStep | None = None,
        clock: Callable[[], float] | None = None,
        initialize: bool = True,
    ) -> None:
        self.events: list[tuple[str, Any]] = []
        self.kinesis = kinesis or FakeKinesis()
        self.kinesis.events = self.events
        self.checkpointer = FakeCheckpointer(events=self.events, errors=checkpoint_errors or [])
        self.status = status or FakeStatus()
        self.metrics = metrics
        self.holder = ModelHolder()
        self.alive = daemon_alive or (lambda: True)
        no_sleep: Callable[[float], None] = lambda _: None  # noqa: E731
        self.models = model_handoff(
            self.holder,
            metrics,
            drift_window=1000,
            drift_update_every=drift_update_every,
            daemon_alive=self._daemon_alive,
        )
        if model is not None:
            self.holder.offer(model)
        self.shard_checkpointer = ShardCheckpointer(
            Retry(3, Backoff(0.001, 0.001), sleep=no_sleep), metrics
        )
        publisher = Publisher(
            self.kinesis,
            predictions_stream=PREDICTIONS,
            dead_letter_stream=DEAD_LETTERS,
            retry=Retry(publish_attempts, Backoff(0.001, 0.001), sleep=no_sleep),
            metrics=metrics,
            keep_trying=keep_trying,
            lease_held=lease_held,
            **({"clock": clock} if clock is not None else {}),
        )
        self.handler = BatchHandler(
            models=self.models,
            publisher=publisher,
            checkpointer=self.shard_checkpointer,
            metrics=metrics,
            daemon_alive=self._daemon_alive,
            exit_process=exit_by_raising,
            capture=capture,
        )
        self.processor = RecordProcessor(
            handler=self.handler,
            models=self.models,
            checkpointer=self.shard_checkpointer,
            status_factory=lambda shard_id: self.status,
            exit_process=exit_by_raising,
        )
        if initialize:
            self.initialize()

    def _daemon_alive(self) -> bool:
        # Read at each call: a test may swap `alive` after the harness is built.
        return self.alive()

    def initialize(self) -> None:
        initialize_input(SHARD).dispatch(None, self.processor)

    def batch(self, payloads: list[bytes], first_sequence: int = 100) -> None:
        records = [
            kcl_record(data, first_sequence + i, sub_sequence=i % 3)
            for i, data in enumerate(payloads)
        ]
        process_records_input(records).dispatch(self.checkpointer, self.processor)

    def outputs(self, stream: str) -> list[dict[str, Any]]:
        return [orjson.loads(d) for d in self.kinesis.records(stream)]
