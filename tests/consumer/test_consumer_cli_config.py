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


def test_daemon_command_carries_the_jvm_options_before_the_class_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pathlib import Path

    from consumer.config import ConsumerSettings
    from consumer.service.supervisor import DAEMON_MAIN_CLASS, daemon_command

    monkeypatch.setenv("KCL_JAVA_OPTIONS", " -XX:TieredStopAtLevel=1   -XX:+UseSerialGC ")
    command = daemon_command(ConsumerSettings(), Path("kcl.properties"))
    assert command[:4] == ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp"]
    assert command[5] == DAEMON_MAIN_CLASS
    monkeypatch.setenv("KCL_JAVA_OPTIONS", "")
    assert daemon_command(ConsumerSettings(), Path("kcl.properties"))[1] == "-cp"
