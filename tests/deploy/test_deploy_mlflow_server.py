"""The MLflow image's entry point and auth bootstrap against real services (marker
`integration`): a throwaway PostgreSQL on loopback, `mlflow server --app-name basic-auth` from
the virtualenv started by docker/mlflow_entrypoint.py exactly as the image starts it (the URI it
builds, the auth config it writes), then docker/mlflow_auth_bootstrap.py, then what each
identity may do. About 15 s."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_helpers import REPO_ROOT
from tests.deploy.local_services import (
    MlflowServer,
    Postgres,
    mlflow_entrypoint,
    postgres,
    venv_env,
)

pytestmark = pytest.mark.integration

BOOTSTRAP = REPO_ROOT / "docker" / "mlflow_auth_bootstrap.py"
MODEL = "student-dropout"
EXPERIMENT = "student-dropout"
ADMIN = ("admin", "admin-Secret-1234")
TRAINER = ("dropout-trainer", "trainer-Secret-1234")
CONSUMER = ("dropout-consumer", "consumer-Secret-1234")


@dataclass(frozen=True)
class Stack:
    db: Postgres
    server: MlflowServer
    env: dict[str, str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("mlflow-auth")
    secrets = root / "secrets"
    secrets.mkdir()
    # Compose hands secrets over as files: the entry point reads NAME_FILE.
    (secrets / "admin").write_text(ADMIN[1] + "\n", encoding="utf-8")
    with postgres() as db:
        env = venv_env(
            DB_HOST=db.host,
            DB_PORT=str(db.port),
            DB_NAME=db.database,
            DB_USER=db.user,
            DB_PASSWORD=db.password,
            DB_SSLMODE="disable",
            MLFLOW_AUTH_ADMIN_USERNAME=ADMIN[0],
            MLFLOW_AUTH_ADMIN_PASSWORD_FILE=str(secrets / "admin"),
            MLFLOW_FLASK_SERVER_SECRET_KEY="test-flask-secret-key",
            MLFLOW_ARTIFACTS_DESTINATION=str(root / "artifacts"),
        )
        with mlflow_entrypoint(root / "server", env) as server:
            yield Stack(db, server, env)


def call(
    stack: Stack,
    method: str,
    path: str,
    user: tuple[str, str] | None,
    body: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        stack.server.url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
    )
    request.add_header("Content-Type", "application/json")
    if user:
        token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text or b"{}")
        except json.JSONDecodeError:
            return error.code, {"text": text.decode(errors="replace")}


def run_bootstrap(stack: Stack, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "consumer").write_text(CONSUMER[1], encoding="utf-8")
    env = {
        **{k: v for k, v in stack.env.items() if not k.startswith("DB_")},
        "MLFLOW_TRACKING_URI": stack.server.url,
        "MLFLOW_TRAINER_USERNAME": TRAINER[0],
        "MLFLOW_TRAINER_PASSWORD": TRAINER[1],
        "MLFLOW_CONSUMER_USERNAME": CONSUMER[0],
        "MLFLOW_CONSUMER_PASSWORD_FILE": str(tmp_path / "consumer"),
        "MODEL_NAME": MODEL,
        "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
        "BOOTSTRAP_WAIT_SECONDS": "30",
    }
    return subprocess.run(
        [sys.executable, str(BOOTSTRAP)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_server_runs_on_postgres_through_the_entry_point_uri(stack: Stack) -> None:
    """The URI the entry point builds (named driver, URL-encoded password) is what the server
    and its auth store really use: their migrations are in this PostgreSQL."""
    import psycopg2

    with urllib.request.urlopen(f"{stack.server.url}/health", timeout=5) as response:
        assert response.status == 200
    connection = psycopg2.connect(
        host=stack.db.host,
        port=stack.db.port,
        user=stack.db.user,
        password=stack.db.password,
        dbname=stack.db.database,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            tables = {row[0] for row in cursor.fetchall()}
    finally:
        connection.close()
    assert {"alembic_version", "experiments", "registered_models", "model_versions"} <= tables
    assert {"alembic_version_auth", "users"} <= tables, "the auth store shares the database"
    log = stack.server.log.read_text(errors="replace")
    assert "ModuleNotFoundError" not in log


def test_anonymous_and_wrong_passwords_are_refused(stack: Stack) -> None:
    status, _ = call(stack, "GET", "/api/2.0/mlflow/experiments/search?max_results=1", None)
    assert status == 401
    status, _ = call(
        stack, "GET", "/api/2.0/mlflow/experiments/search?max_results=1", (ADMIN[0], "wrong")
    )
    assert status == 401
    status, _ = call(stack, "GET", "/api/2.0/mlflow/experiments/search?max_results=1", ADMIN)
    assert status == 200


@pytest.fixture(scope="module")
def bootstrapped(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> subprocess.CompletedProcess[str]:
    """The first run of the bootstrap, as the MLflow task's sidecar (or compose's one-shot
    mlflow-init) runs it after the server is healthy."""
    return run_bootstrap(stack, tmp_path_factory.mktemp("bootstrap"))


def test_bootstrap_creates_users_and_grants_idempotently(
    stack: Stack, bootstrapped: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    first = bootstrapped
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"user {TRAINER[0]}: created" in first.stdout
    assert f"{CONSUMER[0]} READ on registered_model {MODEL}: NO_PERMISSIONS -> READ" in first.stdout
    again = run_bootstrap(stack, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"user {TRAINER[0]}: password set" in again.stdout
    assert again.stdout.count(": unchanged") == 4, again.stdout


def _register_a_version(stack: Stack, user: tuple[str, str]) -> tuple[int, dict[str, Any]]:
    status, found = call(
        stack, "GET", f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={EXPERIMENT}", user
    )
    assert status == 200, found
    experiment_id = found["experiment"]["experiment_id"]
    status, run = call(
        stack, "POST", "/api/2.0/mlflow/runs/create", user, {"experiment_id": experiment_id}
    )
    if status != 200:
        return status, run
    run_id = run["run"]["info"]["run_id"]
    return call(
        stack,
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        user,
        {"name": MODEL, "source": f"runs:/{run_id}/model", "run_id": run_id},
    )


def test_trainer_registers_and_promotes_consumer_only_reads(
    stack: Stack, bootstrapped: subprocess.CompletedProcess[str]
) -> None:
    assert bootstrapped.returncode == 0
    # The trainer: a run, a model version, the serving alias.
    status, created = _register_a_version(stack, TRAINER)
    assert status == 200, created
    version = created["model_version"]["version"]
    alias = {"name": MODEL, "alias": "champion", "version": version}
    status, body = call(stack, "POST", "/api/2.0/mlflow/registered-models/alias", TRAINER, alias)
    assert status == 200, body

    # The consumer resolves @champion ...
    status, body = call(
        stack,
        "GET",
        f"/api/2.0/mlflow/registered-models/alias?name={MODEL}&alias=champion",
        CONSUMER,
    )
    assert status == 200, body
    assert body["model_version"]["version"] == version
    # ... and can neither register a version, nor move or delete the alias, nor log runs.
    status, _ = _register_a_version(stack, CONSUMER)
    assert status == 403
    moved = {**alias, "version": "1"}
    status, _ = call(stack, "POST", "/api/2.0/mlflow/registered-models/alias", CONSUMER, moved)
    assert status == 403
    status, _ = call(
        stack, "DELETE", "/api/2.0/mlflow/registered-models/alias", CONSUMER,
        {"name": MODEL, "alias": "champion"},
    )  # fmt: skip
    assert status == 403
    status, _ = call(
        stack, "POST", "/api/2.0/mlflow/registered-models/update", CONSUMER,
        {"name": MODEL, "description": "changed"},
    )  # fmt: skip
    assert status == 403


def test_a_user_without_grants_sees_nothing(
    stack: Stack, bootstrapped: subprocess.CompletedProcess[str]
) -> None:
    assert bootstrapped.returncode == 0
    stranger = ("stranger", "stranger-Secret-1234")
    status, body = call(
        stack, "POST", "/api/2.0/mlflow/users/create", ADMIN,
        {"username": stranger[0], "password": stranger[1]},
    )  # fmt: skip
    assert status in {200, 409, 400}, body
    status, _ = call(stack, "GET", f"/api/2.0/mlflow/registered-models/get?name={MODEL}", stranger)
    assert status == 403
    status, _ = call(
        stack, "GET", f"/api/2.0/mlflow/registered-models/alias?name={MODEL}&alias=champion",
        stranger,
    )  # fmt: skip
    assert status == 403


def test_iam_mode_uri_connects_with_a_token_per_connection(stack: Stack) -> None:
    """IAM mode: the entry point's URI has no password; the image's hook supplies one for each
    new connection (here the token function returns the local password: RDS is not here)."""
    from sqlalchemy import create_engine, event, text
    from sqlalchemy.pool import NullPool

    from tests.deploy.deploy_helpers import load_module

    entry = load_module(REPO_ROOT / "docker" / "mlflow_entrypoint.py")
    hook_module = load_module(REPO_ROOT / "docker" / "dropout_mlflow_db_auth.py")
    uri = entry.backend_store_uri(
        {
            "DB_HOST": stack.db.host,
            "DB_PORT": str(stack.db.port),
            "DB_USER": stack.db.user,
            "DB_NAME": stack.db.database,
            "DB_SSLMODE": "disable",
            "DB_IAM_AUTH": "true",
        }
    )
    issued: list[tuple[str, int, str]] = []

    def token(host: str, port: int, user: str) -> str:
        issued.append((host, port, user))
        return stack.db.password

    engine = create_engine(uri, poolclass=NullPool)  # a new connection (and token) each time
    event.listen(engine, "do_connect", hook_module.make_hook(stack.db.host, token))
    try:
        for _ in range(2):
            with engine.connect() as connection:
                assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
    assert issued == [(stack.db.host, stack.db.port, stack.db.user)] * 2, "one token each"


def test_the_pth_line_installs_the_hook_in_a_new_interpreter(tmp_path: Path) -> None:
    """The image puts the module and its .pth into site-packages: every interpreter (the
    server process, each worker) then listens on every Engine when DB_IAM_AUTH=true."""
    import shutil

    for name in ("dropout_mlflow_db_auth.py", "dropout_mlflow_db_auth.pth"):
        shutil.copy(REPO_ROOT / "docker" / name, tmp_path / name)
    probe = (
        "import site, sys; site.addsitedir(sys.argv[1]); import dropout_mlflow_db_auth as m; "
        "print(m._state['installed'])"
    )
    for iam, expected in (("true", "True"), ("false", "False")):
        env = venv_env(DB_IAM_AUTH=iam, DB_HOST="db.internal")
        result = subprocess.run(
            [sys.executable, "-c", probe, str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected, (iam, result.stdout, result.stderr)


def test_consumer_downloads_the_champion_models_files_through_the_proxy(
    stack: Stack,
    bootstrapped: subprocess.CompletedProcess[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """With MLflow's own client, as training and the consumer use it (credentials from
    MLFLOW_TRACKING_USERNAME/PASSWORD): the trainer uploads a model's files and promotes the
    version; the consumer's READ grants suffice to resolve @champion and download them."""
    import mlflow.artifacts
    from mlflow import MlflowClient

    assert bootstrapped.returncode == 0
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stack.server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", TRAINER[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", TRAINER[1])
    trainer = MlflowClient(tracking_uri=stack.server.url, registry_uri=stack.server.url)
    experiment = trainer.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    run = trainer.create_run(experiment.experiment_id)
    model_file = tmp_path / "MLmodel"
    model_file.write_text("flavors: {}\n", encoding="utf-8")
    trainer.log_artifact(run.info.run_id, str(model_file), artifact_path="model")
    trainer.set_terminated(run.info.run_id)
    version = trainer.create_model_version(
        MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    )
    trainer.set_registered_model_alias(MODEL, "champion", version.version)

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", CONSUMER[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", CONSUMER[1])
    consumer = MlflowClient(tracking_uri=stack.server.url, registry_uri=stack.server.url)
    assert consumer.get_model_version_by_alias(MODEL, "champion").version == version.version
    # As the consumer's loader does: the version's files resolved with this client (MLflow's
    # own models:/ resolution would use the process-wide registry URI).
    uri = consumer.get_model_version_download_uri(MODEL, version.version)
    folder = mlflow.artifacts.download_artifacts(
        artifact_uri=uri, dst_path=str(tmp_path / "downloaded"), tracking_uri=stack.server.url
    )
    assert (Path(folder) / "MLmodel").read_text(encoding="utf-8") == "flavors: {}\n"
    with pytest.raises(mlflow.exceptions.MlflowException, match=r"PERMISSION_DENIED|403"):
        consumer.set_registered_model_alias(MODEL, "champion", "1")
