"""One shard's record processor, run by the KCL MultiLangDaemon (`python -m consumer process`).

Per batch (`process_records`): swap in a newly loaded model if one is waiting, validate, score
and encode every record (consumer/batch.py), publish every output (consumer/publisher.py), and
only then checkpoint at the batch's last sequence and sub-sequence number.

Failure policy. amazon_kclpy's `KCLProcess._perform_action` swallows any exception a processor
method raises and still reports the action as done; the daemon would then deliver the next batch
and a later checkpoint would pass over records that were never published. So no exception may
leave `process_records`: an unexpected error, or outputs that PutRecords still refuses after the
retry budget, make the processor log and end its process with a non-zero code, without
checkpointing. The daemon then stops too (MultiLangShardRecordProcessor sees its child die and
calls System.exit(1)), the orchestrator restarts the worker, and the shard resumes from its last
checkpoint: duplicates of at most one batch, never a lost record. (The public kclpy sample
checkpoints past failed records; this processor never does.)

Waiting for a first model (the registry is unreachable at start) or retrying PutRecords (the
output is down) blocks inside `process_records`, so the daemon cannot deliver a shutdown request
meanwhile: on a stop it waits its grace period, then exits without us. Both waits therefore
watch the daemon (our parent process) and end the process (code 5), without publishing or
checkpointing, once the daemon is gone; otherwise the orphan would keep polling the registry or
retrying and, once it could, publish a batch that the shard's next owner publishes too.

Lease lost: never checkpoint again. Shard end: checkpoint() with no arguments (the KCL needs it
to start the child shards). Shutdown requested: process nothing new, checkpoint the last position
whose outputs were all published.
"""

from __future__ import annotations

import base64
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, NoReturn, Protocol

import structlog
from amazon_kclpy import kcl
from amazon_kclpy.v3 import processor as kcl_processor
from prometheus_client import CollectorRegistry

from consumer.batch import BatchResult, InputRecord, OutputKind, SourcePosition, run_batch
from consumer.checkpointing import CheckpointOutcome, ShardCheckpointer
from consumer.config import ConsumerSettings
from consumer.drift import DriftMonitor
from consumer.hot_reload import ModelHolder, ModelPoller
from consumer.log import LOG_SOCKET_NAME, configure_logging
from consumer.metrics import ConsumerMetrics
from consumer.model_loader import ModelLoader
from consumer.publisher import Backoff, PublishAbandonedError, Publisher, PublishError
from consumer.scoring import ServedModel
from consumer.status import ProcessorStatus, State

log = structlog.get_logger("consumer.processor")

EXIT_PUBLISH_FAILED = 3
EXIT_UNEXPECTED_ERROR = 4
EXIT_DAEMON_GONE = 5
# How often a processor waiting for its first model re-checks (and re-reports) its state.
WAIT_FOR_MODEL_TICK_SECONDS = 1.0


class StatusLike(Protocol):
    def update(
        self, state: State, *, model_version: str | None = None, detail: str | None = None
    ) -> None: ...

    def remove(self) -> None: ...


def exit_process(code: int) -> NoReturn:
    """Ends the process at once (no exception for kclpy to swallow, no checkpoint)."""
    sys.stderr.flush()
    os._exit(code)


def parent_watch() -> Callable[[], bool]:
    """True while the process that started this one (the KCL daemon) is still its parent."""
    parent = os.getppid()
    return lambda: os.getppid() == parent


def _field(record: Any, key: str) -> Any:
    # kclpy hands `messages.Record` objects (which support [] too); tests may hand dicts.
    try:
        return record[key]
    except KeyError:
        return None


def to_input_record(record: Any, shard_id: str) -> InputRecord:
    """A KCL record (base64 data, sequence numbers, arrival time) as the batch path's input."""
    arrival = _field(record, "approximateArrivalTimestamp")
    sub_sequence = _field(record, "subSequenceNumber")
    return InputRecord(
        data=base64.b64decode(record["data"]),
        position=SourcePosition(
            shard_id=shard_id,
            sequence_number=str(record["sequenceNumber"]),
            sub_sequence_number=None if sub_sequence is None else int(sub_sequence),
            arrival_timestamp_ms=None if arrival is None else int(arrival),
        ),
    )


