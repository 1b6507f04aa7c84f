"""put->prediction latency at 200 records/s over 4 shards on the embedded stack, and the RSS of
each shard processor, with the KCL's default polling as the baseline in the same run.

Two consumer applications run one after the other on the same stack: the baseline with the
KCL's default `idleTimeBetweenReadsInMillis` (1000 ms), then the project's tuned setting
(KCL_IDLE_TIME_BETWEEN_READS_MS, 250 ms by default). Each gets the same load after it is ready.

    python -m benchmarks.stream_latency [--rate 200] [--seconds 60]

Goals (issue 3): p50 <= 1 s, p99 <= 2.5 s; RSS per shard processor <= 350 MB.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks.stream_harness import (
    ProcessSampler,
    embedded_stack,
    latencies_ms,
    new_streams,
    paced_producer,
    percentile,
    running_consumer,
    uci_rows,
)

GOAL_P50_MS = 1000
GOAL_P99_MS = 2500
GOAL_RSS_MB = 350
KCL_DEFAULT_IDLE_MS = 1000


def measure(stack, tag: str, idle_ms: int, rate: float, seconds: float, rows) -> dict:
    streams = new_streams(stack, tag)
    env = {"KCL_IDLE_TIME_BETWEEN_READS_MS": str(idle_ms)}
    with running_consumer(stack, streams, env) as consumer:
        sampler = ProcessSampler(consumer.proc.pid)
        producer = paced_producer(streams, rate, seconds, rows)
        producer.join()
        streams.wait_for(list(streams.sent), timeout=120)
        sampler.stop()
    lat = latencies_ms(streams)
    usage = sampler.summary()
    return {
        "setting": f"idleTimeBetweenReadsInMillis={idle_ms}",
        "records": len(lat),
        "p50_ms": percentile(lat, 50),
        "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat),
        "processor_rss_max_mb": usage["processor"]["rss_max_each_mb"],
        "processor_cpu_pct": usage["processor"]["cpu_mean_pct"],
        "kcl_rss_mb": usage["kcl"]["rss_max_each_mb"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tuned-idle-ms", type=int, default=250)
    args = parser.parse_args()
    rows = uci_rows()
    began = time.monotonic()
    with embedded_stack() as stack:
        print(f"baseline: KCL default polling, {args.rate:.0f}/s for {args.seconds:.0f} s ...")
        baseline = measure(stack, "base", KCL_DEFAULT_IDLE_MS, args.rate, args.seconds, rows)
        print(f"tuned: {args.tuned_idle_ms} ms polling, same load ...")
        tuned = measure(stack, "tuned", args.tuned_idle_ms, args.rate, args.seconds, rows)

    print()
    print(f"put->prediction latency at {args.rate:.0f} records/s over 4 shards (embedded stack)")
    header = f"{'run':<38}{'records':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    header += f"{'proc RSS MB':>13}{'proc CPU %':>12}"
    print(header)
    for name, r in (("baseline (KCL default polling)", baseline), ("tuned", tuned)):
        print(
            f"{name + ' ' + r['setting'].split('=')[1] + ' ms':<38}{r['records']:>8}"
            f"{r['p50_ms']:>9.0f}{r['p90_ms']:>9.0f}{r['p99_ms']:>9.0f}{r['max_ms']:>9.0f}"
            f"{r['processor_rss_max_mb']:>13.0f}{r['processor_cpu_pct']:>12.1f}"
        )
    ok = (
        tuned["p50_ms"] <= GOAL_P50_MS
        and tuned["p99_ms"] <= GOAL_P99_MS
        and tuned["processor_rss_max_mb"] <= GOAL_RSS_MB
    )
    print(
        f"goals: p50 <= {GOAL_P50_MS} ms, p99 <= {GOAL_P99_MS} ms, RSS per shard processor "
        f"<= {GOAL_RSS_MB} MB -> {'MET' if ok else 'MISSED'}; KCL daemon RSS "
        f"{tuned['kcl_rss_mb']:.0f} MB; wall time {time.monotonic() - began:.0f} s"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
