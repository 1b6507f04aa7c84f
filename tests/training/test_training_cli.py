"""CLI exit codes and messages: 0 ok, 2 usage/config, 3 data, 4 registry, 5 refused."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from devstack.ports import free_port
from tests.training.helpers import run_cli
from training.cli import app


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run_cli("--help", env={}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("train", "evaluate", "promote", "explore"):
        assert command in result.stdout
    assert run_cli("train", "--no-such-option", env={}, cwd=tmp_path).returncode == 2


def test_bad_data_file_exits_3_without_traceback(tmp_path: Path, uci_data_path: Path) -> None:
    text = uci_data_path.read_bytes().decode("utf-8-sig")
    lines = text.split("\r\n")
    cells = lines[2].split(";")
    cells[19] = "twenty"  # Age at enrollment of data row 2
    lines[2] = ";".join(cells)
    bad = tmp_path / "bad.csv"
    bad.write_text("\r\n".join(lines), encoding="utf-8")
    result = run_cli(
        "train",
        "--quick",
        "--data",
        str(bad),
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "LOG_FORMAT": "json"},
        cwd=tmp_path,
    )
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr
    assert str(bad) in message
    assert "'Age at enrollment'" in message
    assert "row 2 (line 3)" in message
    assert "'twenty'" in message
    assert not (tmp_path / "mlflow.db").exists()


def test_no_champion_exits_4(tmp_path: Path, uci_data_path: Path) -> None:
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "DATA_PATH": str(uci_data_path),
        "MODEL_NAME": "nobody",
    }
    result = CliRunner().invoke(app, ["evaluate"], env=env)
    assert result.exit_code == 4, result.output
    assert "has no version with alias @champion" in result.output
    missing = CliRunner().invoke(app, ["promote", "3"], env=env)
    assert missing.exit_code == 4, missing.output


def test_unreachable_server_exits_4(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = CliRunner().invoke(app, ["evaluate"], env={"MLFLOW_TRACKING_URI": url})
    assert result.exit_code == 4, result.output
    assert "not reachable" in result.output


def test_invalid_configuration_exits_2() -> None:
    result = CliRunner().invoke(app, ["evaluate"], env={"GATE_TOLERANCE": "a lot"})
    assert result.exit_code == 2, result.output
    assert "GATE_TOLERANCE" in result.output
    both = CliRunner().invoke(app, ["evaluate", "--version", "1", "--alias", "x"])
    assert both.exit_code == 2


def test_explore_writes_a_self_contained_report(tmp_path: Path, uci_data_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["explore", "--data", str(uci_data_path), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    page = (tmp_path / "out" / "explore.html").read_text(encoding="utf-8")
    sections = ("Class balance", "Distributions by outcome", "Correlations", "Feature selection")
    for section in sections:
        assert section in page
    images = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert len(images) >= 5
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert "http://" not in page.replace("http://www.w3.org", "")
    assert "https://" not in page
