"""Typed errors of the training job. The CLI turns each into a message and an exit code."""

from __future__ import annotations

from pathlib import Path

from common.exit_codes import ExitCode


class TrainingError(Exception):
    """Base of every error the CLI reports without a traceback."""

    exit_code: int = ExitCode.UNEXPECTED


class DataValidationError(TrainingError):
    """A data file that cannot be trained on; the message names the file, column and row."""

    exit_code = ExitCode.DATA

    def __init__(
        self,
        file: str | Path,
        reason: str,
        *,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.file = str(file)
        self.column = column
        self.row = row
        self.reason = reason
        super().__init__(self._render())

    def _render(self) -> str:
        where = [self.file]
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.row is not None:
            # Data rows count from 1; the header is line 1 of the file.
            where.append(f"row {self.row} (line {self.row + 1})")
        return f"{', '.join(where)}: {self.reason}"


class DataSourceError(TrainingError):
    """No data file: none given, or the UCI download failed or did not match its checksum
    (common/data_files.py says which)."""

    exit_code = ExitCode.DATA


class RegistryError(TrainingError):
    """The tracking server or model registry refused or lacks what was asked for."""

    exit_code = ExitCode.REGISTRY


class PromotionRefusedError(TrainingError):
    """`promote` was asked for a version the gate does not let through."""

    exit_code = ExitCode.PROMOTION_REFUSED
