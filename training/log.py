"""Logging of the training job: structlog events on stderr, rich progress on a terminal.

Events are JSON lines when stderr is not a terminal (the scheduled job's container), readable
coloured lines otherwise. Tables of results go to stdout, so `> file` keeps only them.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import structlog
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

# Libraries that talk a lot at INFO; their warnings still come through.
_NOISY = ("mlflow", "alembic", "optuna", "urllib3", "git", "matplotlib", "skops", "httpx")


def configure_logging(
    level: str = "INFO", fmt: Literal["auto", "console", "json"] = "auto"
) -> None:
    """Set up structlog once per process (the CLI calls it when a command starts)."""
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=_StderrLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    quiet_libraries()


class _StderrLogger:
    """Writes each line to the current sys.stderr, which rich redirects above its progress."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


class _StderrLoggerFactory:
    def __call__(self, *args: object) -> _StderrLogger:
        return _StderrLogger()


def quiet_libraries() -> None:
    """Silence progress bars and hints that libraries print on their own."""
    # MLflow's INFO lines and artifact download bars, and its nag about type hints on predict().
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", message=".*type hints to the `predict` method.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow.*")


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


def stderr_console() -> Console:
    return Console(stderr=True)


@contextmanager
def progress() -> Iterator[Progress]:
    """A progress display on stderr; rich renders it only on a terminal."""
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=stderr_console(),
        transient=False,
    )
    with bar:
        yield bar
