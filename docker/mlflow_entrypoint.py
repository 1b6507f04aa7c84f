"""Entry point of the MLflow server image: database URI, authentication, then `mlflow server`.

The server reads its options from MLFLOW_* environment variables (MLFLOW_HOST, MLFLOW_PORT,
MLFLOW_ARTIFACTS_DESTINATION, MLFLOW_SERVER_ALLOWED_HOSTS, MLFLOW_WORKERS, ...). This script
adds what the platform cannot hand over ready-made:

1. Secrets given as files (docker-compose secrets): NAME_FILE -> NAME (env_from_files.py).
2. The database URI, unless MLFLOW_BACKEND_STORE_URI is set:

       postgresql+psycopg2://DB_USER[:DB_PASSWORD]@DB_HOST:DB_PORT/DB_NAME?sslmode=DB_SSLMODE

   The driver is named: SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3, which the image
   does not ship (it ships psycopg2). With DB_IAM_AUTH=true (AWS) the URI has no password: the
   image's `dropout_mlflow_db_auth` hook gives every new connection a fresh IAM token, so an
   RDS password rotation never cuts the server off. Before that, DB_USER must hold `rds_iam`:
   if a token login is refused and DB_MASTER_PASSWORD (the RDS-managed secret) is given, the
   grant is made once with it; the master password is then dropped from the environment.
3. Authentication: `--app-name basic-auth`, with an auth config (MLFLOW_AUTH_CONFIG_PATH)
   written to a private temp file: users and grants in the same database, and
   default_permission NO_PERMISSIONS, so a user sees only what it was granted
   (mlflow_auth_bootstrap.py grants them). MLflow itself reads MLFLOW_AUTH_ADMIN_USERNAME,
   MLFLOW_AUTH_ADMIN_PASSWORD (first start only) and MLFLOW_FLASK_SERVER_SECRET_KEY.

Extra arguments are passed on to `mlflow server`. `exec` replaces this process, so SIGTERM
reaches the server.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from env_from_files import load as load_secret_files

DRIVER = "postgresql+psycopg2"
DEFAULT_PERMISSION = "NO_PERMISSIONS"
REQUIRED_AUTH = ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY")


def iam_auth(env: MutableMapping[str, str]) -> bool:
    return env.get("DB_IAM_AUTH", "").strip().lower() == "true"


def backend_store_uri(env: MutableMapping[str, str]) -> str:
    if env.get("MLFLOW_BACKEND_STORE_URI"):
        return env["MLFLOW_BACKEND_STORE_URI"]
    required = ("DB_HOST", "DB_USER") if iam_auth(env) else ("DB_HOST", "DB_USER", "DB_PASSWORD")
    missing = [name for name in required if not env.get(name)]
    if missing:
        raise SystemExit(
            "mlflow-entrypoint: set MLFLOW_BACKEND_STORE_URI, or DB_HOST, DB_USER and DB_PASSWORD "
            f"(or DB_IAM_AUTH=true instead of DB_PASSWORD) (missing: {', '.join(missing)})"
        )
    credentials = quote(env["DB_USER"], safe="")
    if not iam_auth(env):
        credentials += ":" + quote(env["DB_PASSWORD"], safe="")
    host = env["DB_HOST"]
    port = env.get("DB_PORT", "5432")
    name = env.get("DB_NAME", "mlflow")
    sslmode = env.get("DB_SSLMODE", "require")
    return f"{DRIVER}://{credentials}@{host}:{port}/{name}?sslmode={sslmode}"


def _is_auth_failure(error: Exception) -> bool:
    text = str(error).lower()
    return "authentication failed" in text or "pam authentication" in text


def ensure_iam_login(
    env: MutableMapping[str, str],
    connect: Callable[..., Any] | None = None,
    token: Callable[[str, int, str], str] | None = None,
) -> str:
    """Make sure DB_USER can log in with an IAM token; returns what was done."""
    if connect is None:
        import psycopg2

        connect = psycopg2.connect
    if token is None:
        from dropout_mlflow_db_auth import rds_token as token

    host, port, user = env["DB_HOST"], int(env.get("DB_PORT", "5432")), env["DB_USER"]
    params = {
        "host": host,
        "port": port,
        "dbname": env.get("DB_NAME", "mlflow"),
        "sslmode": env.get("DB_SSLMODE", "require"),
        "connect_timeout": 10,
    }
    try:
        connect(user=user, password=token(host, port, user), **params).close()
        return "iam login works"
    except Exception as error:
        if not _is_auth_failure(error):
            raise
        master_password = env.get("DB_MASTER_PASSWORD")
        if not master_password:
            raise SystemExit(
                f"mlflow-entrypoint: IAM login of {user} refused and no DB_MASTER_PASSWORD to "
                "grant it rds_iam with"
            ) from error
    master = env.get("DB_MASTER_USER", user)
    connection = connect(user=master, password=master_password, **params)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            # Identifier quoting by hand: psycopg2.sql is not needed for one fixed name.
            cursor.execute(f'GRANT rds_iam TO "{user.replace(chr(34), chr(34) * 2)}"')
    finally:
        connection.close()
    return "granted rds_iam"


def write_auth_config(env: MutableMapping[str, str], database_uri: str) -> Path:
    """The basic-auth app's config, in a private temp file (it holds the database URI)."""
    given = env.get("MLFLOW_AUTH_CONFIG_PATH")
    if given and Path(given).is_file():
        return Path(given)
    missing = [name for name in REQUIRED_AUTH if not env.get(name)]
    if missing:
        raise SystemExit(
            f"mlflow-entrypoint: authentication needs {', '.join(missing)} "
            "(or the same names with _FILE)"
        )
    folder = Path(tempfile.mkdtemp(prefix="mlflow-auth-"))
    path = folder / "basic_auth.ini"
    # configparser interpolates "%": a URL-encoded password must be written as "%%".
    lines = [
        "[mlflow]",
        f"default_permission = {DEFAULT_PERMISSION}",
        f"database_uri = {database_uri.replace('%', '%%')}",
        f"admin_username = {env.get('MLFLOW_AUTH_ADMIN_USERNAME', 'admin')}",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        "",
    ]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    env["MLFLOW_AUTH_CONFIG_PATH"] = str(path)
    return path


def server_command(argv: list[str]) -> list[str]:
    command = ["mlflow", "server", *argv]
    if not any(arg == "--app-name" or arg.startswith("--app-name=") for arg in argv):
        command[2:2] = ["--app-name", "basic-auth"]
    return command


def prepare(env: MutableMapping[str, str], argv: list[str]) -> list[str]:
    load_secret_files(env)
    if iam_auth(env) and not env.get("MLFLOW_BACKEND_STORE_URI"):
        print(f"mlflow-entrypoint: {ensure_iam_login(env)}", file=sys.stderr)
    uri = backend_store_uri(env)
    env["MLFLOW_BACKEND_STORE_URI"] = uri
    command = server_command(argv)
    if "basic-auth" in command:
        write_auth_config(env, uri)
    # The server needs no copy of a password that is in the URI, or of the master password.
    env.pop("DB_PASSWORD", None)
    env.pop("DB_MASTER_PASSWORD", None)
    return command


def main() -> None:
    env = dict(os.environ)
    command = prepare(env, sys.argv[1:])
    # A fixed program name and no shell: the container's only job is this server.
    os.execvpe(command[0], command, env)  # noqa: S606


if __name__ == "__main__":
    main()
