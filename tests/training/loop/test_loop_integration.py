"""The loop against a real S3 API (moto_server on a free loopback port): captures (with a
replayed batch) and outcomes (with bad rows) written to S3, the monitor run, and its realized
figures checked against an independent scikit-learn computation of the same join."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.metrics import brier_score_loss, f1_score, roc_auc_score

from common.object_store import S3Store, open_store
from tests.support.processes import stop_process_group
from tests.training.loop.helpers import at, outcome_csv, prediction_line, put_batch
from training.loop.monitor import monitor
from training.loop.outcomes import import_outcomes

pytestmark = pytest.mark.integration

BUCKET = "loop-test"
PREFIX = "institution-a/"
TODAY = date(2026, 12, 15)
STARTUP_SECONDS = 30.0
STAGES = ("enrollment", "first_semester", "second_semester")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server from this interpreter's environment, on loopback only."""
    binary = Path(sys.executable).parent / "moto_server"
    if not binary.is_file():
        pytest.fail(f"moto_server is not installed beside {sys.executable}")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with (
        pytest.MonkeyPatch.context() as env,
        log_path.open("w") as log,
    ):
        # Fixed fake credentials; no profile or config of the machine is read.
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_CONFIG_FILE", os.devnull)
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        process = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_up(url, process, log_path)
            yield url
        finally:
            stop_process_group(process, timeout=10)


def _wait_up(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"moto_server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    pytest.fail(
        f"moto_server did not answer on {url} in {STARTUP_SECONDS}s:\n{log_path.read_text()}"
    )


@dataclass(frozen=True)
class Scored:
    student: str
    stage: str
    version: str
    scored_at: datetime
    probability: float
    at_risk: bool


@dataclass(frozen=True)
class World:
    store: S3Store
    scored: list[Scored]  # every original prediction (replays excluded)
    decisions: dict[str, tuple[str, datetime]]  # student -> (outcome, decision midnight UTC)
    import_summary: Any


def _lines(rng: np.random.Generator) -> tuple[list[dict[str, Any]], list[Scored], dict[str, float]]:
    lines, scored, risk = [], [], {}
    sequence = 0
    for student in range(1, 401):
        risk[str(student)] = float(rng.beta(2, 3))
        for number, stage in enumerate(STAGES):
            if stage == "second_semester" and student % 3:
                continue  # only some reach the second semester before the data ends
            for repeat in range(1 + (student % 5 == 0)):  # some are scored twice at a stage
                sequence += 1
                day = date(2026, 9, 1) + timedelta(days=40 * number + 7 * repeat + student % 30)
                version = "2" if day < date(2026, 10, 20) else "3"
                noise = float(rng.normal(0, 0.08))
                p = round(min(max(risk[str(student)] + noise, 0.001), 0.999), 6)
                when = at(day.isoformat(), hour=8 + student % 10)
                lines.append(
                    prediction_line(
                        student,
                        sequence=sequence,
                        scored_at=when,
                        probability=p,
                        threshold=0.41,
                        stage=stage,
                        version=version,
                    )
                )
                scored.append(Scored(str(student), stage, version, when, p, p >= 0.41))
    lines.sort(key=lambda line: line["scored_at"])
    return lines, scored, risk


@pytest.fixture(scope="module")
def world(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=BUCKET)
    store = open_store(f"s3://{BUCKET}/{PREFIX}", endpoint_url=s3_endpoint)
    assert isinstance(store, S3Store)
    rng = np.random.default_rng(2026)
    lines, scored, risk = _lines(rng)
    for start in range(0, len(lines), 50):
        put_batch(store, lines[start : start + 50])
    # A replay after a restart: the same records (same source positions), other boundaries,
    # scored again later by the newer version. None of them may count twice.
    replay = []
    for line in lines[120:260]:
        later = datetime.fromisoformat(line["scored_at"]) + timedelta(hours=2)
        replay.append(
            {
                **line,
                "scored_at": later.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "model": {"name": line["model"]["name"], "version": "3"},
            }
        )
    for start in range(0, len(replay), 33):
        put_batch(store, replay[start : start + 33])

    decisions: dict[str, tuple[str, datetime]] = {}
    rows = []
    for student in range(1, 301):  # 301..400 stay pending
        sid = str(student)
        label = "Dropout" if rng.random() < risk[sid] else rng.choice(["Graduate", "Enrolled"])
        day = "2026-11-10" if student % 4 == 0 else "2026-12-01"
        rows.append((student, label, day, "registrar-2026-T1"))
        decisions[sid] = (str(label), datetime.fromisoformat(day).replace(tzinfo=UTC))
    bad = [
        (401, "Expelled", "2026-11-01", "r"),
        (402, "Dropout", "2027-01-01", "r"),
        (1, "Graduate", "2026-12-01", "dup"),
    ]  # 1: conflicts with its row above
    path = tmp_path_factory.mktemp("exports") / "registrar-2026-T1.csv"
    path.write_bytes(outcome_csv([*rows, *bad]))
    summary = import_outcomes(path, store, today=TODAY)
    decisions.pop("1")  # both rows of the conflicting student are rejected
    return World(store, scored, decisions, summary)


