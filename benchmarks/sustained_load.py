"""Sustained load on the embedded stack: records/s in, outputs/s out, lag, put->prediction
latency percentiles, CPU, RSS and PSS of the consumer's processes (issue 5, scenario 7).

Two baselines, measured in the same run: the offered rate (the consumer keeps up when its
outputs/s match what the producer got into the stream and the lag stays bounded), and the
Kinesis emulator's own capacity: how many records/s kinesis-local accepts from one PutRecords
client with nothing else running. kinesis-local is a single-threaded Node process; the consumer
must also write every output back to it, so the emulator, not the consumer, sets the ceiling
here. Everything (emulator, KCL daemon, four shard processors, producer, this reader) shares the
machine, so the figures are the whole system's on it, not the consumer's ceiling on AWS.

The producer stops after --seconds whatever it managed to send; the drain after it is bounded
by --drain-seconds, and records still without an output then are reported as backlog.

    python -m benchmarks.sustained_load [--rate 2000] [--seconds 300] [--drain-seconds 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

from benchmarks.process_sampler import (
    PROCESSOR_RSS_GOAL_MB,
    ProcessSampler,
    failures,
    report,
    usage_verdicts,
)
from benchmarks.stream_harness import (
    embedded_stack,
    emulator_process,
    latencies_ms,
    new_streams,
    paced_producer,
    percentile,
    running_consumer,
    uci_rows,
)
from devstack.settings import StackSettings

CAPACITY_PROBE_SECONDS = 20.0


def emulator_capacity(stack: StackSettings, rows: list[dict[str, float]]) -> float:
    """Records/s kinesis-local accepts from one client, offered far more than it can take."""
    streams = new_streams(stack, "probe")
    # 5,000/s: one full PutRecords call (500 records) every 100 ms, more than it takes.
    producer = paced_producer(streams, 5_000.0, CAPACITY_PROBE_SECONDS, rows)
    elapsed = producer.join()  # first: `sent` is final only once the producer has stopped
    return len(producer.sent) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--drain-seconds", type=float, default=300.0)
    args = parser.parse_args()
    rows = uci_rows()
    lag_samples: list[float] = []
    emulator_cpu: list[float] = []
    with embedded_stack() as stack:
        print(f"baseline: kinesis-local alone, {CAPACITY_PROBE_SECONDS:.0f} s ...", flush=True)
        capacity = emulator_capacity(stack, rows)
        streams = new_streams(stack, "load")
        with running_consumer(stack, streams) as consumer:
            assert consumer.proc.pid is not None
            sampler = ProcessSampler(consumer.proc.pid, interval=2.0).start()
            emulator = emulator_process()
            stop = threading.Event()

            def watch() -> None:
                if emulator is not None:
                    emulator.cpu_percent()
                while not stop.wait(5):
                    lag = [
                        value
                        for key, value in consumer.metrics().items()
                        if key.startswith("dropout_consumer_behind_latest_seconds")
                    ]
                    lag_samples.append(max(lag, default=0.0))
                    if emulator is not None:
                        emulator_cpu.append(emulator.cpu_percent())

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            print(f"load: {args.rate:.0f}/s offered for {args.seconds:.0f} s ...", flush=True)
            producer = paced_producer(streams, args.rate, args.seconds, rows)
            # Read outputs while producing, so the reader does not fall behind the retention.
            while producer.running:
                streams.poll()
                time.sleep(1)
            sent_seconds = producer.join()
            drain_start = time.monotonic()
            backlog = 0
            try:
                streams.wait_for(list(streams.sent), timeout=args.drain_seconds)
            except AssertionError:
                backlog = len(set(streams.sent) - streams.outputs_by_position().keys())
            drain_seconds = time.monotonic() - drain_start
            stop.set()
            watcher.join()
            sampler.stop()
    lat = latencies_ms(streams)
    arrivals = [o["_arrival_ms"] for o in streams.outputs]
    out_rate = len(arrivals) / max((max(arrivals) - min(arrivals)) / 1000, 1e-9)
    in_rate = len(producer.sent) / sent_seconds
    usage = sampler.summary()
    dup = sum(streams.duplicates().values())
    lines = [
        f"sustained load: offered {args.rate:.0f} records/s for {args.seconds:.0f} s, 4 shards",
        f"  baseline      kinesis-local alone accepts {capacity:,.0f} records/s "
        "(one PutRecords client, nothing else running)",
        f"  into stream   {len(producer.sent)} records in {sent_seconds:.0f} s "
        f"({in_rate:,.0f}/s: what the emulator took while also serving the consumer)",
        f"  outputs       {len(streams.outputs)} ({out_rate:,.0f}/s from first to last), "
        f"duplicates {dup}, drain after the last put {drain_seconds:.1f} s, "
        f"still in backlog {backlog}",
        f"  put->pred     p50 {percentile(lat, 50) / 1000:.2f} s, "
        f"p90 {percentile(lat, 90) / 1000:.2f} s, p99 {percentile(lat, 99) / 1000:.2f} s, "
        f"max {max(lat) / 1000:.2f} s",
    ]
    if lag_samples:
        lines.append(
            f"  lag           mean {statistics.fmean(lag_samples):.1f} s, "
            f"max {max(lag_samples):.1f} s behind latest (millisBehindLatest, worst shard)"
        )
    for name, figures in usage.items():
        cpu, rss, pss = figures.cpu_mean_pct, figures.rss_max_each_mb, figures.pss_max_each_mb
        lines.append(
            f"  {name:<13} CPU {'n/a' if cpu is None else f'{cpu:.1f}':>6} % (its processes "
            f"together), RSS max {'n/a' if rss is None else f'{rss:.0f}'} MB, PSS max "
            f"{'n/a' if pss is None else f'{pss:.0f}'} MB per process"
        )
    if emulator_cpu:
        lines.append(
            f"  kinesis-local CPU {statistics.fmean(emulator_cpu):>6.1f} % mean "
            f"(100 % = one core; it runs on one)"
        )
    kept_up = out_rate >= 0.95 * in_rate and backlog == 0
    lines.append(
        f"  the consumer {'kept up with' if kept_up else 'fell behind'} what reached the "
        f"stream; offered {args.rate:.0f}/s "
        f"{'reached' if in_rate >= 0.95 * args.rate else 'did not reach'} the stream"
    )
    print("\n" + "\n".join(lines))
    # Throughput is reported, not judged (the emulator sets the ceiling here); the memory goal
    # per shard processor is judged as in stream_latency.py, and every usage figure printed
    # above must rest on samples.
    verdicts = usage_verdicts(usage, expected_processors=4, rss_goal_mb=PROCESSOR_RSS_GOAL_MB)
    print(report(verdicts))
    return 1 if failures(verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
