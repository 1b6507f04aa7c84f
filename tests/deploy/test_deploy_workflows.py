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


USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<comment>.*)$", re.MULTILINE)


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_actions_are_pinned_by_commit_sha_with_the_version_in_a_comment(name: str) -> None:
    """A tag can be moved to other code; a commit SHA cannot. The comment is what Renovate
    (helpers:pinGitHubActionDigestsToSemver) and a reader need to know the version."""
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    lines = list(USES_LINE.finditer(text))
    assert len(lines) == len(uses(workflow(name))), "one `uses:` per line"
    for line in lines:
        ref, comment = line.group("ref"), line.group("comment").strip()
        if ref.startswith("./"):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{name}: pin {ref} by SHA"
        assert re.fullmatch(r"# v\d+\.\d+\.\d+", comment), f"{name}: {ref} needs `# vX.Y.Z`"


def test_each_action_is_pinned_to_one_commit_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS.glob("*.yml"):
        for line in USES_LINE.finditer(path.read_text(encoding="utf-8")):
            action, _, sha = line.group("ref").partition("@")
            if not action.startswith("./"):
                pins.setdefault(action, set()).add(f"{sha} {line.group('comment').strip()}")
    assert len(pins) >= 9
    several = {action: refs for action, refs in pins.items() if len(refs) > 1}
    assert not several, f"one version per action: {several}"


def test_ci_runs_integration_tests_on_both_backends() -> None:
    """`make test` runs the integration tests on local processes (the default backend); one
    job runs them on containers, chosen by STACK_BACKEND, not by whether Docker answers."""
    from devstack.backends import BACKENDS

    ci = workflow("ci.yml")
    on_containers = [
        step
        for job in ci["jobs"].values()
        for step in job.get("steps", [])
        if (step.get("env") or {}).get("STACK_BACKEND") == "containers"
    ]
    assert "containers" in BACKENDS
    assert len(on_containers) == 1, "one job runs the integration tests on containers"
    command = str(on_containers[0]["run"])
    assert "pytest" in command
    assert "tests/integration/" in command
    make_test = [
        step for job in ci["jobs"].values() for step in job.get("steps", [])
        if str(step.get("run", "")).strip() == "make test"
    ]  # fmt: skip
    assert make_test
    assert all("STACK_BACKEND" not in (s.get("env") or {}) for s in make_test)


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
        "make test-compose",
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
    # The compose stack runs for real there: BuildKit, upstream images pulled by the test, and
    # no service left out for want of an image.
    compose = ci["jobs"]["compose"]
    env = next(s["env"] for s in compose["steps"] if s.get("run") == "make test-compose")
    assert env["COMPOSE_TEST_BUILDER"] == "buildkit"
    assert env["COMPOSE_TEST_PULL"] == "1"
    assert env["COMPOSE_TEST_REQUIRE_ALL"] == "1"


def test_nightly_runs_the_property_tests_with_the_nightly_profile() -> None:
    nightly = workflow("nightly.yml")
    triggers = workflow_triggers(nightly)
    assert triggers["schedule"]
    assert "cron" in triggers["schedule"][0]
    assert "workflow_dispatch" in triggers
    assert nightly["permissions"] == {"contents": "read"}
    assert nightly["env"]["HYPOTHESIS_PROFILE"] == "nightly"
    commands = [str(step.get("run", "")) for step in steps(nightly)]
    selections = [c for c in commands if "pytest" in c]
    # Between them the jobs select every property test: in process and on the stack.
    assert any('-m "property and not integration"' in c for c in selections)
    assert any('-m "property and integration"' in c for c in selections)
    actions = uses(nightly)
    assert any(a.startswith("actions/setup-java@") for a in actions)
    assert any(a.startswith("actions/setup-node@") for a in actions)


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


