"""The learning loop on real parts: the KCL consumer captures what it scored into S3 (moto's
S3 API), a replay of every batch by a second KCL application captures it all again, outcomes
come back through `python -m training outcomes import`, and `python -m training monitor`
measures the live model. Its figures must equal an independent scikit-learn computation on
the same join, read straight from the bucket, and no student may count twice.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, f1_score, roc_auc_score

from common.attributes import ATTRIBUTES
from consumer.tools.producer import read_rows
from devstack.consumers import ConsumerHandle
from devstack.kcl_tables import wait_checkpointed
from devstack.services import FAKE_AWS_ENV, stack_client
from devstack.settings import REPO_ROOT, StackSettings
from devstack.streaming import Position, Streams
from tests.training.helpers import run_cli

pytestmark = [pytest.mark.integration]

STUDENTS = 300
EARLY = 120  # of them also scored at enrollment (the record a new student sends)
MALFORMED = 12
# "A term later": outcomes are decided after every prediction of this test was made.
AS_OF = datetime.now(tz=UTC).date() + timedelta(days=120)


@pytest.fixture(scope="module")
def uci(uci_data_path: Path) -> pd.DataFrame:
    return pd.read_csv(uci_data_path, sep=";", encoding="utf-8-sig")


@pytest.fixture(scope="module")
def streams(own_model_streams: Callable[[str, int], Streams]) -> Streams:
    return own_model_streams("loop", 2)


def _enrollment_only(row: dict[str, Any]) -> dict[str, Any]:
    keep = {a.name for a in ATTRIBUTES if a.stage == "enrollment"}
    return {name: value for name, value in row.items() if name in keep}


def _events(rows: list[dict[str, float]], students: list[int]) -> list[tuple[str, bytes]]:
    sent: list[tuple[str, bytes]] = []
    for index in students[:EARLY]:  # first the enrollment record, then the full one
        row = _enrollment_only(rows[index])
        sent.append((str(index), orjson.dumps({"student_id": index, "student_features": row})))
    for index in students:
        row = rows[index]
        sent.append((str(index), orjson.dumps({"student_id": index, "student_features": row})))
    for n in range(MALFORMED):
        sent.append((f"bad-{n}", b'{"student_id": "x", "student_features": 7}'))
    return sent


def _training(stack: StackSettings, streams: Streams, *args: str, summary: Path) -> str:
    env = {
        **FAKE_AWS_ENV,
        "MLFLOW_TRACKING_URI": stack.mlflow_url,
        "MODEL_NAME": streams.settings.model_name,
        "LOOP_URI": streams.settings.loop_uri,
        "LOOP_S3_ENDPOINT_URL": stack.dynamodb_url,
        "RUN_SUMMARY_URI": str(summary),
        "PUSHGATEWAY_URL": "",
        "MONITOR_BOOTSTRAP": "50",
        "LOG_FORMAT": "json",
    }
    result = run_cli(*args, env=env, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _captured_lines(stack: StackSettings, streams: Streams) -> list[dict[str, Any]]:
    """Every capture line in the bucket, read without the project's reader."""
    s3 = stack_client(stack, "s3")
    bucket, _, prefix = streams.settings.loop_uri.removeprefix("s3://").partition("/")
    lines: list[dict[str, Any]] = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}captures/")
    for page in pages:
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            lines += [orjson.loads(line) for line in gzip.decompress(body).splitlines() if line]
    return lines


def _independent_join(lines: list[dict[str, Any]], truth: dict[int, str]) -> pd.DataFrame:
    """docs/learning-loop.md's rule, written again: predictions only, one per source position,
    each student's last prediction per stage before the decision date."""
    rows = {}
    for line in lines:
        if line["outcome"] != "prediction":
            continue
        source = line["source"]
        position = (
            source["shard_id"],
            int(source["sequence_number"]),
            source["sub_sequence_number"],
        )
        rows[position] = {
            "student_id": int(line["student_id"]),
            "stage": line["prediction"]["stage"],
            "version": line["model"]["version"],
            "scored_at": line["scored_at"],
            "position": position,
            "probability": line["prediction"]["dropout_probability"],
            "at_risk": line["prediction"]["at_risk"],
        }
    frame = pd.DataFrame(rows.values()).sort_values(["scored_at", "position"])
    last = frame.groupby(["student_id", "stage"]).tail(1)
    last = last[last["student_id"].isin(list(truth))].copy()
    last["y_true"] = [int(truth[s] == "Dropout") for s in last["student_id"]]
    return last


