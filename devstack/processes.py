"""Start, probe and stop local service processes.

Each service runs in its own session (process group), so stopping it also stops whatever it
started (the KCL daemon's shard processors, npm's node child). A pid file per service lets a
later `down` stop what an earlier `up` started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Probe = Callable[[], bool]


class ServiceStartError(RuntimeError):
    """A service did not become ready; the message names it and quotes its log."""


@dataclass
class ServiceSpec:
    name: str
    argv: Sequence[str]
    probe: Probe
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    start_timeout: float = 60.0
    stop_timeout: float = 20.0


def inherited_environ() -> dict[str, str]:
    """This process's environment minus MLflow's variables: `mlflow.set_tracking_uri` writes
    them into os.environ, and a service must only see the registry its spec names."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ManagedProcess:
    """One running service: its Popen, log file and pid file."""

    def __init__(self, spec: ServiceSpec, logs_dir: Path, pids_dir: Path) -> None:
        self.spec = spec
        self.log_path = logs_dir / f"{spec.name}.log"
        self.pid_path = pids_dir / f"{spec.name}.pid"
        self.proc: subprocess.Popen[bytes] | None = None
        logs_dir.mkdir(parents=True, exist_ok=True)
        pids_dir.mkdir(parents=True, exist_ok=True)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, *, wait: bool = True) -> ManagedProcess:
        env = {**inherited_environ(), **self.spec.env}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                list(self.spec.argv),
                cwd=self.spec.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_path.write_text(
            json.dumps({"pid": self.proc.pid, "argv": list(self.spec.argv)}), encoding="utf-8"
        )
        if wait:
            self.wait_ready()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.spec.start_timeout)
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                raise ServiceStartError(
                    f"{self.spec.name} exited with code {code} before it was ready; "
                    f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
                )
            with contextlib.suppress(Exception):
                if self.spec.probe():
                    return
            time.sleep(0.25)
        self.stop()
        raise ServiceStartError(
            f"{self.spec.name} was not ready after {timeout or self.spec.start_timeout:.0f} s; "
            f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
        )

    def signal(self, sig: int) -> None:
        """Sends a signal to the service's whole process group."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, then SIGKILL after the timeout; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout or self.spec.stop_timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(10)
        # Children that outlived the leader (same group) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.pid_path.unlink(missing_ok=True)
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9 of the whole group: a crash, not a shutdown."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)
        self.pid_path.unlink(missing_ok=True)


def stop_from_pid_files(pids_dir: Path, timeout: float = 20.0) -> list[str]:
    """Stops services recorded by an earlier invocation; returns their names."""
    stopped: list[str] = []
    if not pids_dir.is_dir():
        return stopped
    for pid_file in sorted(pids_dir.glob("*.pid")):
        try:
            pid = int(json.loads(pid_file.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            pid_file.unlink(missing_ok=True)
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _group_alive(pid):
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
        stopped.append(pid_file.stem)
    return stopped


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
