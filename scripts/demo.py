"""`make demo`: the whole product end to end on the embedded stack, then a clean teardown.

Starts kinesis-local, moto (DynamoDB) and an MLflow server, trains `--quick` and promotes the
model to @champion, starts the consumer service (real KCL daemon) and Prometheus, replays a few
hundred students (a few of them malformed), waits until every one has an output, prints the
highest-risk students with their reasons, the dead letters and a metrics summary. Then "a term
later" (docs/learning-loop.md): outcomes for most replayed students arrive (their true UCI
targets), the monitor prints realized against held-out and estimated quality of v1, a
retraining learns from UCI plus the captured students, the gate decides on them, and when it
promotes, the running consumer hot-reloads v2 and the demo shows predictions from v2. Last, it
stops everything it started.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from common.attributes import SEED_RECORD
from devstack.processes import ManagedProcess
from devstack.services import (
    FAKE_AWS_ENV,
    base_services,
    consumer_env,
    consumer_service,
    http_ok,
    prometheus_server,
    pushgateway_server,
    training_env,
)
from devstack.settings import REPO_ROOT, StackSettings
from devstack.streams import create_streams

# Wide enough for the factor column when the output is not a terminal (CI logs, pipes).
console = Console(width=None if sys.stdout.isatty() else 160)
STUDENTS = int(os.environ.get("DEMO_STUDENTS", "400"))
RATE = float(os.environ.get("DEMO_RATE", "100"))
MALFORMED_SHARE = 0.05
# "A term later": the date the registrar decides outcomes, and the loop's commands run as of.
TERM_LATER = datetime.now(tz=UTC).date() + timedelta(days=120)
OUTCOME_SHARE = 0.85  # the rest are still pending: the monitor estimates them (CBPE)
LATER_STUDENTS = 60
SHARED_COPY = REPO_ROOT.parent / "shared" / "data" / "students_dropout_academic_success.csv"


# The record producers already send (docs/wire-formats.md); it must score.
SEED_SAMPLE = {"student_id": 256, "student_features": dict(SEED_RECORD)}


def wait_ready(settings: StackSettings, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not http_ok(f"{settings.metrics_url}/readyz"):
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: the consumer is not ready after {timeout:.0f} s")
        time.sleep(1)


def data_args() -> list[str]:
    """The data file to train on: DATA_PATH, a shared offline copy beside the repo, or none
    (then the training job downloads the official UCI archive and checks its sha256)."""
    if os.environ.get("DATA_PATH"):
        return ["--data", os.environ["DATA_PATH"]]
    if SHARED_COPY.is_file():
        return ["--data", str(SHARED_COPY)]
    return []


def step(text: str) -> None:
    console.rule(f"[bold]{text}")


def ports_free(settings: StackSettings) -> None:
    busy = [
        (name, url)
        for name, url in {
            "kinesis": settings.kinesis_url,
            "dynamodb": settings.dynamodb_url,
            "mlflow": settings.mlflow_url,
            "metrics": settings.metrics_url,
            "prometheus": f"http://{settings.host}:{settings.prometheus_port}",
            "pushgateway": settings.pushgateway_url,
        }.items()
        if _answers(url)
    ]
    if busy:
        names = ", ".join(f"{n} ({u})" for n, u in busy)
        raise SystemExit(
            f"demo: something already listens on {names}; stop it (`make stack-down`) or set "
            "KINESIS_PORT / DYNAMODB_PORT / MLFLOW_PORT / METRICS_PORT / PROMETHEUS_PORT / "
            "PUSHGATEWAY_PORT"
        )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback)
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def run(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(args, cwd=REPO_ROOT, env={**os.environ, **env}, check=False)
    if result.returncode != 0:
        raise SystemExit(f"demo: `{' '.join(args[1:])}` failed with exit code {result.returncode}")


def wait_for_outputs(env: dict[str, str], expected: int, timeout: float) -> list[Any]:
    """Reads both output streams until there is one output per record sent."""
    from consumer.config import ConsumerSettings
    from consumer.tools.reader import read_stream

    os.environ.update(env)
    settings = ConsumerSettings()
    deadline = time.monotonic() + timeout
    while True:
        outputs = read_stream(settings, settings.predictions_stream, 1.0) + read_stream(
            settings, settings.dead_letter_stream, 1.0
        )
        console.print(f"  outputs so far: {len(outputs)} of {expected}")
        if len(outputs) >= expected or time.monotonic() > deadline:
            return outputs
        time.sleep(3)


def prometheus_query(settings: StackSettings, query: str) -> float | None:
    url = (
        f"http://{settings.host}:{settings.prometheus_port}/api/v1/query?"
        + urllib.parse.urlencode({"query": query})
    )
    with urllib.request.urlopen(url, timeout=5) as response:
        result = orjson.loads(response.read())["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def write_outcomes(outputs: list[Any], data_file: Path, path: Path) -> tuple[int, int]:
    """The registrar's export: the true UCI target of most students who got a prediction."""
    with data_file.open(encoding="utf-8-sig", newline="") as handle:
        targets = [row["Target"] for row in csv.DictReader(handle, delimiter=";")]
    students = sorted(
        {int(o["student_id"]) for o in outputs if o.get("schema") == "dropout.prediction.v1"}
    )
    rng = random.Random(7)  # noqa: S311 (choosing students, not secrets)
    decided = sorted(rng.sample(students, int(len(students) * OUTCOME_SHARE)))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", "outcome", "decision_date", "source"])
        for student in decided:
            writer.writerow([student, targets[student], TERM_LATER.isoformat(), "registrar"])
    return len(decided), len(students) - len(decided)


