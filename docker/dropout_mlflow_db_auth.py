"""IAM database authentication for the MLflow server's PostgreSQL (RDS), one token per connection.

A password read once at start breaks when RDS rotates its managed secret: the pool keeps its old
connections, and every new one fails until the task is replaced. With IAM authentication there
is no password: each new connection gets a fresh token (valid 15 minutes) signed locally with
the task role's credentials (`rds-db:connect`), so rotation never applies and a pooled
connection that is reopened simply gets a new token.

MLflow builds its SQLAlchemy engines itself, in the `mlflow server` process and in each worker,
so the hook must be in every interpreter of the image: the image installs this file into the
virtualenv's site-packages as `dropout_mlflow_db_auth.py` with a `.pth` line that calls
`install()`. It does nothing unless DB_IAM_AUTH=true; then every PostgreSQL connection to
DB_HOST that carries no password gets `generate_db_auth_token(DB_HOST, port, user)`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

TokenFunction = Callable[[str, int, str], str]

# Per interpreter: whether the hook is in, and the boto3 client (made on first use).
_state: dict[str, Any] = {"installed": False, "client": None}


def enabled(env: Mapping[str, str]) -> bool:
    return env.get("DB_IAM_AUTH", "").strip().lower() == "true"


def rds_token(host: str, port: int, user: str) -> str:
    """A token for one connection: SigV4 presigning, computed locally (no AWS call)."""
    if _state["client"] is None:
        import boto3

        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        _state["client"] = boto3.client("rds", region_name=region)
    token = _state["client"].generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user)
    return str(token)


def make_hook(host: str, token: TokenFunction) -> Callable[..., None]:
    """A SQLAlchemy `do_connect` listener that puts a fresh token into each connection's
    parameters (PostgreSQL connections to `host` only, and only when no password is given)."""

    def set_token(dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        if dialect.name != "postgresql" or cparams.get("password"):
            return
        if cparams.get("host") != host:
            return
        cparams["password"] = token(host, int(cparams.get("port") or 5432), cparams["user"])

    return set_token


def install(env: Mapping[str, str] | None = None, token: TokenFunction = rds_token) -> bool:
    """Listen on every Engine of this interpreter when DB_IAM_AUTH=true (idempotent)."""
    env = os.environ if env is None else env
    if _state["installed"] or not enabled(env) or not env.get("DB_HOST"):
        return bool(_state["installed"])
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "do_connect", make_hook(env["DB_HOST"], token))
    _state["installed"] = True
    return True
