"""Read a UCI-format file (semicolon CSV, optional UTF-8 BOM, CRLF or LF) and validate it.

Every problem stops the job with a `DataValidationError` naming the file, column and row. The
checks are those of the schema: all 36 attributes and the target present (no others), numbers
where numbers belong, integers where codes and counts belong, values inside the sane domain,
and only the three target labels.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.attributes import ATTRIBUTE_NAMES, ATTRIBUTES, POSITIVE_LABEL, TARGET, TARGET_LABELS
from common.data_files import UCI_SHA256, DataFileError, DataSource, UciDownload, find_data_file
from training.config import TrainingSettings
from training.errors import DataSourceError, DataValidationError

DELIMITER = ";"
# Fewer rows than this cannot feed a cross-validated search and a held-out split.
MIN_ROWS = 100
MIN_PER_CLASS = 20


@dataclass(frozen=True)
class Dataset:
    """Validated data: the 36 attributes (float64, file order), the binary target, the labels,
    and where each row came from (provenance: never a feature)."""

    features: pd.DataFrame
    target: pd.Series  # 1 = dropout, 0 = enrolled or graduate
    labels: pd.Series  # the 3-class label, kept for reports
    source: DataSource  # several sources: their combined digest (training/data/sources.py)
    origin: pd.Series  # per row, the name of its source ("uci", "institution", ...)
    sources: tuple[DataSource, ...] = ()


def uci_download(settings: TrainingSettings) -> UciDownload:
    return UciDownload(
        url=settings.data_url,
        sha256=settings.data_sha256,
        cache_dir=settings.data_cache_dir,
        timeout=settings.data_download_timeout,
    )


def resolve_source(settings: TrainingSettings) -> DataSource:
    """The local file when DATA_PATH (or --data) is set, else the checked UCI download."""
    try:
        return find_data_file(settings.data_path, download=uci_download(settings))
    except DataFileError as exc:
        raise DataSourceError(str(exc)) from exc


def load_dataset(settings: TrainingSettings) -> Dataset:
    """DATA_SOURCES when set (several files, training/data/sources.py), else one file."""
    if settings.data_sources:
        from training.data.sources import load_sources

        return load_sources(settings)
    return read_dataset(resolve_source(settings))


def read_dataset(source: DataSource, *, name: str | None = None, minimum: bool = True) -> Dataset:
    """One validated file. `minimum` False: a file that is one of several sources may hold
    fewer rows than training needs on its own (the combination is checked instead)."""
    rows = _read_rows(source.path)
    header, body = rows[0], rows[1:]
    columns = _check_header(source.path, header)
    raw = _check_shape(source.path, columns, body, minimum=minimum)
    features = _check_attributes(source.path, raw)
    labels = _check_target(source.path, raw[TARGET], minimum=minimum)
    target = (labels == POSITIVE_LABEL).astype("int64").rename("dropout")
    origin = pd.Series([name or source_name(source)] * len(features), name="origin", dtype=str)
    return Dataset(
        features=features,
        target=target,
        labels=labels,
        source=source,
        origin=origin,
        sources=(source,),
    )


_CACHE_PREFIX = re.compile(r"^[0-9a-f]{16}-")
_DIGEST_SUFFIX = re.compile(r"-[0-9a-f]{12,64}$")


def source_name(source: DataSource) -> str:
    """`uci` for the official file (its checksum says so), else the file's name without the
    digests that name it in the cache or the store (`institution-<sha12>.csv` is
    `institution`), so a source keeps its name from one term's dataset to the next."""
    if source.sha256 == UCI_SHA256:
        return "uci"
    stem = _CACHE_PREFIX.sub("", source.path.stem)
    return _DIGEST_SUFFIX.sub("", stem) or stem


def _read_rows(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    if not data.strip():
        raise DataValidationError(path, "the file is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataValidationError(path, f"not UTF-8 text (byte {exc.start})") from exc
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITER)
    # Blank lines (a trailing newline, an editor's extra line) carry nothing.
    return [row for row in reader if any(cell.strip() for cell in row)]


def _check_header(path: Path, header: list[str]) -> list[str]:
    columns = [name.strip() for name in header]
    if len(columns) == 1:
        found = next((d for d in (",", "\t", "|") if d in header[0]), None)
        hint = f" (it looks separated by {found!r})" if found else ""
        raise DataValidationError(
            path, f"the header has a single column: expected {DELIMITER!r}-separated{hint}"
        )
    expected = [*ATTRIBUTE_NAMES, TARGET]
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise DataValidationError(path, "duplicate column", column=name)
        seen.add(name)
    for name in expected:
        if name not in seen:
            raise DataValidationError(path, "missing column", column=name)
    for name in columns:
        if name not in expected:
            raise DataValidationError(path, "unexpected column", column=name)
    return columns


def _check_shape(
    path: Path, columns: list[str], body: list[list[str]], *, minimum: bool = True
) -> pd.DataFrame:
    if not body:
        raise DataValidationError(path, "the file has a header but no data rows")
    for number, row in enumerate(body, start=1):
        if len(row) != len(columns):
            raise DataValidationError(
                path,
                f"{len(row)} fields where the header has {len(columns)} "
                f"(is the delimiter {DELIMITER!r}?)",
                row=number,
            )
    if minimum and len(body) < MIN_ROWS:
        raise DataValidationError(path, f"{len(body)} data rows; training needs {MIN_ROWS}")
    frame = pd.DataFrame(body, columns=columns, dtype=str)
    frame.index = pd.RangeIndex(1, len(frame) + 1)  # row numbers as people count them
    return frame


def _check_attributes(path: Path, raw: pd.DataFrame) -> pd.DataFrame:
    out: dict[str, pd.Series] = {}
    for spec in ATTRIBUTES:
        cells = raw[spec.name].str.strip()
        values = pd.to_numeric(cells, errors="coerce")
        bad = values.isna() | ~np.isfinite(values)
        if bad.any():
            row = int(bad.idxmax())
            cell = cells[row]
            reason = "empty cell" if cell == "" else f"not a finite number: {cell!r}"
            raise DataValidationError(path, reason, column=spec.name, row=row)
        if spec.dtype == "int":
            fractional = values != np.round(values)
            if fractional.any():
                row = int(fractional.idxmax())
                raise DataValidationError(
                    path, f"expected an integer, got {cells[row]!r}", column=spec.name, row=row
                )
        outside = (values < spec.min) | (values > spec.max)
        if outside.any():
            row = int(outside.idxmax())
            raise DataValidationError(
                path,
                f"{cells[row]} is outside the sane range [{spec.min:g}, {spec.max:g}]",
                column=spec.name,
                row=row,
            )
        out[spec.name] = values.astype("float64")
    return pd.DataFrame(out).reset_index(drop=True)


def _check_target(path: Path, cells: pd.Series, *, minimum: bool = True) -> pd.Series:
    labels = cells.str.strip()
    unknown = ~labels.isin(TARGET_LABELS)
    if unknown.any():
        row = int(unknown.idxmax())
        raise DataValidationError(
            path,
            f"unknown label {labels[row]!r} (expected one of {', '.join(TARGET_LABELS)})",
            column=TARGET,
            row=row,
        )
    positives = int((labels == POSITIVE_LABEL).sum())
    negatives = len(labels) - positives
    if minimum and min(positives, negatives) < MIN_PER_CLASS:
        raise DataValidationError(
            path,
            f"{positives} {POSITIVE_LABEL} and {negatives} other rows; each side needs "
            f"at least {MIN_PER_CLASS}",
            column=TARGET,
        )
    return labels.reset_index(drop=True).rename("label")