class RecordProcessor(kcl_processor.RecordProcessorBase):  # type: ignore[misc]
    """The KCL v3 record processor of one shard. See the module docstring for the policy."""

    def __init__(
        self,
        *,
        metrics: ConsumerMetrics,
        holder: ModelHolder,
        poller: ModelPoller | None,
        publisher: Publisher,
        checkpointer: ShardCheckpointer,
        status_factory: Callable[[str], StatusLike],
        drift_window: int,
        drift_update_every: int,
        on_initialize: Callable[[str], None] | None = None,
        exit_process: Callable[[int], NoReturn] = exit_process,
        clock: Callable[[], float] = time.time,
        daemon_alive: Callable[[], bool] | None = None,
    ) -> None:
        self._metrics = metrics
        self._holder = holder
        self._poller = poller
        self._publisher = publisher
        self._checkpointer = checkpointer
        self._status_factory = status_factory
        self._drift_window = drift_window
        self._drift_update_every = drift_update_every
        self._on_initialize = on_initialize
        self._exit = exit_process
        self._clock = clock
        # Checked while a batch waits for a first model (see the module docstring).
        self.daemon_alive = daemon_alive or parent_watch()
        self.shard_id = "unknown"
        self._status: StatusLike | None = None
        self._model: ServedModel | None = None
        self.drift: DriftMonitor | None = None
        # The last position whose outputs (and all before it) were accepted by PutRecords.
        self.published: tuple[str, int | None] | None = None
        self.shutting_down = False
        self._stopped = False
        self.skipped_batches = 0
        # Held for a whole batch: a model swap from the poller thread waits for it to end.
        self._batch_lock = threading.Lock()
        # Reentrant: a check and the status write it decides must not interleave with a swap.
        self._status_lock = threading.RLock()
        holder.add_listener(self._on_swap)
        holder.add_offer_listener(self._on_offer)

    # --- KCL life cycle ------------------------------------------------------------------

    def _guarded(self, step: str, action: Callable[[], None]) -> None:
        """Runs a life-cycle step; an error ends the process (kclpy would swallow it and leave
        the shard held by a processor that can never serve it)."""
        try:
            action()
        except Exception:
            log.exception("processor_failed_exiting_without_checkpoint", step=step)
            self._exit(EXIT_UNEXPECTED_ERROR)

    def initialize(self, initialize_input: Any) -> None:
        self._guarded("initialize", lambda: self._initialize(initialize_input))

    def _initialize(self, initialize_input: Any) -> None:
        self.shard_id = str(initialize_input.shard_id)
        if self._on_initialize is not None:
            self._on_initialize(self.shard_id)
        structlog.contextvars.bind_contextvars(shard_id=self.shard_id)
        self._metrics.processor_ready.labels(shard_id=self.shard_id).set(0)
        # The poller first: without it no batch could ever get a model.
        if self._poller is not None:
            self._poller.start()
        self._status = self._status_factory(self.shard_id)
        self._set_status("starting")
        with self._status_lock:
            # Unless the poller already swapped a model in, say what we are waiting for.
            if self._model is None:
                self._set_status("waiting_for_model")
        log.info(
            "processor_initialized",
            starting_sequence=getattr(initialize_input, "sequence_number", None),
            pid=os.getpid(),
        )

    def process_records(self, process_records_input: Any) -> None:
        try:
            with self._batch_lock:
                self._process_records(process_records_input)
        except Exception:
            log.exception("processor_failed_exiting_without_checkpoint")
            self._exit(EXIT_UNEXPECTED_ERROR)

    def lease_lost(self, lease_lost_input: Any) -> None:
        # Before anything that could fail: no checkpoint may follow a lost lease.
        self._checkpointer.lease_lost = True
        self._guarded("lease_lost", self._lease_lost)

    def _lease_lost(self) -> None:
        log.warning("lease_lost", published=self.published)
        self._stop("lease lost")

    def shard_ended(self, shard_ended_input: Any) -> None:
        self._guarded("shard_ended", lambda: self._shard_ended(shard_ended_input))

    def _shard_ended(self, shard_ended_input: Any) -> None:
        if self.skipped_batches:
            # A skipped batch is unpublished: let the next owner of the shard read it again.
            log.warning("shard_end_not_checkpointed", skipped_batches=self.skipped_batches)
        else:
            outcome = self._checkpointer.checkpoint(shard_ended_input.checkpointer)
            if outcome is CheckpointOutcome.SUCCESS:
                log.info("shard_ended", checkpoint=outcome.value)
            else:
                # The KCL runs the shard end again (the child shards wait for this checkpoint).
                log.error("shard_end_checkpoint_failed", checkpoint=outcome.value)
        self._stop("shard ended")

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        self.shutting_down = True
        self._guarded(
            "shutdown_requested", lambda: self._shutdown_requested(shutdown_requested_input)
        )

    def _shutdown_requested(self, shutdown_requested_input: Any) -> None:
        outcome: CheckpointOutcome | None = None
        if self.published is not None and not self._checkpointer.lease_lost:
            sequence, sub_sequence = self.published
            outcome = self._checkpointer.checkpoint(
                shutdown_requested_input.checkpointer, sequence, sub_sequence
            )
        log.info(
            "shutdown_requested",
            checkpoint=outcome.value if outcome else None,
            published=self.published,
        )
        self._stop("shutdown requested")

    def close(self) -> None:
        """Stops the poller and removes the status file (the KCL closed our standard input)."""
        if self._poller is not None:
            self._poller.stop()
        if self._status is not None:
            self._status.remove()

    # --- one batch -------------------------------------------------------------------------

    def _process_records(self, process_records_input: Any) -> None:
        behind = process_records_input.millis_behind_latest
        if behind is not None:
            self._metrics.behind_latest.labels(shard_id=self.shard_id).set(behind / 1000.0)
        records = process_records_input.records or []
        if not records:
            return
        if self.shutting_down or self._checkpointer.lease_lost:
            # Not ours to finish: no output, no checkpoint; the next owner reads it again.
            self.skipped_batches += 1
            log.warning(
                "batch_skipped",
                batch_size=len(records),
                shutting_down=self.shutting_down,
                lease_lost=self._checkpointer.lease_lost,
            )
            return
        model = self._await_model()
        started = time.perf_counter()  # the batch's own time, not the wait for a first model
        inputs = [to_input_record(record, self.shard_id) for record in records]
        first, last = inputs[0].position, inputs[-1].position
        batch_log = log.bind(
            first_sequence=first.sequence_number,
            last_sequence=last.sequence_number,
            batch_size=len(inputs),
            model_version=model.version,
        )
        self._metrics.records_received.labels(shard_id=self.shard_id).inc(len(inputs))
        self._metrics.batch_size.observe(len(inputs))

        result = run_batch(model, inputs, clock=self._clock)
        self._metrics.scoring_duration.observe(result.scoring_seconds)
        if not self.daemon_alive():
            # The worker is gone (the model may have arrived just as it went): the shard's next
            # owner publishes this batch, so we must not.
            batch_log.error("daemon_gone_exiting_without_checkpoint")
            self._exit(EXIT_DAEMON_GONE)
        try:
            self._publisher.publish(result.outputs)
        except PublishAbandonedError as exc:
            batch_log.error("daemon_gone_exiting_without_checkpoint", error=str(exc))
            self._exit(EXIT_DAEMON_GONE)
        except PublishError as exc:
            batch_log.error("publish_failed_exiting_without_checkpoint", error=str(exc))
            self._exit(EXIT_PUBLISH_FAILED)
        self.published = (last.sequence_number, last.sub_sequence_number)
        outcome = self._checkpointer.checkpoint(
            process_records_input.checkpointer, last.sequence_number, last.sub_sequence_number
        )
        if outcome is CheckpointOutcome.SHUTDOWN:
            self._stop("lease lost at checkpoint")
        elif outcome is not CheckpointOutcome.SUCCESS:
            # Published, so nothing is lost: the next batch's checkpoint covers this one.
            batch_log.error("checkpoint_failed", checkpoint=outcome.value)
        try:
            self._count_published(result)
            if self.drift is not None:
                self.drift.add(result.scored_rows)
        except Exception:
            # Bookkeeping only: the batch is published and checkpointed; failing here would
            # make a restart publish it again.
            log.exception(
                "batch_bookkeeping_failed",
                first_sequence=first.sequence_number,
                last_sequence=last.sequence_number,
            )
        elapsed = time.perf_counter() - started
        self._metrics.batch_duration.observe(elapsed)
        batch_log.info(
            "batch_processed",
            predictions=result.predictions,
            dead_letters=result.dead_letters,
            reasons=result.reasons or None,
            scored_alone=result.scored_alone or None,
            checkpoint=outcome.value,
            validate_ms=round(result.validation_seconds * 1000, 2),
            score_ms=round(result.scoring_seconds * 1000, 2),
            encode_ms=round(result.encoding_seconds * 1000, 2),
            batch_ms=round(elapsed * 1000, 2),
        )

    def _count_published(self, result: BatchResult) -> None:
        metrics = self._metrics
        now_ms = self._clock() * 1000.0
        decisions: Counter[bool] = Counter()
        reasons: Counter[str] = Counter()
        ignored = 0
        for output in result.outputs:
            arrival = output.position.arrival_timestamp_ms
            if arrival is not None:
                metrics.record_age.observe(max(0.0, (now_ms - arrival) / 1000.0))
            if output.kind is OutputKind.PREDICTION:
                decisions[bool(output.at_risk)] += 1
                ignored += output.ignored_count
                if output.probability is not None:
                    metrics.probability.observe(output.probability)
            elif output.reason is not None:
                reasons[output.reason.value] += 1
        for at_risk, count in decisions.items():
            metrics.predictions.labels(
                decision="at_risk" if at_risk else "not_at_risk",
                model_version=result.model_version,
            ).inc(count)
        for reason, count in reasons.items():
            metrics.dead_letters.labels(reason=reason).inc(count)
        if ignored:
            metrics.ignored_attributes.inc(ignored)

    # --- the model -------------------------------------------------------------------------

    def _await_model(self) -> ServedModel:
        """The model for this batch; blocks (reporting not ready) until there is one."""
        model = self._holder.for_next_batch()
        if model is not None:
            return model
        self._set_status("waiting_for_model")
        log.warning("waiting_for_model")
        started = time.monotonic()
        while model is None:
            if not self.daemon_alive():
                log.error(
                    "daemon_gone_exiting_without_checkpoint",
                    waited_seconds=round(time.monotonic() - started, 1),
                )
                self._exit(EXIT_DAEMON_GONE)
            self._holder.wait_for_offer(WAIT_FOR_MODEL_TICK_SECONDS)
            model = self._holder.for_next_batch()
        return model

    def _on_offer(self, model: ServedModel) -> None:
        # Poller thread: swap now if no batch is in flight; otherwise the next batch swaps.
        if not self._stopped and self._batch_lock.acquire(blocking=False):
            try:
                self._holder.for_next_batch()
            finally:
                self._batch_lock.release()

    def _on_swap(self, old: ServedModel | None, new: ServedModel) -> None:
        self._model = new
        self.drift = DriftMonitor(
            new.contract,
            window=self._drift_window,
            update_every=self._drift_update_every,
            metrics=self._metrics,
        )
        if self.drift.problems:
            log.warning("drift_reference_unusable", problems=self.drift.problems)
        with self._status_lock:
            stopped = self._stopped
        if not stopped:
            self._metrics.processor_ready.labels(shard_id=self.shard_id).set(1)
            self._set_status("ready")

    def _set_status(self, state: State, detail: str | None = None) -> None:
        """Writes the status file the supervisor's /readyz reads; best effort, because a full
        or read-only disk must not stop a processor that can serve."""
        with self._status_lock:
            if self._status is None or (self._stopped and state != "stopping"):
                return
            version = self._model.version if self._model else None
            try:
                self._status.update(state, model_version=version, detail=detail)
            except OSError as exc:
                log.warning("status_write_failed", state=state, error=str(exc))

    def _stop(self, why: str) -> None:
        with self._status_lock:
            self._stopped = True
        if self._poller is not None:
            self._poller.stop()
        self._metrics.processor_ready.labels(shard_id=self.shard_id).set(0)
        self._set_status("stopping", why)


