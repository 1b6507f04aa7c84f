"""GitHub workflows: actionlint, what CI runs, how CD authenticates, tags, plans and deploys."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_helpers import REPO_ROOT, load_yaml, tool, workflow_triggers

WORKFLOWS = REPO_ROOT / ".github" / "workflows"


def workflow(name: str) -> dict[Any, Any]:
    doc = load_yaml(WORKFLOWS / name)
    assert isinstance(doc, dict)
    return doc


def steps(doc: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def runs(doc: dict[Any, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in steps(doc))


def uses(doc: dict[Any, Any]) -> list[str]:
    found = [str(step["uses"]) for step in steps(doc) if "uses" in step]
    found += [str(job["uses"]) for job in doc["jobs"].values() if "uses" in job]
    return found


def test_actionlint_is_clean() -> None:
    actionlint = tool("actionlint")
    assert actionlint, "actionlint is not installed (requirements/dev.txt)"
    result = subprocess.run(
        [actionlint, "-no-color"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.evnt.name }}\n",
        encoding="utf-8",
    )
    actionlint = tool("actionlint")
    assert actionlint
    result = subprocess.run(
        [actionlint, "-no-color", str(broken)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "evnt" in result.stdout


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_actions_are_pinned(name: str) -> None:
    for ref in uses(workflow(name)):
        if ref.startswith("./"):
            continue
        assert re.search(r"@(v\d+(\.\d+)*|[0-9a-f]{40})$", ref), (
            f"{name}: pin {ref} to a version or SHA"
        )


def test_ci_runs_on_pull_requests_and_main() -> None:
    ci = workflow("ci.yml")
    triggers = workflow_triggers(ci)
    assert "pull_request" in triggers
    assert triggers["push"]["branches"] == ["main"]
    assert ci["permissions"] == {"contents": "read"}


def test_ci_runs_every_check() -> None:
    ci = workflow("ci.yml")
    commands = runs(ci)
    for expected in (
        "make lint",
        "make typecheck",
        "make test",
        "hadolint",
        "actionlint",
        "checkov",
    ):
        assert expected in commands, expected
    assert "apt-get install" in commands
    assert "prometheus" in commands
    actions = uses(ci)
    assert any(a.startswith("actions/setup-java@") for a in actions)
    assert any(a.startswith("actions/setup-node@") for a in actions)
    assert any(a.startswith("actions/setup-python@") for a in actions)
    versions = {
        str(step["uses"]).split("@")[0]: step.get("with", {})
        for step in steps(ci)
        if "uses" in step
    }
    assert str(versions["actions/setup-java"]["java-version"]) == "17"
    assert str(versions["actions/setup-node"]["node-version"]) == "20"
    builds = [
        s for s in steps(ci) if str(s.get("uses", "")).startswith("docker/build-push-action@")
    ]
    assert builds
    assert all(s["with"]["push"] is False for s in builds)
    matrix = ci["jobs"]["images"]["strategy"]["matrix"]["image"]
    assert sorted(matrix) == ["consumer", "mlflow", "training"]


def test_cd_uses_oidc_and_no_stored_keys() -> None:
    for name in ("cd.yml", "deploy.yml"):
        doc = workflow(name)
        text = (WORKFLOWS / name).read_text(encoding="utf-8")
        assert "aws-access-key-id" not in text
        assert "AWS_SECRET_ACCESS_KEY" not in text
        credentials = [
            s
            for s in steps(doc)
            if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")
        ]
        for step in credentials:
            assert "role-to-assume" in step["with"]
        for job in doc["jobs"].values():
            if credentials and ("steps" in job or "uses" in job):
                assert job.get("permissions", doc.get("permissions", {})).get("id-token") == "write"


def test_cd_plans_pull_requests_and_deploys_main_behind_environments() -> None:
    cd = workflow("cd.yml")
    triggers = workflow_triggers(cd)
    assert "pull_request" in triggers
    assert triggers["workflow_run"]["workflows"] == ["CI"]
    assert triggers["workflow_run"]["branches"] == ["main"]
    plan = cd["jobs"]["plan"]
    assert "github.event_name == 'pull_request'" in plan["if"]
    assert "tf.sh" in runs({"jobs": {"plan": plan}})
    assert " plan " in runs({"jobs": {"plan": plan}})
    assert cd["jobs"]["prod"]["needs"] == "stg"
    for env in ("stg", "prod"):
        job = cd["jobs"][env]
        assert job["uses"] == "./.github/workflows/deploy.yml"
        assert job["with"]["environment"] == env
        assert (
            "workflow_run.conclusion == 'success'" in job["if"]
            or "needs.stg.result == 'success'" in job["if"]
        )

    deploy = workflow("deploy.yml")
    job = deploy["jobs"]["deploy"]
    assert job["environment"] == "${{ inputs.environment }}", (
        "the approval gate is the GitHub environment"
    )
    commands = runs(deploy)
    sequence = (
        'tf.sh "$ENVIRONMENT" repositories',
        'secrets.sh "$ENVIRONMENT"',
        'tf.sh "$ENVIRONMENT" apply',
        "aws ecs wait services-stable",
        "train.sh",
    )
    order = [commands.index(step) for step in sequence]
    assert order == sorted(order), (
        "repositories, secrets, apply, wait for stable services, then train"
    )
    pushes = [
        s for s in steps(deploy) if str(s.get("uses", "")).startswith("docker/build-push-action@")
    ]
    assert len(pushes) == 3
    for step in pushes:
        assert step["with"]["push"] is True
        assert step["with"]["tags"].endswith(":${{ inputs.sha }}"), (
            "images are tagged by commit SHA"
        )
