"""Shared pieces of the streaming benchmarks: the embedded stack on free ports, a trained
champion, a paced producer and output collection. Process sampling (CPU, RSS, PSS) lives in
`process_sampler.py`.

Latency is put->prediction: the prediction record's arrival time in the predictions stream
minus the input record's arrival time in the input stream, both stamped by the same Kinesis
emulator, so the two clocks are one.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