# --- CD: what triggers a deployment ----------------------------------------------------------
def evaluate(expression: str, context: dict[str, Any]) -> bool:
    """A GitHub Actions `if:` expression of the forms CD uses (context paths, string literals,
    ==, !=, &&, ||, !, parentheses, always()), evaluated against `context`."""
    text = expression.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    text = text.replace("always()", "True")

    def lookup(match: re.Match[str]) -> str:
        path = match.group(0)
        if path in {"True", "and", "or", "not"}:
            return path
        return repr(context.get(path))

    text = text.replace("&&", " and ").replace("||", " or ")
    text = re.sub(r"!(?!=)", " not ", text)
    text = re.sub(r"(?<!['\w.])[A-Za-z_][\w-]*(?:\.[\w-]+)+|(?<!['\w.])True\b", lookup, text)
    return bool(eval(text, {"__builtins__": {}}, {}))


def _run_context(**overrides: Any) -> dict[str, Any]:
    context = {
        "github.event_name": "workflow_run",
        "github.repository": "acme/dropout",
        "github.ref": "refs/heads/main",
        "github.event.workflow_run.conclusion": "success",
        "github.event.workflow_run.event": "push",
        "github.event.workflow_run.head_branch": "main",
        "github.event.workflow_run.head_repository.full_name": "acme/dropout",
        "needs.stg.result": "success",
        "inputs.environment": None,
    }
    context.update(overrides)
    return context


RUN = "github.event.workflow_run."
DISPATCH = {"github.event_name": "workflow_dispatch", "inputs.environment": "stg"}


@pytest.mark.parametrize(
    ("case", "overrides", "deploys"),
    [
        ("push to main, CI green", {}, True),
        ("CI failed", {f"{RUN}conclusion": "failure"}, False),
        ("pull request from a branch called main", {f"{RUN}event": "pull_request"}, False),
        ("push to another branch", {f"{RUN}head_branch": "feature"}, False),
        ("a fork's main", {f"{RUN}head_repository.full_name": "evil/dropout"}, False),
        ("manual run on main", DISPATCH, True),
        ("manual run on a branch", {**DISPATCH, "github.ref": "refs/heads/x"}, False),
    ],
)
def test_cd_deploys_only_pushes_to_main_of_this_repository(
    case: str, overrides: dict[str, Any], deploys: bool
) -> None:
    """The jobs' `if:` evaluated, not read: stg for each case, then prod (after stg, or on its
    own when dispatched for prod)."""
    jobs = workflow("cd.yml")["jobs"]
    context = _run_context(**overrides)
    stg_ran = evaluate(jobs["stg"]["if"], context)
    assert stg_ran is deploys, case
    if context["inputs.environment"]:
        context = {**context, "inputs.environment": "prod", "needs.stg.result": "skipped"}
    else:
        context["needs.stg.result"] = "success" if stg_ran else "skipped"
    assert evaluate(jobs["prod"]["if"], context) is deploys, case


def test_the_expression_evaluator_reads_the_forms_cd_uses() -> None:
    context = {"a.b": "x", "c.d": None}
    assert evaluate("a.b == 'x' && (c.d == 'y' || always())", context)
    assert not evaluate("${{ a.b != 'x' }}", context)
    assert evaluate("!(a.b == 'y')", context)


def _task_definition_platform() -> str:
    modules = REPO_ROOT / "deploy" / "terraform" / "modules"
    live = (REPO_ROOT / "deploy" / "terraform" / "live" / "main.tf").read_text()
    for module in ("consumer", "training", "mlflow"):
        assert re.search(
            rf'module "{module}_task" \{{\s*source\s*=\s*"\.\./modules/ecs_task"', live
        ), f"{module}: its task definition is the one of modules/ecs_task"
    text = (modules / "ecs_task" / "main.tf").read_text()
    architectures = set(re.findall(r'cpu_architecture\s*=\s*"(\w+)"', text))
    assert architectures, "the task definition pins a runtime platform"
    assert len(architectures) == 1, architectures
    return {"X86_64": "linux/amd64", "ARM64": "linux/arm64"}[architectures.pop()]


