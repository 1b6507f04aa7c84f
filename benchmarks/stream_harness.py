"""Shared pieces of the streaming benchmarks: the embedded stack on free ports, a trained
champion, a paced producer, output collection and process sampling (CPU, RSS).

Latency is put->prediction: the prediction record's arrival time in the predictions stream
minus the input record's arrival time in the input stream, both stamped by the same Kinesis
emulator, so the two clocks are one.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from common.data_files import UciDownload, find_data_file
from consumer.tools.producer import events, read_rows
from devstack.backends import ProcessBackend
from devstack.consumers import ConsumerHandle
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from devstack.producer import Producer
from devstack.services import consumer_service
from devstack.settings import StackSettings
from devstack.streaming import Streams, fresh_streams
from devstack.training import run_training

REPO_ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def embedded_stack() -> Iterator[StackSettings]:
    """kinesis-local, moto and MLflow as local processes, with a --quick champion."""
    with tempfile.TemporaryDirectory(prefix="dropout-bench-") as tmp:
        settings = StackSettings.on_free_ports(Path(tmp))
        with ProcessBackend().run(settings):
            print("stack up; training --quick for the champion ...", flush=True)
            run_training(settings, data_path())
            yield settings


def data_path() -> Path:
    """DATA_PATH, an offline copy, or the checked UCI download (common/data_files.py)."""
    return find_data_file(None, download=UciDownload(), offline_copies=True).path


def new_streams(stack: StackSettings, tag: str, shards: int = 4) -> Streams:
    return fresh_streams(stack, tag, shards, output_shards=shards)


@contextlib.contextmanager
def running_consumer(
    stack: StackSettings, streams: Streams, env: dict[str, str] | None = None
) -> Iterator[ConsumerHandle]:
    port = free_port()
    spec = consumer_service(
        streams.settings, worker=f"bench-{streams.tag}", metrics_port=port, extra_env=env
    )
    proc = ManagedProcess(spec, stack.logs_dir, stack.pids_dir).start()
    handle = ConsumerHandle(proc=proc, metrics_url=f"http://{stack.host}:{port}")
    try:
        handle.wait_ready(timeout=240)
        yield handle
    finally:
        proc.stop()


def paced_producer(
    streams: Streams, rate: float, seconds: float, rows: list[dict[str, float]]
) -> Producer:
    """Dataset rows at `rate` records/s (one PutRecords every 100 ms) for `seconds`, started."""
    return Producer(
        streams,
        lambda n, seed: list(events(rows, n, 0.0, seed=seed)),
        rate=rate,
        batch=max(1, int(rate / 10)),
        count=int(rate * seconds),
        seconds=seconds,
    ).start()


@dataclass
class ProcessSampler:
    """Samples CPU and RSS of the consumer's processes: supervisor, KCL daemon, processors."""

    root_pid: int
    interval: float = 1.0
    samples: list[dict[str, Any]] = field(default_factory=list)
    # One psutil.Process per pid, kept: cpu_percent() measures since the previous call on the
    # same object, and a fresh object's first call always answers 0.
    _known: dict[int, psutil.Process] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ProcessSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _processes(self) -> dict[str, list[psutil.Process]]:
        groups: dict[str, list[psutil.Process]] = {"supervisor": [], "kcl": [], "processor": []}
        try:
            root = psutil.Process(self.root_pid)
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return groups
        for fresh in family:
            proc = self._known.setdefault(fresh.pid, fresh)
            try:
                cmd = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            if "MultiLangDaemon" in cmd:
                groups["kcl"].append(proc)
            elif "consumer process" in cmd:
                groups["processor"].append(proc)
            elif proc.pid == self.root_pid:
                groups["supervisor"].append(proc)
        return groups

    def _run(self) -> None:
        groups = self._processes()
        for procs in groups.values():
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.cpu_percent(None)
        while not self._stop.wait(self.interval):
            groups = self._processes()
            sample: dict[str, Any] = {}
            for name, procs in groups.items():
                cpu = rss = 0.0
                rss_each = []
                for proc in procs:
                    with contextlib.suppress(psutil.Error):
                        cpu += proc.cpu_percent(None)
                        one = proc.memory_info().rss / 2**20
                        rss += one
                        rss_each.append(one)
                sample[name] = {"cpu": cpu, "rss_mb": rss, "rss_each_mb": rss_each}
            self.samples.append(sample)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        steady = self.samples[2:] or self.samples  # the first samples have no CPU history
        for name in ("supervisor", "kcl", "processor"):
            cpu = [s[name]["cpu"] for s in steady if name in s]
            rss_each = [r for s in steady if name in s for r in s[name]["rss_each_mb"]]
            out[name] = {
                "cpu_mean_pct": round(statistics.fmean(cpu), 1) if cpu else 0.0,
                "rss_max_each_mb": round(max(rss_each), 1) if rss_each else 0.0,
            }
        return out


def emulator_process() -> psutil.Process | None:
    """The kinesis-local process this benchmark started (a child of this process)."""
    for child in psutil.Process().children(recursive=True):
        try:
            if any("kinesis-local" in part for part in child.cmdline()):
                return child
        except psutil.Error:
            continue
    return None


def latencies_ms(streams: Streams) -> list[float]:
    """put->prediction of every output collected so far."""
    return [
        o["_arrival_ms"] - o["source"]["arrival_timestamp_ms"]
        for o in streams.outputs
        if o.get("source", {}).get("arrival_timestamp_ms") is not None
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def uci_rows() -> list[dict[str, float]]:
    return read_rows(data_path())