def test_capture_outcomes_and_monitor(
    stack: StackSettings,
    streams: Streams,
    start_consumer: Callable[..., ConsumerHandle],
    uci: pd.DataFrame,
    uci_data_path: Path,
    tmp_path: Path,
) -> None:
    students = random.Random(5).sample(range(len(uci)), STUDENTS)
    sent = _events(read_rows(uci_data_path), students)

    first = start_consumer(streams, worker="capture-a")
    positions: list[Position] = streams.put(sent)
    wait_checkpointed(streams.settings, positions, timeout=240)
    assert first.metric_sum("dropout_consumer_captured_records_total") >= len(sent)
    first.proc.stop()

    # A replay of every batch: a second KCL application reads the stream from its start and
    # captures all of it again, in smaller batches (other boundaries, so other object keys:
    # the reader, not the key, must drop the copies).
    replay = Streams(
        streams.settings.model_copy(
            update={"kcl_application_name": f"{streams.settings.kcl_application_name}-replay"}
        )
    )
    second = start_consumer(replay, worker="capture-b", env={"KCL_MAX_RECORDS": "37"})
    wait_checkpointed(replay.settings, positions, timeout=240)
    assert second.metric_sum("dropout_consumer_captured_records_total") >= len(sent)
    second.proc.stop()

    lines = _captured_lines(stack, streams)
    mine = {(p[0], int(p[1]), p[2] or 0) for p in positions}
    by_position: dict[tuple[str, int, int], int] = {}
    for line in lines:
        s = line["source"]
        key = (s["shard_id"], int(s["sequence_number"]), s["sub_sequence_number"])
        by_position[key] = by_position.get(key, 0) + 1
    assert set(by_position) == mine, "every record sent is captured, and nothing else"
    assert min(by_position.values()) >= 2, "the replay captured every record again"
    dead = [line for line in lines if line["outcome"] == "dead_letter"]
    assert len(dead) >= 2 * MALFORMED
    assert all(line["dead_letter"]["reason"] for line in dead)
    predictions = [line for line in lines if line["outcome"] == "prediction"]
    assert {line["prediction"]["stage"] for line in predictions} == {
        "enrollment",
        "second_semester",
    }
    assert all(line["attributes"] for line in predictions)

    # Outcomes a term later: the true UCI target of each student, and three bad rows.
    truth = {s: str(uci["Target"].iloc[s]) for s in students}
    outcomes = tmp_path / "registrar.csv"
    with outcomes.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", "outcome", "decision_date", "source"])
        for student, outcome in truth.items():
            writer.writerow([student, outcome, AS_OF.isoformat(), "registrar"])
        writer.writerow([999999, "Expelled", AS_OF.isoformat(), "registrar"])
        writer.writerow(["", "Dropout", AS_OF.isoformat(), "registrar"])
        writer.writerow([1, "Dropout", (AS_OF + timedelta(days=3)).isoformat(), "registrar"])
    summaries = tmp_path / "runs"
    printed = _training(
        stack,
        streams,
        "outcomes",
        "import",
        str(outcomes),
        "--as-of",
        AS_OF.isoformat(),
        summary=summaries,
    )
    assert f"{STUDENTS} of {STUDENTS + 3} rows imported" in printed
    assert "3 rejected" in printed

    _training(stack, streams, "monitor", "--as-of", AS_OF.isoformat(), summary=summaries)
    summary = orjson.loads((summaries / "monitor.json").read_bytes())

    joined = _independent_join(lines, truth)
    assert len(joined) == STUDENTS + EARLY, "one row per student and stage, replay or not"
    [version] = set(joined["version"])
    assert summary["champion_version"] == version
    counts = summary["counts"]
    assert counts["capture_records"] == len(mine)
    assert counts["duplicates"] == len(lines) - len(mine)
    assert counts["dead_letters"] == MALFORMED
    assert counts["students_joined"] == STUDENTS
    realized = summary["versions"][version]["realized"]
    assert realized["count"] == len(joined)
    y, p, d = joined["y_true"].to_numpy(), joined["probability"].to_numpy(), joined["at_risk"]
    assert realized["roc_auc"]["value"] == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert realized["brier"]["value"] == pytest.approx(brier_score_loss(y, p), abs=1e-9)
    assert realized["f1"]["value"] == pytest.approx(f1_score(y, d.to_numpy(bool)), abs=1e-9)
    assert realized["flag_rate"]["value"] == pytest.approx(float(np.mean(d)), abs=1e-9)
    assert realized["roc_auc"]["low"] <= realized["roc_auc"]["value"] <= realized["roc_auc"]["high"]
    held_out = summary["versions"][version]["held_out"]["roc_auc"]
    assert 0.5 < held_out < 1
    assert summary["days_since_last_outcome_import"] is not None

    # The institution's own dataset, then a retraining on UCI plus it.
    _training(stack, streams, "dataset", "build", "--as-of", AS_OF.isoformat(), summary=summaries)
    dataset = orjson.loads((summaries / "dataset.json").read_bytes())
    assert dataset["status"] == "built"
    assert dataset["rows"] == STUDENTS, "one row per student (docs/learning-loop.md's rule)"
    assert dataset["uri"].startswith(streams.settings.loop_uri + "datasets/institution-")

    printed = _training(
        stack,
        streams,
        "train",
        "--quick",
        "--data",
        str(uci_data_path),
        "--data",
        dataset["uri"],
        summary=summaries,
    )
    trained = orjson.loads((summaries / "train.json").read_bytes())
    sources = {s["name"]: s for s in trained["data_sources"]}
    assert set(sources) == {"uci", "institution"}
    assert sources["institution"]["sha256"] == dataset["sha256"]
    assert sources["institution"]["rows"] == STUDENTS
    # The recorded digest is the digest of both sources, not UCI's alone.
    combined = hashlib.sha256(
        f"{sources['uci']['sha256']}\n{dataset['sha256']}".encode()
    ).hexdigest()
    assert trained["data_sha256"] == combined != sources["uci"]["sha256"]
    assert trained["version"] != version
    assert trained["champion_version_before"] == version
    # Both scored on the same held-out rows, per source: a changed model scores differently.
    assert {"source.uci", "source.institution"} <= set(trained["challenger"])
    assert set(trained["challenger"]) == set(trained["champion"])
    assert trained["challenger"] != trained["champion"]
    figure = trained["challenger"]["source.institution"]
    assert f"source.institution {figure:.3f} vs champion" in trained["reason"]
    assert "institution" in printed
