"""Real services for the deployment tests that start something (marker `integration`): a
throwaway PostgreSQL (Debian's `postgresql` package, `initdb` + `pg_ctl` in a temp folder on a
free loopback port) and the MLflow image's entry point run from the virtualenv. Nothing here
listens beyond 127.0.0.1."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.deploy_helpers import REPO_ROOT
from tests.support.processes import stop_process_group

ENTRYPOINT = REPO_ROOT / "docker" / "mlflow_entrypoint.py"
# A password that needs URL-encoding in a database URI.
DB_PASSWORD = "p@ss:w/rd?#%"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        pytest.fail(f"{name} is missing: install Debian's postgresql package (make setup does it)")
    return found


def _as_unprivileged(tmp: Path) -> list[str]:
    """PostgreSQL refuses to run as root: under root (this kind of machine, CI containers) run
    it as the `postgres` system user, or `nobody`, owning the temp folder."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        for path in (tmp, *tmp.rglob("*")):
            os.chown(path, user.pw_uid, user.pw_gid)
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.fail("setpriv (util-linux) is needed to run PostgreSQL as non-root")
        return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    pytest.fail("running as root, and there is no postgres or nobody user to run PostgreSQL")


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    database: str


@contextmanager
def postgres(database: str = "mlflow", user: str = "mlflow") -> Iterator[Postgres]:
    """A PostgreSQL server with password (scram-sha-256) authentication and one database, in
    its own temp folder (pytest's folders are private to root: the server's user could not
    reach them)."""
    initdb, pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
    tmp = Path(tempfile.mkdtemp(prefix="dropout-postgres-"))
    try:
        yield from _postgres(tmp, initdb, pg_ctl, database, user)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _postgres(tmp: Path, initdb: str, pg_ctl: str, database: str, user: str) -> Iterator[Postgres]:
    (tmp / "pwfile").write_text(DB_PASSWORD + "\n", encoding="utf-8")
    (tmp / "socket").mkdir()
    prefix = _as_unprivileged(tmp)
    port = free_port()
    data = tmp / "data"
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    created = subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", user, "--auth=scram-sha-256",
         f"--pwfile={tmp / 'pwfile'}", "-E", "UTF8", "--no-sync", "--no-instructions"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp, check=False,
    )  # fmt: skip
    if created.returncode != 0:
        pytest.fail(f"initdb failed: {created.stdout}{created.stderr}")
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={tmp / 'socket'} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    started = subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", options, "-l", str(tmp / "postgres.log"),
         "-w", "-t", "60", "start"],
        capture_output=True, text=True, timeout=90, env=env, cwd=tmp, check=False,
    )  # fmt: skip
    if started.returncode != 0:
        log = (tmp / "postgres.log").read_text(errors="replace")
        pytest.fail(f"PostgreSQL did not start: {started.stderr}\n{log[-3000:]}")
    try:
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=port, user=user, password=DB_PASSWORD, dbname="postgres"
        )
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{database}"')
        connection.close()
        yield Postgres("127.0.0.1", port, user, DB_PASSWORD, database)
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True, timeout=60, env=env, cwd=tmp, check=False,
        )  # fmt: skip


@dataclass(frozen=True)
class MlflowServer:
    url: str
    log: Path


def venv_env(**extra: str) -> dict[str, str]:
    """The test process's environment with the virtualenv's bin first (the entry point execs
    `mlflow` from PATH, as in the image) and no MLflow client or AWS settings leaking in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_", "AWS_", "DB_"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # the job runner costs 1.7 GB
    env.update(extra)
    return env


@contextmanager
def mlflow_entrypoint(
    tmp: Path, env: dict[str, str], timeout: float = 120
) -> Iterator[MlflowServer]:
    """docker/mlflow_entrypoint.py, as the image runs it, on a free loopback port."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp / "mlflow.log"
    full_env = {**env, "MLFLOW_HOST": "127.0.0.1", "MLFLOW_PORT": str(port), "MLFLOW_WORKERS": "1"}
    full_env.setdefault("TMPDIR", str(tmp))
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ENTRYPOINT)],
            env=full_env,
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers stop with it
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"the MLflow entry point exited with {process.returncode}:\n"
                    f"{log_path.read_text(errors='replace')[-5000:]}"
                )
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"MLflow not healthy in {timeout}s:\n{log_path.read_text()[-5000:]}")
            time.sleep(0.3)
        yield MlflowServer(url, log_path)
    finally:
        stop_process_group(process, timeout=20)
