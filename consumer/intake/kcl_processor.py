"""The KCL v3 record processor of one shard (`python -m consumer process`): a thin shell.

The MultiLangDaemon starts one per shard lease and talks to it over stdin/stdout; amazon_kclpy
turns each message into a call here. Batches go to the BatchHandler (consumer/batch_handler.py),
models come from the ModelHandOff (consumer/model/handoff.py); this class only follows the KCL's
life cycle:

- initialize: report "waiting_for_model" (or "ready"), start the model poller.
- process_records: the batch handler, unless the lease is lost or a shutdown was requested
  (then the batch is skipped: not ours to finish, the next owner reads it again).
- lease_lost: never checkpoint again.
- shard_ended: checkpoint() with no arguments; the child shards wait for it. If it fails past its
  retries, or a batch was skipped, the process exits non-zero (14): the daemon does not call
  shard_ended again, so only a restart of the worker retries the shard end.
- shutdown_requested: process nothing new; checkpoint the last fully published position.

amazon_kclpy swallows any exception a processor method raises and reports the action as done,
so no exception may leave these methods: an error ends the process (12) without checkpointing,
rather than leave a shard held by a processor that cannot serve it. (The public kclpy sample
checkpoints past failed records; this processor never does.)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

import structlog
from amazon_kclpy import kcl, messages
from amazon_kclpy.v3 import processor as kcl_processor
from prometheus_client import CollectorRegistry

from common.exit_codes import ExitCode
from consumer.batch_handler import BatchHandler, CaptureStep
from consumer.checkpoint.checkpointer import CheckpointOutcome, ShardCheckpointer
from consumer.config import ConsumerSettings
from consumer.intake.lease_watch import LeaseWatch
from consumer.intake.parent import exit_process, parent_watch
from consumer.model.handoff import ModelHandOff
from consumer.model.holder import ModelHolder
from consumer.model.loader import ModelLoader
from consumer.model.poller import ModelPoller
from consumer.observe.logs import LOG_SOCKET_NAME, configure_logging
from consumer.observe.metrics import ConsumerMetrics
from consumer.observe.status import ProcessorStatus, StatusFile, StatusReporter
from consumer.output.kinesis import publishing_client
from consumer.output.publisher import Publisher

log = structlog.get_logger("consumer.intake.kcl_processor")


@dataclass(kw_only=True, eq=False)
class RecordProcessor(kcl_processor.RecordProcessorBase):  # type: ignore[misc]
    """The life cycle of one shard; see the module docstring for the policy."""

    handler: BatchHandler
    models: ModelHandOff
    checkpointer: ShardCheckpointer
    status_factory: Callable[[str], StatusFile]
    on_initialize: Callable[[str], None] | None = None
    exit_process: Callable[[int], NoReturn] = exit_process
    shard_id: str = field(default="unknown", init=False)
    status: StatusReporter | None = field(default=None, init=False)
    shutting_down: bool = field(default=False, init=False)
    skipped_batches: int = field(default=0, init=False)

    def _guarded(self, step: str, action: Callable[[], None]) -> None:
        """Runs a life-cycle step; an error ends the process (kclpy would swallow it)."""
        try:
            action()
        except Exception:
            log.exception("processor_failed_exiting_without_checkpoint", step=step)
            self.exit_process(ExitCode.PROCESSOR_ERROR)

    # --- the KCL's calls --------------------------------------------------------------------

    def initialize(self, initialize_input: messages.InitializeInput) -> None:
        self._guarded("initialize", lambda: self._initialize(initialize_input))

    def process_records(self, process_records_input: messages.ProcessRecordsInput) -> None:
        self._guarded("process_records", lambda: self._process_records(process_records_input))

    def lease_lost(self, lease_lost_input: messages.LeaseLostInput) -> None:
        # Before anything that could fail: no checkpoint may follow a lost lease.
        self.checkpointer.lease_lost = True
        self._guarded("lease_lost", self._lease_lost)

    def shard_ended(self, shard_ended_input: messages.ShardEndedInput) -> None:
        self._guarded("shard_ended", lambda: self._shard_ended(shard_ended_input))

    def shutdown_requested(self, shutdown_requested_input: messages.ShutdownRequestedInput) -> None:
        self.shutting_down = True
        self._guarded(
            "shutdown_requested", lambda: self._shutdown_requested(shutdown_requested_input)
        )

    def close(self) -> None:
        """Stops the poller and removes the status file (the KCL closed our standard input)."""
        self.models.stop()
        if self.status is not None:
            self.status.remove()

    # --- what each call does ----------------------------------------------------------------

    def _initialize(self, initialize_input: messages.InitializeInput) -> None:
        self.shard_id = str(initialize_input.shard_id)
        self.handler.shard_id = self.shard_id
        if self.on_initialize is not None:
            self.on_initialize(self.shard_id)
        structlog.contextvars.bind_contextvars(shard_id=self.shard_id)
        self.status = StatusReporter(
            self.status_factory(self.shard_id), lambda: self.models.version
        )
        self.status.report("starting")
        self.models.start(self.shard_id, self.status)
        log.info(
            "processor_initialized",
            starting_sequence=initialize_input.sequence_number,
            pid=os.getpid(),
        )

    def _process_records(self, process_records_input: messages.ProcessRecordsInput) -> None:
        records = process_records_input.records or []
        if records and (self.shutting_down or self.checkpointer.lease_lost):
            # Not ours to finish: no output, no checkpoint; the next owner reads it again.
            self.skipped_batches += 1
            log.warning(
                "batch_skipped",
                batch_size=len(records),
                shutting_down=self.shutting_down,
                lease_lost=self.checkpointer.lease_lost,
            )
            return
        with self.models.batch():
            outcome = self.handler.handle(
                records,
                process_records_input.checkpointer,
                process_records_input.millis_behind_latest,
            )
        if outcome is CheckpointOutcome.SHUTDOWN:
            self._stop("lease lost at checkpoint")

    def _lease_lost(self) -> None:
        log.warning("lease_lost", published=self.handler.published)
        self._stop("lease lost")

    def _shard_ended(self, shard_ended_input: messages.ShardEndedInput) -> None:
        if self.skipped_batches:
            # A skipped batch is unpublished: the shard end must wait for the next owner.
            log.error(
                "shard_end_not_checkpointed_exiting",
                skipped_batches=self.skipped_batches,
                reason="batches were skipped",
            )
            self.exit_process(ExitCode.SHARD_END_NOT_CHECKPOINTED)
        outcome = self.checkpointer.checkpoint(shard_ended_input.checkpointer)
        if outcome is not CheckpointOutcome.SUCCESS:
            # The daemon never calls shard_ended again, and the child shards wait for this
            # checkpoint: only a restart of the worker retries it.
            log.error("shard_end_not_checkpointed_exiting", checkpoint=outcome.value)
            self.exit_process(ExitCode.SHARD_END_NOT_CHECKPOINTED)
        log.info("shard_ended", checkpoint=outcome.value)
        self._stop("shard ended")

    def _shutdown_requested(
        self, shutdown_requested_input: messages.ShutdownRequestedInput
    ) -> None:
        outcome: CheckpointOutcome | None = None
        published = self.handler.published
        if published is not None and not self.checkpointer.lease_lost:
            sequence, sub_sequence = published
            outcome = self.checkpointer.checkpoint(
                shutdown_requested_input.checkpointer, sequence, sub_sequence
            )
        log.info(
            "shutdown_requested",
            checkpoint=outcome.value if outcome else None,
            published=published,
        )
        self._stop("shutdown requested")

    def _stop(self, why: str) -> None:
        if self.status is not None:
            self.status.stop(why)
        self.models.stop()


def build_processor(
    settings: ConsumerSettings,
    metrics: ConsumerMetrics,
    *,
    kinesis_client: object | None = None,
    loader: ModelLoader | None = None,
    capture: CaptureStep | None = None,
    on_initialize: Callable[[str], None] | None = None,
    exit_process: Callable[[int], NoReturn] = exit_process,
) -> RecordProcessor:
    """A processor wired from settings: registry poller, Kinesis publisher, capture writer
    (unless CAPTURE_ENABLED is false), status file."""
    daemon_alive = parent_watch()
    holder = ModelHolder()
    poller = ModelPoller(
        loader or ModelLoader.from_settings(settings),
        holder,
        interval_seconds=settings.model_poll_interval_seconds,
        metrics=metrics,
    )
    models = ModelHandOff(
        holder,
        poller,
        metrics=metrics,
        drift_window=settings.drift_window_records,
        drift_update_every=settings.drift_update_every_records,
        daemon_alive=daemon_alive,
        exit_process=exit_process,
    )
    checkpointer = ShardCheckpointer.from_settings(settings, metrics)
    if capture is None and settings.capture_enabled:
        from consumer.capture.writer import CaptureWriter

        capture = CaptureWriter.from_settings(settings, metrics, keep_trying=daemon_alive)
    lease: list[LeaseWatch] = []  # built at initialize, when the shard is known

    def lease_held() -> bool:
        return lease[0].held() if lease else True

    def initialized(shard_id: str) -> None:
        lease.append(LeaseWatch.from_settings(settings, shard_id))
        if on_initialize is not None:
            on_initialize(shard_id)

    handler = BatchHandler(
        models=models,
        publisher=Publisher.from_settings(
            settings,
            kinesis_client if kinesis_client is not None else publishing_client(settings),
            metrics,
            keep_trying=daemon_alive,
            lease_held=lease_held,
        ),
        checkpointer=checkpointer,
        metrics=metrics,
        daemon_alive=daemon_alive,
        exit_process=exit_process,
        capture=capture,
    )
    return RecordProcessor(
        handler=handler,
        models=models,
        checkpointer=checkpointer,
        status_factory=lambda shard_id: ProcessorStatus(settings.state_dir, shard_id),
        on_initialize=initialized,
        exit_process=exit_process,
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
