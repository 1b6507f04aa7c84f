"""The processor's side of hot reload: one hand-off of a model from the poller to the batches.

The poller offers a checked model; it is swapped in at a batch boundary (at the start of the
next batch, or at once when no batch is in flight, so an idle shard serves and reports the new
version without waiting for traffic), and `_swap_in` updates, in one place, everything that
depends on the served model: the drift monitor's reference, the per-group counters and their
references (consumer/observe/fairness.py), the model-info and readiness metrics, and the status
/readyz reads. A processor without a model scores nothing: a batch
waits in `await_model`, watching its daemon.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass, field
from typing import NoReturn

import structlog

from common.exit_codes import ExitCode
from consumer.model.holder import ModelHolder
from consumer.model.poller import ModelPoller
from consumer.observe.drift import DriftMonitor
from consumer.observe.fairness import GroupRates
from consumer.observe.metrics import ConsumerMetrics
from consumer.observe.status import StatusReporter
from consumer.scoring.served_model import ServedModel

log = structlog.get_logger("consumer.model.handoff")

# How often a batch waiting for a first model re-checks (and re-reports) its state.
WAIT_FOR_MODEL_TICK_SECONDS = 1.0


@dataclass(eq=False)
class ModelHandOff:
    holder: ModelHolder
    poller: ModelPoller | None
    _: KW_ONLY
    metrics: ConsumerMetrics
    drift_window: int
    drift_update_every: int
    daemon_alive: Callable[[], bool]
    exit_process: Callable[[int], NoReturn]
    model: ServedModel | None = field(default=None, init=False)
    drift: DriftMonitor | None = field(default=None, init=False)
    groups: GroupRates | None = field(default=None, init=False)
    shard_id: str = field(default="unknown", init=False)
    _status: StatusReporter | None = field(default=None, init=False)
    # Held for a whole batch: a swap from the poller thread waits for the batch to end.
    _batch_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.holder.add_listener(self._swap_in)
        self.holder.add_offer_listener(self._on_offer)

    @property
    def version(self) -> str | None:
        return self.model.version if self.model else None

    def start(self, shard_id: str, status: StatusReporter) -> None:
        """Reports what the processor waits for, then starts the poller (never the other way
        round: a model swapped in meanwhile must find the status to say "ready" in)."""
        self.shard_id = shard_id
        self._status = status
        with status.lock:
            ready = self.model is not None
            self.metrics.processor_ready.labels(shard_id=shard_id).set(1 if ready else 0)
            status.report("ready" if ready else "waiting_for_model")
        if self.poller is not None:
            self.poller.start()

    def stop(self) -> None:
        if self.poller is not None:
            self.poller.stop()
        self.metrics.processor_ready.labels(shard_id=self.shard_id).set(0)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        with self._batch_lock:
            yield

    def await_model(self) -> ServedModel:
        """The model for this batch; blocks (reporting not ready) until there is one. Called
        with the batch lock held."""
        model = self.holder.for_next_batch()
        if model is not None:
            return model
        if self._status is not None:
            self._status.report("waiting_for_model")
        log.warning("waiting_for_model")
        started = time.monotonic()
        while model is None:
            if not self.daemon_alive():
                log.error(
                    "daemon_gone_exiting_without_checkpoint",
                    waited_seconds=round(time.monotonic() - started, 1),
                )
                self.exit_process(ExitCode.DAEMON_GONE)
            self.holder.wait_for_offer(WAIT_FOR_MODEL_TICK_SECONDS)
            model = self.holder.for_next_batch()
        return model

    def _on_offer(self, model: ServedModel) -> None:
        # Poller thread: swap now if no batch is in flight; otherwise the next batch swaps.
        stopped = self._status is not None and self._status.stopped
        if not stopped and self._batch_lock.acquire(blocking=False):
            try:
                self.holder.for_next_batch()
            finally:
                self._batch_lock.release()

    def _swap_in(self, old: ServedModel | None, new: ServedModel) -> None:
        """Everything that follows the served model, in one place."""
        self.model = new
        self.drift = DriftMonitor(
            new.contract,
            window=self.drift_window,
            update_every=self.drift_update_every,
            metrics=self.metrics,
        )
        if self.drift.problems:
            log.warning("drift_reference_unusable", problems=self.drift.problems)
        self.groups = GroupRates.for_model(new.contract, new.version, self.metrics)
        if old is not None and (old.name, old.version) != (new.name, new.version):
            self.metrics.model_info.labels(model_name=old.name, model_version=old.version).set(0)
        self.metrics.model_info.labels(model_name=new.name, model_version=new.version).set(1)
        log.info(
            "model_swapped",
            model_name=new.name,
            model_version=new.version,
            previous_version=old.version if old else None,
        )
        status = self._status
        if status is None:
            return
        with status.lock:
            if not status.stopped:
                self.metrics.processor_ready.labels(shard_id=self.shard_id).set(1)
                status.report("ready")
