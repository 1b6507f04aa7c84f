"""Offline scoring (`python -m consumer score`): one output line per input line, exit codes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from common.exit_codes import ExitCode
from consumer.cli import app
from consumer.scoring.served_model import ServedModel
from consumer.tools.offline import read_records, score_stream
from tests.support.model_builder import BuiltModel, sample_record
from tests.support.paths import REPO_ROOT

LINES = [
    orjson.dumps(sample_record(1)),
    b"",
    b"{not json",
    b"\xff\xfe invalid utf-8",
    orjson.dumps(sample_record(2, GDP="x")),
    b"   ",
    orjson.dumps(sample_record("abc", GDP=-1.0)) + b"\r",  # a CRLF line
    b"[]",
    orjson.dumps(sample_record(3)),  # no newline at the end of the file
]


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(LINES))
    return path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")


def check_output(text: bytes) -> list[dict[str, object]]:
    lines = text.splitlines()
    assert len(lines) == len(LINES)
    outputs = [orjson.loads(line) for line in lines]
    assert [o["source"]["sequence_number"] for o in outputs] == [
        str(n) for n in range(1, len(LINES) + 1)
    ]
    assert {o["source"]["shard_id"] for o in outputs} == {"offline"}
    kinds = [o.get("reason", "prediction") for o in outputs]
    assert kinds == [
        "prediction",
        "invalid_json",
        "invalid_json",
        "invalid_encoding",
        "wrong_type",
        "invalid_json",
        "prediction",
        "not_an_object",
        "prediction",
    ]
    assert outputs[6]["student_id"] == "abc"
    return outputs


def test_score_command_writes_one_line_per_input(
    env: None, input_file: Path, built_model: BuiltModel, tmp_path: Path
) -> None:
    output = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "score",
            "--input",
            str(input_file),
            "--output",
            str(output),
            "--model-uri",
            str(built_model.path),
        ],
    )
    assert result.exit_code == 0, result.output
    outputs = check_output(output.read_bytes())
    assert outputs[3]["payload_base64"] is not None
    summary_line = [line for line in result.stderr.splitlines() if '"summary"' in line][-1]
    summary = orjson.loads(summary_line)["summary"]
    assert summary["records"] == len(LINES)
    assert summary["predictions"] == 3
    assert summary["dead_letters"] == 6
    assert summary["reasons"] == {
        "invalid_encoding": 1,
        "invalid_json": 3,
        "not_an_object": 1,
        "wrong_type": 1,
    }
    assert summary["model"]["version"] == "local"


def test_unreadable_input_exits_3(env: None, tmp_path: Path, built_model: BuiltModel) -> None:
    runner = CliRunner()
    missing = runner.invoke(
        app,
        ["score", "--input", str(tmp_path / "nope.jsonl"), "--model-uri", str(built_model.path)],
    )
    assert missing.exit_code == ExitCode.DATA
    assert "cannot read input" in missing.stderr
    directory = runner.invoke(app, ["score", "--input", str(tmp_path)])
    assert directory.exit_code == ExitCode.DATA


def test_no_model_exits_4_and_a_refused_one_7(env: None, input_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    unreachable = runner.invoke(app, ["score", "--input", str(input_file)])
    assert unreachable.exit_code == ExitCode.REGISTRY
    assert "registry_unavailable" in unreachable.stderr
    not_a_model = tmp_path / "empty-model"
    not_a_model.mkdir()
    bad = runner.invoke(app, ["score", "--input", str(input_file), "--model-uri", str(not_a_model)])
    assert bad.exit_code == ExitCode.MODEL_REFUSED
    assert "incompatible" in bad.stderr


def test_score_stream_in_chunks_keeps_order(served_model: ServedModel) -> None:
    lines = [orjson.dumps(sample_record(i)) if i % 7 else b"{" for i in range(1203)]
    sink = io.BytesIO()
    summary = score_stream(served_model, io.BytesIO(b"\n".join(lines) + b"\n"), sink)
    outputs = [orjson.loads(line) for line in sink.getvalue().splitlines()]
    assert len(outputs) == 1203
    assert summary["records"] == 1203
    assert summary["dead_letters"] == 172
    for i, output in enumerate(outputs):
        assert output["source"]["sequence_number"] == str(i + 1)
        if i % 7:
            assert output["student_id"] == i


def test_read_records_numbers_lines() -> None:
    records = list(read_records([b"a\r\n", b"\n", b"b"]))
    assert [r.data for r in records] == [b"a", b"", b"b"]
    assert [r.position.sequence_number for r in records] == ["1", "2", "3"]


def test_score_command_in_a_real_process(
    input_file: Path, built_model: BuiltModel, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "consumer",
            "score",
            "--input",
            str(input_file),
            "--model-uri",
            str(built_model.path),
        ],
        capture_output=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    check_output(done.stdout)
    assert b'"summary"' in done.stderr