def test_images_are_built_for_the_task_definitions_platform() -> None:
    platform = _task_definition_platform()
    pushes = [
        s
        for s in steps(workflow("deploy.yml"))
        if str(s.get("uses", "")).startswith("docker/build-push-action@")
    ]
    assert pushes
    for step in pushes:
        assert step["with"]["platforms"] == platform, step["name"]
    script = (REPO_ROOT / "scripts" / "aws" / "push-images.sh").read_text(encoding="utf-8")
    assert f"docker build --platform {platform} " in script


def test_a_redeploy_of_the_same_commit_skips_images_whose_tag_exists() -> None:
    """ECR tags are immutable: pushing the same tag again fails, so a re-run (or prod after
    stg, in the same account) must not push an image that is there."""
    deploy_steps = steps(workflow("deploy.yml"))
    names = [s.get("id") or s.get("name") for s in deploy_steps]
    existing = next(s for s in deploy_steps if s.get("id") == "existing")
    assert "aws ecr describe-images" in existing["run"]
    assert '"imageTag=$IMAGE_TAG"' in existing["run"]
    pushes = [
        s for s in deploy_steps if str(s.get("uses", "")).startswith("docker/build-push-action@")
    ]
    for step in pushes:
        image = Path(step["with"]["file"]).name.split(".")[0]
        assert step["if"] == f"steps.existing.outputs.{image} != 'true'", step["name"]
        assert names.index("existing") < deploy_steps.index(step)
    script = (REPO_ROOT / "scripts" / "aws" / "push-images.sh").read_text(encoding="utf-8")
    assert "exists already (tags are immutable): skipped" in script


# --- Renovate keeps the pins current ---------------------------------------------------------
def test_renovate_updates_actions_base_image_digests_compose_and_pip_pins() -> None:
    import json

    config = json.loads((REPO_ROOT / "renovate.json").read_text(encoding="utf-8"))
    assert not (REPO_ROOT / ".github" / "dependabot.yml").exists(), "one update bot"
    assert set(config["enabledManagers"]) == {
        "github-actions", "dockerfile", "docker-compose", "pip-compile",
    }  # fmt: skip
    assert "helpers:pinGitHubActionDigestsToSemver" in config["extends"]
    rules = config["packageRules"]
    assert any(r.get("matchManagers") == ["dockerfile"] and r.get("pinDigests") for r in rules)
    assert any(
        r.get("matchManagers") == ["docker-compose"] and r.get("pinDigests") is False for r in rules
    )

    def matched(manager: str, path: str) -> bool:
        patterns = config[manager]["managerFilePatterns"]
        return any(re.search(p.strip("/"), path) for p in patterns)

    # pip-compile reads the command from each lock file's header: every pinned file is covered.
    locks = [
        *sorted((REPO_ROOT / "requirements").glob("*.txt")),
        REPO_ROOT / "docker" / "mlflow.requirements.txt",
    ]
    for lock in locks:
        relative = str(lock.relative_to(REPO_ROOT))
        assert matched("pip-compile", relative), relative
        assert "#    pip-compile " in lock.read_text(encoding="utf-8"), f"{relative}: header"
    for dockerfile in sorted((REPO_ROOT / "docker").glob("*.Dockerfile")):
        assert matched("dockerfile", str(dockerfile.relative_to(REPO_ROOT)))
    # The Python pin stays on 3.11 and MLflow below 3.18 (which cannot install).
    python = next(r for r in rules if r.get("matchPackageNames") == ["python"])
    assert re.search(python["allowedVersions"].strip("/"), "3.11-slim-bookworm")
    assert not re.search(python["allowedVersions"].strip("/"), "3.12-slim-bookworm")
    assert any(
        "mlflow" in r.get("matchPackageNames", []) and r["allowedVersions"] == "<3.18"
        for r in rules
    )
