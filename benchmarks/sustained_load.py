"""Sustained load on the embedded stack: records/s in, outputs/s out, lag, put->prediction
latency percentiles, CPU and RSS of the consumer's processes (issue 5, scenario 7).

The offered rate is the baseline: the consumer keeps up when outputs/s matches it and the lag
(millisBehindLatest) stays bounded. Everything (Kinesis emulator, KCL daemon, four shard
processors, producer, this reader) shares the machine, so the figures are the whole system's on
it, not the consumer's ceiling.

    python benchmarks/sustained_load.py [--rate 2000] [--seconds 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

from stream_harness import (
    ProcessSampler,
    Producer,
    embedded_stack,
    latencies_ms,
    new_streams,
    percentile,
    running_consumer,
    uci_rows,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=300.0)
    args = parser.parse_args()
    rows = uci_rows()
    lag_samples: list[float] = []
    with embedded_stack() as stack:
        streams = new_streams(stack, "load")
        with running_consumer(stack, streams) as consumer:
            sampler = ProcessSampler(consumer.proc.pid, interval=2.0).start()
            stop = threading.Event()

            def watch_lag() -> None:
                while not stop.wait(5):
                    lag = [
                        value
                        for key, value in consumer.metrics().items()
                        if key.startswith("dropout_consumer_behind_latest_seconds")
                    ]
                    lag_samples.append(max(lag, default=0.0))

            watcher = threading.Thread(target=watch_lag, daemon=True)
            watcher.start()
            producer = Producer(streams, args.rate, args.seconds, rows).start()
            # Read outputs while producing, so the reader does not fall behind the retention.
            while producer._thread is not None and producer._thread.is_alive():
                streams.poll()
                time.sleep(1)
            sent_seconds = producer.join()
            drain_start = time.monotonic()
            streams.wait_for(list(streams.sent), timeout=600)
            drain_seconds = time.monotonic() - drain_start
            stop.set()
            watcher.join()
            sampler.stop()
    lat = latencies_ms(streams)
    first = min(o["_arrival_ms"] for o in streams.outputs)
    last = max(o["_arrival_ms"] for o in streams.outputs)
    out_rate = len(streams.outputs) / max((last - first) / 1000, 1e-9)
    usage = sampler.summary()
    dup = sum(streams.duplicates().values())
    lines = [
        f"sustained load: offered {args.rate:.0f} records/s for {args.seconds:.0f} s, 4 shards",
        f"  sent          {producer.sent} records in {sent_seconds:.0f} s "
        f"({producer.sent / sent_seconds:,.0f}/s achieved by the producer)",
        f"  outputs       {len(streams.outputs)} ({out_rate:,.0f}/s), duplicates {dup}, "
        f"drain after the last put {drain_seconds:.1f} s",
        f"  put->pred     p50 {percentile(lat, 50) / 1000:.2f} s, "
        f"p90 {percentile(lat, 90) / 1000:.2f} s, p99 {percentile(lat, 99) / 1000:.2f} s, "
        f"max {max(lat) / 1000:.2f} s",
    ]
    if lag_samples:
        lines.append(
            f"  lag           mean {statistics.fmean(lag_samples):.1f} s, "
            f"max {max(lag_samples):.1f} s behind latest"
        )
    for name, values in usage.items():
        lines.append(
            f"  {name:<13} CPU {values['cpu_mean_pct']:>6.1f} % (its processes together), "
            f"RSS max {values['rss_max_each_mb']:.0f} MB per process"
        )
    kept_up = out_rate >= 0.95 * args.rate
    lines.append(
        f"  baseline: the offered rate, {args.rate:.0f}/s; the consumer "
        f"{'kept up' if kept_up else 'did not keep up'}"
    )
    print("\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