def served_version(settings: StackSettings) -> str | None:
    try:
        url = f"{settings.metrics_url}/readyz"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
            versions = {
                str(p["model_version"]) for p in orjson.loads(response.read())["processors"]
            }
    except (OSError, KeyError, ValueError):
        return None
    return versions.pop() if len(versions) == 1 else None


def wait_serving(settings: StackSettings, version: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while served_version(settings) != version:
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: the consumer did not hot-reload v{version} in {timeout:.0f} s")
        time.sleep(1)


def metrics_summary(settings: StackSettings) -> Table:
    queries = {
        "records received": "sum(dropout_consumer_records_received_total)",
        "predictions: at risk": 'sum(dropout_consumer_predictions_total{decision="at_risk"})',
        "predictions: not at risk": (
            'sum(dropout_consumer_predictions_total{decision="not_at_risk"})'
        ),
        "dead letters": "sum(dropout_consumer_dead_letters_total)",
        "checkpoints (success)": 'sum(dropout_consumer_checkpoints_total{outcome="success"})',
        "scoring p50 per batch (s)": (
            "histogram_quantile(0.5, sum by (le) "
            "(rate(dropout_consumer_scoring_duration_seconds_bucket[5m])))"
        ),
        "put->publish p50 (s)": (
            "histogram_quantile(0.5, sum by (le) "
            "(rate(dropout_consumer_record_age_seconds_bucket[5m])))"
        ),
        "put->publish p99 (s)": (
            "histogram_quantile(0.99, sum by (le) "
            "(rate(dropout_consumer_record_age_seconds_bucket[5m])))"
        ),
        "shards with a ready processor": "sum(dropout_consumer_processor_ready)",
    }
    table = Table(title="Metrics, as Prometheus scraped them from the consumer")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for label, query in queries.items():
        value = prometheus_query(settings, query)
        table.add_row(
            label, "no data" if value is None else f"{value:,.3f}".rstrip("0").rstrip(".")
        )
    return table


def main() -> int:
    settings = StackSettings(stack_dir=REPO_ROOT / ".stack" / "demo")
    ports_free(settings)
    # Every demo starts from nothing: no registry, streams, leases or metrics of an earlier one.
    shutil.rmtree(settings.stack_dir, ignore_errors=True)
    started: list[ManagedProcess] = []

    def start(spec: Any) -> ManagedProcess:
        began = time.monotonic()
        proc = ManagedProcess(spec, settings.logs_dir, settings.pids_dir).start()
        started.append(proc)
        console.print(f"  {spec.name} ready in {time.monotonic() - began:.1f} s")
        return proc

    env = {
        **FAKE_AWS_ENV,
        **consumer_env(settings),
        **training_env(settings),
        "MONITOR_BOOTSTRAP": "300",
        "LOOP_TODAY": TERM_LATER.isoformat(),
    }
    try:
        step("1/9 embedded stack: kinesis-local, moto (DynamoDB), MLflow server")
        for spec in base_services(settings):
            start(spec)
        create_streams(settings)

        step("2/9 training --quick, registering, gating and promoting to @champion")
        run([sys.executable, "-m", "training", "train", "--quick", *data_args()], env)

        console.print("  the seed's sample record, scored offline by the champion:")
        sample = settings.stack_dir / "seed-sample.jsonl"
        sample.write_bytes(orjson.dumps(SEED_SAMPLE) + b"\n")
        run([sys.executable, "-m", "consumer", "score", "--input", str(sample)], env)

        step(
            "3/9 consumer service (KCL MultiLangDaemon + shard processors), Prometheus, Pushgateway"
        )
        # The demo's consumer notices a new champion within seconds, not the default 30 s.
        consumer = start(consumer_service(settings, extra_env={"MODEL_POLL_INTERVAL_SECONDS": "3"}))
        start(pushgateway_server(settings))
        start(prometheus_server(settings, [f"{settings.host}:{settings.metrics_port}"]))
        console.print("  waiting for the KCL to take its leases (about 40 s on a fresh stream)")
        wait_ready(settings, timeout=180)

        step(f"4/9 replaying {STUDENTS} students at {RATE:.0f}/s ({MALFORMED_SHARE:.0%} malformed)")
        run(
            [
                sys.executable, "-m", "consumer", "replay", "--count", str(STUDENTS),
                "--rate", str(RATE), "--malformed-share", str(MALFORMED_SHARE),
                *data_args(),
            ],
            env,
        )  # fmt: skip
        outputs = wait_for_outputs(env, STUDENTS, timeout=240)
        if len(outputs) < STUDENTS:
            raise SystemExit(f"demo: only {len(outputs)} of {STUDENTS} records have an output")

        step("5/9 highest-risk students and dead letters")
        from consumer.tools.reader import dead_letters_table, predictions_table

        console.print(predictions_table(outputs, 10))
        letters = [o for o in outputs if o.get("schema") == "dropout.dead_letter.v1"]
        console.print(dead_letters_table(letters))

        step("6/9 metrics summary")
        time.sleep(5)  # two scrape intervals, so Prometheus has the final counts
        console.print(metrics_summary(settings))
        if not http_ok(f"{settings.metrics_url}/readyz"):
            console.print("[yellow]consumer /readyz is not 200 at the end of the demo")
        assert consumer.alive()
        console.print(f"  {STUDENTS} students in, {STUDENTS} outputs out, every batch captured")

        step(f"7/9 a term later ({TERM_LATER}): outcomes arrive, the monitor measures v1")
        from consumer.tools.producer import resolve_data_path

        data_file = Path(data_args()[1]) if data_args() else resolve_data_path(None)
        registrar = settings.stack_dir / "registrar-outcomes.csv"
        decided, pending = write_outcomes(outputs, data_file, registrar)
        console.print(f"  the registrar decided {decided} students; {pending} are still pending")
        run([sys.executable, "-m", "training", "outcomes", "import", str(registrar)], env)
        run([sys.executable, "-m", "training", "monitor"], env)
        time.sleep(5)  # two scrape intervals: Prometheus reads the pushed figures
        realized = prometheus_query(
            settings, 'dropout_loop_roc_auc{kind="realized",stage="all",version="1"}'
        )
        console.print(
            "  Prometheus (through the Pushgateway): realized ROC-AUC of v1 = "
            + ("no data" if realized is None else f"{realized:.3f}")
        )

        step("8/9 retraining on UCI plus the captured students, behind the gate")
        summaries = settings.stack_dir / "runs"
        loop_env = {**env, "RUN_SUMMARY_URI": str(summaries)}
        run([sys.executable, "-m", "training", "dataset", "build"], loop_env)
        dataset = orjson.loads((summaries / "dataset.json").read_bytes())
        uci = data_args()[1] if data_args() else "uci"
        run(
            [sys.executable, "-m", "training", "train", "--quick", "--data", uci,
             "--data", dataset["uri"]],
            loop_env,
        )  # fmt: skip
        trained = orjson.loads((summaries / "train.json").read_bytes())

        step("9/9 the consumer after the gate's decision")
        if trained["decision"] == "promoted":
            version = str(trained["version"])
            wait_serving(settings, version, timeout=60)
            console.print(f"  the running consumer hot-reloaded v{version}; {LATER_STUDENTS} new")
            run(
                [sys.executable, "-m", "consumer", "replay", "--count", str(LATER_STUDENTS),
                 "--rate", str(RATE), "--malformed-share", "0", "--seed", "99", *data_args()],
                env,
            )  # fmt: skip
            later = wait_for_outputs(env, STUDENTS + LATER_STUDENTS, timeout=120)
            from_v2 = [o for o in later if o.get("model", {}).get("version") == version]
            console.print(predictions_table(from_v2, 5))
            if not from_v2:
                raise SystemExit(f"demo: no prediction from v{version} after the reload")
        else:
            console.print(
                f"  v{trained['version']} refused: {escape(trained['reason'])}; "
                f"v{trained['champion_version_before']} keeps serving"
            )
        console.print(
            f"[green]demo done: {STUDENTS} students scored and captured, outcomes imported, "
            f"v1 measured, v{trained['version']} {trained['decision']}. Logs: "
            f"{settings.logs_dir}"
        )
        return 0
    finally:
        step("teardown")
        for proc in reversed(started):
            proc.stop()
        console.print("  everything the demo started is stopped")


if __name__ == "__main__":
    sys.exit(main())
