"""Users and grants of the MLflow registry (basic-auth app), idempotent: run at every start.

Whoever can register a model version or move the serving alias decides what code the consumers
run, so the registry has exactly two working identities besides the admin:

- the trainer (MLFLOW_TRAINER_USERNAME): MANAGE on the experiment and the registered model
  (log runs, register versions, move @champion);
- the consumer (MLFLOW_CONSUMER_USERNAME): READ on the registered model and on the experiment
  (resolve @champion, download the model's artifacts), nothing else.

The server runs with default_permission NO_PERMISSIONS, so any other user sees nothing. The
experiment and the registered model are created here (as admin) when missing, so the grants
exist before the first training run. Passwords are set on every run: a password changed in
Secrets Manager (or a compose secret file) takes effect at the next start.

Environment (NAME_FILE works for each password, see env_from_files.py):
  MLFLOW_TRACKING_URI            the server (default http://127.0.0.1:$MLFLOW_PORT)
  MLFLOW_AUTH_ADMIN_USERNAME     default admin
  MLFLOW_AUTH_ADMIN_PASSWORD
  MLFLOW_TRAINER_USERNAME, MLFLOW_TRAINER_PASSWORD
  MLFLOW_CONSUMER_USERNAME, MLFLOW_CONSUMER_PASSWORD
  MLFLOW_EXPERIMENT_NAME         default student-dropout
  MODEL_NAME                     default student-dropout
  BOOTSTRAP_WAIT_SECONDS         how long to wait for /health (default 300)
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from env_from_files import load as load_secret_files

EXPERIMENT = "experiment"
REGISTERED_MODEL = "registered_model"
# (role, resource type) -> permission
GRANTS = {
    ("trainer", EXPERIMENT): "MANAGE",
    ("trainer", REGISTERED_MODEL): "MANAGE",
    ("consumer", EXPERIMENT): "READ",
    ("consumer", REGISTERED_MODEL): "READ",
}


class ApiError(RuntimeError):
    def __init__(self, status: int, body: str, what: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Api:
    base: str
    username: str
    password: str
    timeout: float = 15.0

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: str
    ) -> dict[str, Any]:
        url = self.base.rstrip("/") + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                text = response.read().decode() or "{}"
        except urllib.error.HTTPError as error:
            body_text = error.read().decode(errors="replace")
            raise ApiError(error.code, body_text, f"{method} {path}") from None
        return dict(json.loads(text))


def _not_found(error: ApiError) -> bool:
    return error.status == 404 or "RESOURCE_DOES_NOT_EXIST" in error.body


def wait_healthy(base: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{base.rstrip('/')}/health", timeout=5) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"mlflow-auth-bootstrap: {base}/health not OK after {seconds:.0f}s")
        time.sleep(2)


def ensure_user(api: Api, username: str, password: str) -> str:
    try:
        api.call("GET", "/api/2.0/mlflow/users/get", username=username)
    except ApiError as error:
        if not _not_found(error):
            raise
        api.call(
            "POST", "/api/2.0/mlflow/users/create", {"username": username, "password": password}
        )
        return "created"
    api.call(
        "PATCH",
        "/api/2.0/mlflow/users/update-password",
        {"username": username, "password": password},
    )
    return "password set"


def ensure_experiment(api: Api, name: str) -> str:
    try:
        found = api.call("GET", "/api/2.0/mlflow/experiments/get-by-name", experiment_name=name)
        return str(found["experiment"]["experiment_id"])
    except ApiError as error:
        if not _not_found(error):
            raise
    created = api.call("POST", "/api/2.0/mlflow/experiments/create", {"name": name})
    return str(created["experiment_id"])


def ensure_registered_model(api: Api, name: str) -> str:
    try:
        api.call("GET", "/api/2.0/mlflow/registered-models/get", name=name)
    except ApiError as error:
        if not _not_found(error):
            raise
        api.call("POST", "/api/2.0/mlflow/registered-models/create", {"name": name})
    return name


def ensure_grant(
    api: Api, username: str, resource_type: str, resource_id: str, permission: str
) -> str:
    """Grant exactly `permission` (a grant is an insert: an existing other one is replaced)."""
    current = api.call(
        "GET",
        "/api/3.0/mlflow/users/permissions/get",
        username=username,
        resource_type=resource_type,
        resource_id=resource_id,
    ).get("permission")
    if current == permission:
        return "unchanged"
    body = {"username": username, "resource_type": resource_type, "resource_id": resource_id}
    try:
        api.call("POST", "/api/3.0/mlflow/users/permissions/revoke", body)
    except ApiError as error:
        if not _not_found(error):
            raise
    api.call("POST", "/api/3.0/mlflow/users/permissions/grant", {**body, "permission": permission})
    return f"{current or 'none'} -> {permission}"


def _required(name: str, value: str | None) -> str:
    if not value:
        raise SystemExit(f"mlflow-auth-bootstrap: {name} (or {name}_FILE) is not set")
    return value


def bootstrap(env: MutableMapping[str, str]) -> list[str]:
    load_secret_files(env)
    base = env.get("MLFLOW_TRACKING_URI") or f"http://127.0.0.1:{env.get('MLFLOW_PORT', '5000')}"
    wait_healthy(base, float(env.get("BOOTSTRAP_WAIT_SECONDS", "300")))
    api = Api(
        base,
        env.get("MLFLOW_AUTH_ADMIN_USERNAME", "admin"),
        _required("MLFLOW_AUTH_ADMIN_PASSWORD", env.get("MLFLOW_AUTH_ADMIN_PASSWORD")),
    )
    users = {
        "trainer": (
            _required("MLFLOW_TRAINER_USERNAME", env.get("MLFLOW_TRAINER_USERNAME")),
            _required("MLFLOW_TRAINER_PASSWORD", env.get("MLFLOW_TRAINER_PASSWORD")),
        ),
        "consumer": (
            _required("MLFLOW_CONSUMER_USERNAME", env.get("MLFLOW_CONSUMER_USERNAME")),
            _required("MLFLOW_CONSUMER_PASSWORD", env.get("MLFLOW_CONSUMER_PASSWORD")),
        ),
    }
    if users["trainer"][0] == users["consumer"][0]:
        raise SystemExit("mlflow-auth-bootstrap: the trainer and the consumer need two users")
    report = [
        f"user {name}: {ensure_user(api, name, password)}" for name, password in users.values()
    ]
    resources = {
        EXPERIMENT: ensure_experiment(api, env.get("MLFLOW_EXPERIMENT_NAME", "student-dropout")),
        REGISTERED_MODEL: ensure_registered_model(api, env.get("MODEL_NAME", "student-dropout")),
    }
    for (role, resource_type), permission in GRANTS.items():
        username = users[role][0]
        outcome = ensure_grant(api, username, resource_type, resources[resource_type], permission)
        report.append(
            f"{username} {permission} on {resource_type} {resources[resource_type]}: {outcome}"
        )
    return report


def main() -> None:
    for line in bootstrap(dict(os.environ)):
        print(f"mlflow-auth-bootstrap: {line}", flush=True)


if __name__ == "__main__":
    main()
