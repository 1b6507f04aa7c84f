"""The model cache shared by the processors of one container: MODEL_CACHE_DIR/<name>/<version>.

A version is downloaded into a fresh temporary folder and renamed into place, so a folder that
exists there is always complete. When a new version is loaded and offered for the swap, the
cache keeps it and the version serving until then (a rollback loads from disk) and removes the
rest; folders being downloaded (their names start with a dot) are left alone.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import mlflow.artifacts
import structlog

from consumer.model.outcomes import LoadOutcome, ModelLoadError, ModelRef

log = structlog.get_logger("consumer.model.cache")


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", part) or "_"


class ModelCache:
    def __init__(self, root: Path, tracking_uri: str, client: Any) -> None:
        self.root = root
        self.tracking_uri = tracking_uri
        self.client = client

    def folder(self, ref: ModelRef) -> Path:
        return self.root / _safe(ref.name) / _safe(ref.version)

    def download(self, ref: ModelRef) -> Path:
        """The version's files in the shared cache (downloaded once, renamed into place)."""
        final = self.folder(ref)
        if final.is_dir():
            return final
        try:
            artifact_uri = self._artifact_uri(ref)
        except Exception as exc:
            raise ModelLoadError(
                LoadOutcome.DOWNLOAD_FAILED,
                f"cannot locate the files of {ref.uri}: {str(exc)[:500]}",
                ref.version,
            ) from exc
        return self.fetch(artifact_uri, final, ref.version)

    def _artifact_uri(self, ref: ModelRef) -> str:
        # Resolved with this loader's client: MLflow's own models:/ resolution would use the
        # process-wide registry URI instead of ours.
        uri = str(self.client.get_model_version_download_uri(ref.name, ref.version))
        if uri.startswith("models:/"):
            # An MLflow 3 logged model (models:/m-<id>): its artifact location.
            model_id = uri.removeprefix("models:/").strip("/")
            uri = str(self.client.get_logged_model(model_id).artifact_location)
        return uri

    def fetch(self, artifact_uri: str, final: Path, version: str) -> Path:
        """Downloads an artifact folder into `final` (through a temporary folder)."""
        final.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".download-{final.name}-", dir=final.parent))
        try:
            # The returned path is the model's root (a runs:/.../model URI lands in .../model).
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=artifact_uri,
                    dst_path=str(work),
                    tracking_uri=self.tracking_uri,
                    registry_uri=self.tracking_uri,
                )
            )
            if not local.is_dir():
                raise NotADirectoryError(f"{artifact_uri} is not a model folder")
            try:
                local.rename(final)
            except OSError:
                # Another processor of this container finished the same download first.
                if not final.is_dir():
                    raise
        except Exception as exc:
            raise ModelLoadError(
                LoadOutcome.DOWNLOAD_FAILED,
                f"cannot download {artifact_uri}: {str(exc)[:500]}",
                version,
            ) from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return final

    def evict(self, name: str, keep: Iterable[str | None]) -> list[str]:
        """Removes the cached versions of `name` other than `keep`; returns what went."""
        kept = {_safe(v) for v in keep if v is not None}
        folder = self.root / _safe(name)
        removed: list[str] = []
        try:
            entries = list(folder.iterdir()) if folder.is_dir() else []
        except OSError as exc:  # eviction is housekeeping: never fail a reload for it
            log.warning("model_cache_eviction_failed", model_name=name, error=str(exc))
            return removed
        for entry in entries:
            if entry.name.startswith(".") or entry.name in kept or not entry.is_dir():
                continue
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
        if removed:
            log.info("model_cache_evicted", model_name=name, versions=sorted(removed))
        return removed