def _independent_join(world: World) -> dict[tuple[str, str], list[tuple[int, float, bool]]]:
    """The join rule, computed directly from what was written."""
    last: dict[tuple[str, str], Scored] = {}
    for s in world.scored:
        if s.student not in world.decisions or s.scored_at >= world.decisions[s.student][1]:
            continue
        key = (s.student, s.stage)
        if key not in last or s.scored_at > last[key].scored_at:
            last[key] = s
    groups: dict[tuple[str, str], list[tuple[int, float, bool]]] = {}
    for (student, stage), s in sorted(
        last.items(), key=lambda kv: (kv[0][0], STAGES.index(kv[0][1]))
    ):
        y = int(world.decisions[student][0] == "Dropout")
        for key in ((s.version, stage), (s.version, "all"), ("all", stage), ("all", "all")):
            groups.setdefault(key, []).append((y, s.probability, s.at_risk))
    return groups


def test_import_reports_bad_rows_and_is_idempotent_on_s3(world: World, tmp_path: Path) -> None:
    summary = world.import_summary
    assert summary.rejected_by_reason == {
        "duplicate_student": 2,
        "future_date": 1,
        "unknown_outcome": 1,
    }
    assert summary.rows_total == 303
    assert summary.rows_valid == 299
    assert world.store.list("outcomes/") == [summary.key]
    again = import_outcomes(Path(summary.file), world.store, today=TODAY)
    assert again.already_imported
    assert world.store.list("outcomes/") == [summary.key]
    stored = [orjson.loads(line) for line in world.store.get(summary.key).splitlines()]
    assert len(stored) == 299


def test_monitor_realized_figures_equal_scikit_learn_on_the_same_join(world: World) -> None:
    report = monitor(
        world.store,
        reference_auc_by_version={"2": 0.87, "3": 0.89},
        today=TODAY,
        n_bootstrap=100,
        seed=7,
    )
    assert report.captures.duplicates == 140
    assert report.captures.records == len(world.scored)
    assert report.captures.problems.total == 0
    expected = _independent_join(world)
    realized = {(r.version, r.stage): r for r in report.realized}
    assert set(realized) == set(expected)
    for key, rows in expected.items():
        y = np.array([r[0] for r in rows])
        p = np.array([r[1] for r in rows])
        d = np.array([r[2] for r in rows])
        got = realized[key]
        assert (got.count, got.positives, got.flagged) == (len(y), y.sum(), d.sum()), key
        assert got.roc_auc.value == roc_auc_score(y, p), key
        assert got.f1.value == f1_score(y, d), key
        assert got.brier.value == brier_score_loss(y, p), key
        assert got.roc_auc.low <= got.roc_auc.value <= got.roc_auc.high
    # Nothing counted twice: one joined row per (student, stage).
    joined = report.joined
    assert not joined.duplicated(["student_id", "stage"]).any()
    assert len(joined) == len(expected[("all", "all")])
    assert report.counts.students_with_outcome == 299
    assert report.counts.students_pending == 101  # 301..400, and 1 whose outcome was refused
    assert report.counts.students_captured == 400
    estimated = {(e.version, e.stage) for e in report.estimated}
    assert ("all", "all") in estimated
    prom = report.to_metrics().prometheus
    assert prom['dropout_loop_roc_auc{kind="realized",stage="all",version="all"}'] == (
        realized[("all", "all")].roc_auc.value
    )
    assert prom['dropout_loop_roc_auc{kind="held_out",stage="all",version="2"}'] == 0.87
    assert report.days_since_last_outcome_import is not None