def build_processor(
    settings: ConsumerSettings,
    metrics: ConsumerMetrics,
    *,
    kinesis_client: Any = None,
    loader: ModelLoader | None = None,
    on_initialize: Callable[[str], None] | None = None,
    exit_process: Callable[[int], NoReturn] = exit_process,
) -> RecordProcessor:
    """A processor wired from settings: registry poller, Kinesis publisher, status file."""
    holder = ModelHolder(metrics)
    poller = ModelPoller(
        loader or ModelLoader.from_settings(settings),
        holder,
        interval_seconds=settings.model_poll_interval_seconds,
        metrics=metrics,
    )
    backoff = Backoff(
        settings.publish_backoff_initial_seconds, settings.publish_backoff_max_seconds
    )
    daemon_alive = parent_watch()
    return RecordProcessor(
        metrics=metrics,
        holder=holder,
        poller=poller,
        publisher=Publisher.from_settings(
            settings, metrics, kinesis_client, keep_trying=daemon_alive
        ),
        checkpointer=ShardCheckpointer(
            max_attempts=settings.checkpoint_max_attempts, backoff=backoff, metrics=metrics
        ),
        status_factory=lambda shard_id: ProcessorStatus(settings.state_dir, shard_id),
        drift_window=settings.drift_window_records,
        drift_update_every=settings.drift_update_every_records,
        on_initialize=on_initialize,
        exit_process=exit_process,
        daemon_alive=daemon_alive,
    )


def main(settings: ConsumerSettings) -> None:
    """Entry point of `python -m consumer process`: serve one shard until the daemon stops us."""
    relay = settings.state_dir / LOG_SOCKET_NAME
    configure_logging(settings.log_level, relay_socket=relay)
    # Standard output is the multilang protocol channel: the protocol gets its own copy of the
    # descriptor, and descriptor 1 itself (Python's prints, and native code such as OpenMP
    # warnings) now leads to stderr.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    processor = build_processor(
        settings,
        ConsumerMetrics(CollectorRegistry()),
        on_initialize=lambda shard_id: configure_logging(
            settings.log_level, relay_socket=relay, shard_id=shard_id
        ),
    )
    try:
        kcl.KCLProcess(processor, output_file=protocol_out).run()
    finally:
        processor.close()
        log.info("processor_exiting")
