"""Entry point of the MLflow server image: build the backend store URI, then exec `mlflow server`.

The server reads its options from MLFLOW_* environment variables (MLFLOW_HOST, MLFLOW_PORT,
MLFLOW_ARTIFACTS_DESTINATION, MLFLOW_SERVER_ALLOWED_HOSTS, MLFLOW_WORKERS, ...). The one option
that cannot come ready-made from the platform is the database URI: in AWS the RDS password lives
in Secrets Manager and ECS injects it as DB_PASSWORD, so this script assembles

    postgresql://DB_USER:DB_PASSWORD@DB_HOST:DB_PORT/DB_NAME?sslmode=DB_SSLMODE

(user and password URL-encoded) unless MLFLOW_BACKEND_STORE_URI is already set. Extra arguments
are passed on to `mlflow server`. `exec` replaces this process, so SIGTERM reaches the server.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import quote

REQUIRED = ("DB_HOST", "DB_USER", "DB_PASSWORD")


def backend_store_uri(env: dict[str, str]) -> str:
    if env.get("MLFLOW_BACKEND_STORE_URI"):
        return env["MLFLOW_BACKEND_STORE_URI"]
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        raise SystemExit(
            "mlflow-entrypoint: set MLFLOW_BACKEND_STORE_URI, or DB_HOST, DB_USER and DB_PASSWORD "
            f"(missing: {', '.join(missing)})"
        )
    user = quote(env["DB_USER"], safe="")
    password = quote(env["DB_PASSWORD"], safe="")
    host = env["DB_HOST"]
    port = env.get("DB_PORT", "5432")
    name = env.get("DB_NAME", "mlflow")
    sslmode = env.get("DB_SSLMODE", "require")
    return f"postgresql://{user}:{password}@{host}:{port}/{name}?sslmode={sslmode}"


def main() -> None:
    env = dict(os.environ)
    env["MLFLOW_BACKEND_STORE_URI"] = backend_store_uri(env)
    # The password is inside the URI now; the server needs no second copy of it.
    env.pop("DB_PASSWORD", None)
    argv = ["mlflow", "server", *sys.argv[1:]]
    # A fixed program name and no shell: the container's only job is this server.
    os.execvpe(argv[0], argv, env)  # noqa: S606


if __name__ == "__main__":
    main()
