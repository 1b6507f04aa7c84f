"""Training on several sources: the UCI base plus the institution's own students
(DATA_SOURCES, or `train --data` given more than once).

Each source is `uci` (the checked download, or any file whose sha256 is the official one), a
local path, or an `s3://bucket/key.csv` URI (read from the learning loop's store endpoint,
LOOP_S3_ENDPOINT_URL, and kept in DATA_CACHE_DIR). Every file is validated by the job's own
reader; the minimum row counts apply to the combination, so an institution's first term can be
small. Rows keep the name of their source (`origin`) beside the features, never in them: the
held-out split is stratified by source and outcome, quality is reported per source, and the
gate compares champion and challenger per source on the same held-out rows. The data digest of
the run is the sha256 of the sources' digests, in order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from common.data_files import DataFileError, DataSource, fetch_uci, local_source, sha256_of
from common.object_store import StoreError, open_store
from training.config import TrainingSettings
from training.data.reading import (
    MIN_PER_CLASS,
    MIN_ROWS,
    Dataset,
    read_dataset,
    uci_download,
)
from training.errors import DataSourceError, DataValidationError


def source_specs(settings: TrainingSettings) -> list[str]:
    specs = [s.strip() for s in (settings.data_sources or "").split(",") if s.strip()]
    if not specs:
        raise DataSourceError("DATA_SOURCES is empty")
    return specs


def resolve(spec: str, settings: TrainingSettings) -> DataSource:
    """One source on disk: the UCI download, a local file, or an S3 object fetched once."""
    try:
        if spec == "uci" and settings.uci_mirror_uri:
            return _uci_mirror(settings.uci_mirror_uri, settings)
        if spec == "uci":
            return fetch_uci(uci_download(settings))
        if spec.startswith("s3://"):
            return _fetch_s3(spec, settings)
        return local_source(Path(spec))
    except DataFileError as exc:
        raise DataSourceError(f"data source {spec}: {exc}") from exc


def _fetch_s3(uri: str, settings: TrainingSettings) -> DataSource:
    parsed = urlparse(uri)
    folder, _, name = parsed.path.lstrip("/").rpartition("/")
    if not name:
        raise DataSourceError(f"data source {uri}: names no object")
    try:
        data = open_store(
            f"s3://{parsed.netloc}/{folder + '/' if folder else ''}",
            endpoint_url=settings.loop_s3_endpoint_url,
        ).get(name)
    except StoreError as exc:
        raise DataSourceError(f"data source {uri}: {exc}") from exc
    digest = sha256_of(data)
    path = settings.data_cache_dir / "sources" / f"{digest[:16]}-{name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return DataSource(path=path, sha256=digest, origin=uri)


def _uci_mirror(uri: str, settings: TrainingSettings) -> DataSource:
    source = _fetch_s3(uri, settings)
    if source.sha256 != settings.data_sha256:
        raise DataSourceError(
            f"UCI_MIRROR_URI {uri}: sha256 {source.sha256} is not the official "
            f"{settings.data_sha256} (a changed or partial copy; upload the checked file again)"
        )
    return source


def load_sources(settings: TrainingSettings) -> Dataset:
    parts = []
    for spec in source_specs(settings):
        source = resolve(spec, settings)
        parts.append(read_dataset(source, minimum=False))
    names = [p.origin.iloc[0] for p in parts]
    if len(set(names)) != len(names):
        raise DataSourceError(
            f"two sources have the same name: {names} (each institution dataset holds every "
            "term so far: give only the latest)"
        )
    features = pd.concat([p.features for p in parts], ignore_index=True)
    labels = pd.concat([p.labels for p in parts], ignore_index=True)
    target = pd.concat([p.target for p in parts], ignore_index=True)
    origin = pd.concat([p.origin for p in parts], ignore_index=True)
    sources = tuple(p.source for p in parts)
    where = " + ".join(str(s.path) for s in sources)
    if len(features) < MIN_ROWS:
        raise DataValidationError(where, f"{len(features)} data rows; training needs {MIN_ROWS}")
    positives = int(target.sum())
    if min(positives, len(target) - positives) < MIN_PER_CLASS:
        raise DataValidationError(
            where, f"{positives} dropouts of {len(target)}; each side needs {MIN_PER_CLASS}"
        )
    combined = hashlib.sha256("\n".join(s.sha256 for s in sources).encode()).hexdigest()
    return Dataset(
        features=features,
        target=target,
        labels=labels,
        source=DataSource(path=sources[0].path, sha256=combined, origin="+".join(names)),
        origin=origin,
        sources=sources,
    )
