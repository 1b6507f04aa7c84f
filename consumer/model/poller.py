"""ModelPoller: a background thread that loads the champion and offers new versions.

It first loads the champion with exponential backoff (the processor meanwhile reports not ready
and scores nothing), then polls `get_model_version_by_alias` every MODEL_POLL_INTERVAL_SECONDS.
A new version is downloaded, checked and self-tested off the scoring path (model/loader.py) and
only then offered to the holder. A version that failed for a permanent reason (incompatible,
load or self-test failure) is not tried again by this process (a registered version's files are
not meant to change: register a fixed version and move the alias); transient failures
(registry, download) are retried on the next poll. The served model is never dropped.
"""

from __future__ import annotations

import threading
import time

import structlog

from consumer.model.holder import ModelHolder
from consumer.model.loader import ModelLoader
from consumer.model.outcomes import LoadOutcome, ModelLoadError
from consumer.observe.metrics import ConsumerMetrics

log = structlog.get_logger("consumer.model.poller")


class ModelPoller:
    """Background loader of the champion; see the module docstring."""

    def __init__(
        self,
        loader: ModelLoader,
        holder: ModelHolder,
        *,
        interval_seconds: float,
        metrics: ConsumerMetrics | None = None,
        initial_backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self._loader = loader
        self._holder = holder
        self._interval = interval_seconds
        self._metrics = metrics
        self._initial_backoff = min(initial_backoff_seconds, interval_seconds)
        self._max_backoff = max(self._initial_backoff, min(max_backoff_seconds, interval_seconds))
        self._stop = threading.Event()
        self._refused: set[str] = set()
        self._thread: threading.Thread | None = None
        self._reported: tuple[LoadOutcome, str | None] | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-poller", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None and timeout is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        backoff = self._initial_backoff
        while not self._stop.is_set():
            self._poll_safely()
            if self._holder.known_version is not None:
                break
            self._stop.wait(backoff)
            backoff = min(self._max_backoff, backoff * 2)
        while not self._stop.wait(self._interval):
            self._poll_safely()

    def _poll_safely(self) -> None:
        # The thread must outlive anything a poll (or a swap listener it triggers) raises.
        try:
            self.poll_once()
        except Exception:
            log.exception("model_poll_error")

    def poll_once(self) -> LoadOutcome | None:
        """One poll: resolve the alias and load the version if it is new. Never raises."""
        started = time.perf_counter()
        try:
            ref = self._loader.resolve_alias()
            if ref.version == self._holder.known_version:
                self._polled("unchanged")
                return None
            if ref.version in self._refused:
                self._polled("refused_before")
                return None
            model = self._loader.load_version(ref)
        except ModelLoadError as exc:
            self._polled("failed")
            self._failed(exc)
            return exc.outcome
        except Exception as exc:  # noqa: BLE001 (a bug or a library surprise: keep serving)
            self._polled("failed")
            self._failed(ModelLoadError(LoadOutcome.LOAD_FAILED, repr(exc)))
            return LoadOutcome.LOAD_FAILED
        self._polled("loaded")
        self._count(LoadOutcome.SUCCESS)
        self._reported = None
        serving = self._holder.known_version
        log.info(
            "model_loaded",
            model_name=ref.name,
            model_version=ref.version,
            seconds=round(time.perf_counter() - started, 3),
        )
        current = self._holder.current
        self._holder.offer(model)
        # The new version, the one serving now and any earlier offer not yet swapped in stay on
        # disk (a rollback loads from there); older ones go.
        keep = (ref.version, serving, current.version if current else None)
        self._loader.cache.evict(ref.name, keep=keep)
        return LoadOutcome.SUCCESS

    def _failed(self, exc: ModelLoadError) -> None:
        self._count(exc.outcome)
        if exc.outcome.permanent and exc.version is not None:
            self._refused.add(exc.version)
        # Log each distinct failure once, not on every poll of an outage.
        key = (exc.outcome, exc.version)
        if key != self._reported:
            self._reported = key
            log.error(
                "model_load_failed",
                outcome=exc.outcome.value,
                model_version=exc.version,
                serving_version=self._holder.known_version,
                error=str(exc),
            )

    def _polled(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.model_polls.labels(result=result).inc()

    def _count(self, outcome: LoadOutcome) -> None:
        if self._metrics is not None:
            self._metrics.model_reloads.labels(outcome=outcome.value).inc()
