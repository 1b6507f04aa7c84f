"""Secrets as files: for each NAME below, a variable NAME_FILE (a docker-compose secret, mounted
under /run/secrets) becomes NAME with the file's content, unless NAME is set already. ECS sets
NAME itself from Secrets Manager, so there nothing changes.

As a program it wraps a command (the consumer and training images' entry point):

    python /opt/dropout/env_from_files.py python -m consumer run

and `exec`s it, so the command keeps the process (PID, signals). The MLflow entry point and
its auth bootstrap import `load` from here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

# Only these: an unrelated *_FILE variable (MLflow has some) is never touched.
NAMES = (
    # MLflow clients (consumer, training) read these two by themselves.
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    # MLflow server image: database password, auth admin, Flask secret, the users it creates.
    "DB_PASSWORD",
    "DB_MASTER_PASSWORD",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "MLFLOW_TRAINER_PASSWORD",
    "MLFLOW_CONSUMER_PASSWORD",
    # Compose: the secret key of the learning loop's MinIO user (consumer, training).
    "AWS_SECRET_ACCESS_KEY",
)


def load(env: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Fill NAME from NAME_FILE (trailing newlines dropped) and remove NAME_FILE."""
    for name in NAMES:
        path = env.pop(f"{name}_FILE", None)
        if not path or env.get(name):
            continue
        try:
            env[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise SystemExit(f"{name}_FILE={path}: cannot read the secret file ({error})") from None
    return env


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: env_from_files.py COMMAND [ARGS...]")
    env = load(dict(os.environ))
    os.execvpe(argv[0], argv, env)  # noqa: S606 - the image's own fixed command


if __name__ == "__main__":
    main(sys.argv[1:])
