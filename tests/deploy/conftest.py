"""Fixtures of the deployment checks (marker `static`): they read files and run local checkers;
test_deploy_mlflow_server.py (marker `integration`) starts PostgreSQL and MLflow on loopback.
Nothing talks to AWS, Docker or any address but loopback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_helpers import REPO_ROOT, TERRAFORM_DIR, parse_hcl, terraform_files, tool


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything here is `static` except the few tests that start a real PostgreSQL and
    MLflow server (marked `integration` in their module)."""
    here = Path(__file__).parent
    for item in items:
        if here not in Path(str(item.fspath)).parents:
            continue
        # Image builds are `docker` alone, so that `make test-fast` (unit or static) never builds.
        if not item.get_closest_marker("integration") and not item.get_closest_marker("docker"):
            item.add_marker(pytest.mark.static)


@pytest.fixture(scope="session")
def parsed_terraform() -> dict[Path, dict[str, Any]]:
    """Every .tf file, parsed once (python-hcl2)."""
    return {path: parse_hcl(path) for path in terraform_files()}


@pytest.fixture(scope="session")
def checkov_report() -> list[dict[str, Any]]:
    """checkov once per session: the Terraform, then the Dockerfiles (about 5 s in all).
    --skip-download: no call to the vendor's API (guidelines download)."""
    checkov = tool("checkov")
    if checkov is None:
        pytest.fail("checkov is not installed: make setup installs requirements/dev.txt")
    reports: list[dict[str, Any]] = []
    for directory, framework in (
        (TERRAFORM_DIR, "terraform"),
        (REPO_ROOT / "docker", "dockerfile"),
    ):
        result = subprocess.run(
            [
                checkov,
                "--directory",
                str(directory),
                "--framework",
                framework,
                "--output",
                "json",
                "--quiet",
                "--skip-download",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=REPO_ROOT,
        )
        try:
            report = json.loads(result.stdout)
        except json.JSONDecodeError:
            pytest.fail(
                f"checkov gave no JSON (exit {result.returncode}):\n{result.stderr[-3000:]}"
            )
        reports.extend(report if isinstance(report, list) else [report])
    return reports
