"""A bad configuration value stops every consumer command with one readable line, exit code 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from common.exit_codes import ExitCode
from consumer.cli import app


@pytest.mark.parametrize(
    ("variable", "value", "command"),
    [
        ("METRICS_PORT", "abc", ["render-properties"]),
        ("KCL_IDLE_TIME_BETWEEN_READS_MS", "-5", ["run"]),
        ("MAX_RECORD_BYTES", "lots", ["score", "--input", "in.jsonl"]),
    ],
)
def test_bad_value_names_the_variable_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, command: list[str]
) -> None:
    monkeypatch.setenv(variable, value)
    result = CliRunner().invoke(app, command)
    assert result.exit_code == ExitCode.BAD_CONFIGURATION, result.output
    assert f"invalid configuration: {variable}:" in result.stderr
    assert repr(value) in result.stderr
    assert "Traceback" not in result.output
