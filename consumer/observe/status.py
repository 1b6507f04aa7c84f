"""Per-processor status files, read by the supervisor's /readyz.

Each shard processor is its own process (started by the KCL daemon), so it publishes its state as
a small JSON file named after its pid; the supervisor lists the files, drops those of processes
that no longer exist, and answers readiness from the rest.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Protocol

import orjson
import structlog

State = Literal["starting", "waiting_for_model", "ready", "stopping"]
_PREFIX = "processor-"

log = structlog.get_logger("consumer.observe.status")


@dataclass(frozen=True)
class ProcessorState:
    pid: int
    shard_id: str
    state: State
    model_version: str | None
    detail: str | None
    updated_at: float


class ProcessorStatus:
    """Writes this process's status file; the write is atomic (temp file + rename)."""

    def __init__(self, state_dir: Path, shard_id: str) -> None:
        self._dir = state_dir
        self._dir.mkdir(parents=True, exist_ok=True)
        self._shard_id = shard_id
        self._path = self._dir / f"{_PREFIX}{os.getpid()}.json"

    def update(
        self, state: State, *, model_version: str | None = None, detail: str | None = None
    ) -> None:
        record = ProcessorState(
            pid=os.getpid(),
            shard_id=self._shard_id,
            state=state,
            model_version=model_version,
            detail=detail,
            updated_at=time.time(),
        )
        tmp = self._path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(asdict(record)))
        tmp.replace(self._path)

    def remove(self) -> None:
        self._path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_statuses(state_dir: Path) -> list[ProcessorState]:
    """Statuses of the processors that still run; files of dead processes are deleted."""
    states: list[ProcessorState] = []
    if not state_dir.is_dir():
        return states
    for path in sorted(state_dir.glob(f"{_PREFIX}*.json")):
        try:
            raw = orjson.loads(path.read_bytes())
            state = ProcessorState(**raw)
        except (OSError, orjson.JSONDecodeError, TypeError):
            continue
        if pid_alive(state.pid):
            states.append(state)
        else:
            path.unlink(missing_ok=True)
    return states


class StatusFile(Protocol):
    def update(
        self, state: State, *, model_version: str | None = None, detail: str | None = None
    ) -> None: ...

    def remove(self) -> None: ...


class StatusReporter:
    """One processor's status as /readyz reads it: thread-safe (the poller thread reports a
    new model), best effort (a full or read-only disk must not stop a processor that can
    serve), and after `stop` nothing but "stopping" is written."""

    def __init__(self, file: StatusFile, model_version: Callable[[], str | None]) -> None:
        self._file = file
        self._model_version = model_version
        # Reentrant: a check and the write it decides run under one hold of the lock.
        self.lock = threading.RLock()
        self.stopped = False

    def report(self, state: State, detail: str | None = None) -> None:
        with self.lock:
            if self.stopped and state != "stopping":
                return
            try:
                self._file.update(state, model_version=self._model_version(), detail=detail)
            except OSError as exc:
                log.warning("status_write_failed", state=state, error=str(exc))

    def stop(self, why: str) -> None:
        with self.lock:
            self.stopped = True
            self.report("stopping", why)

    def remove(self) -> None:
        self._file.remove()
