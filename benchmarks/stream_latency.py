"""put->prediction latency at 200 records/s over 4 shards on the embedded stack, and the RSS and
PSS of each shard processor, with the KCL's default polling as the baseline in the same run.

Two consumer applications run one after the other on the same stack: the baseline with the
KCL's default `idleTimeBetweenReadsInMillis` (1000 ms), then the project's tuned setting
(KCL_IDLE_TIME_BETWEEN_READS_MS, 250 ms by default). Each gets the same load after it is ready.

    python -m benchmarks.stream_latency [--rate 200] [--seconds 60]

Goals (issue 3): p50 <= 1 s, p99 <= 2.5 s; RSS per shard processor <= 350 MB. Every printed
figure must rest on samples: one without fails the run (exit 1), whatever the goals say.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks.process_sampler import (
    PROCESSOR,
    ProcessSampler,
    failures,
    report,
    usage_verdicts,
)
from benchmarks.stream_harness import (
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
        assert consumer.proc.pid is not None
        # Sampled while the load runs: the worker's tree from its supervisor down.
        with ProcessSampler(consumer.proc.pid) as sampler:
            producer = paced_producer(streams, rate, seconds, rows)
            producer.join()
            streams.wait_for(list(streams.sent), timeout=120)
    lat = latencies_ms(streams)
    usage = sampler.summary()
    return {
        "usage": usage,
        "setting": f"idleTimeBetweenReadsInMillis={idle_ms}",
        "records": len(lat),
        "p50_ms": percentile(lat, 50),
        "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat),
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
    header += f"{'proc RSS MB':>13}{'proc PSS MB':>13}{'proc CPU %':>12}"
    print(header)

    def num(value: float | None, fmt: str, width: int) -> str:
        return f"{'n/a':>{width}}" if value is None else f"{value:>{width}{fmt}}"

    for name, r in (("baseline (KCL default polling)", baseline), ("tuned", tuned)):
        proc = r["usage"][PROCESSOR]
        print(
            f"{name + ' ' + r['setting'].split('=')[1] + ' ms':<38}{r['records']:>8}"
            f"{r['p50_ms']:>9.0f}{r['p90_ms']:>9.0f}{r['p99_ms']:>9.0f}{r['max_ms']:>9.0f}"
            f"{num(proc.rss_max_each_mb, '.0f', 13)}{num(proc.pss_max_each_mb, '.0f', 13)}"
            f"{num(proc.cpu_mean_pct, '.1f', 12)}"
        )
    latency_ok = tuned["p50_ms"] <= GOAL_P50_MS and tuned["p99_ms"] <= GOAL_P99_MS
    print(
        f"goals: p50 <= {GOAL_P50_MS} ms, p99 <= {GOAL_P99_MS} ms -> "
        f"{'MET' if latency_ok else 'MISSED'}; wall time {time.monotonic() - began:.0f} s"
    )
    failed = []
    for name, r in (("baseline", baseline), ("tuned", tuned)):
        verdicts = usage_verdicts(r["usage"], expected_processors=4, rss_goal_mb=GOAL_RSS_MB)
        print(f"{name}:\n{report(verdicts)}")
        failed += failures(verdicts)
    return 0 if latency_ok and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
