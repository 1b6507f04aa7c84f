"""How loading a model version can end (the `model_reloads{outcome}` label), and the error
that carries it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LoadOutcome(StrEnum):
    SUCCESS = "success"
    REGISTRY_UNAVAILABLE = "registry_unavailable"
    NO_CHAMPION = "no_champion"
    DOWNLOAD_FAILED = "download_failed"
    INCOMPATIBLE = "incompatible"
    VALIDATION_FAILED = "validation_failed"
    LOAD_FAILED = "load_failed"

    @property
    def permanent(self) -> bool:
        """Whether retrying the same version can never help."""
        return self in {
            LoadOutcome.INCOMPATIBLE,
            LoadOutcome.VALIDATION_FAILED,
            LoadOutcome.LOAD_FAILED,
        }


class ModelLoadError(Exception):
    def __init__(self, outcome: LoadOutcome, message: str, version: str | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.version = version


@dataclass(frozen=True)
class ModelRef:
    """A registered model version."""

    name: str
    version: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"
