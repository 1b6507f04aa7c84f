"""Where the UCI-format data file comes from: one locator for the training job, the tools, the
demo, the tests and the benchmarks, and the checked download of the official archive.

Order (the first that applies wins): a path given explicitly (`--data`), `DATA_PATH`, an offline
copy at `shared/data/students_dropout_academic_success.csv` beside or above the repository
(machines without internet; only when the caller allows it), the checked download already in
the cache, and the download itself (`data.csv` of the official archive, checked against its
pinned sha256). A file given by path is validated by its reader, never against a checksum: it
is an institution's own data.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import requests
import structlog
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

log = structlog.get_logger("common.data_files")

UCI_URL: Final = (
    "https://archive.ics.uci.edu/static/public/697/"
    "predict+students+dropout+and+academic+success.zip"
)
# sha256 of data.csv inside the official archive (the byte-exact UCI file).
UCI_SHA256: Final = "3ef126de5cefff26eb11fbb4237f1a1401cb64b488e2f1d598c23cedeb4c45ae"
DATA_MEMBER: Final = "data.csv"
OFFLINE_COPY: Final = Path("shared/data/students_dropout_academic_success.csv")
# The UCI archive is ~0.2 MB; refuse anything absurdly large rather than fill the disk.
MAX_ARCHIVE_BYTES: Final = 50 * 1024 * 1024
REPO_ROOT: Final = Path(__file__).resolve().parents[1]


class DataFileError(Exception):
    """No usable data file: the message says which source failed and why."""


class ChecksumError(DataFileError):
    """The downloaded data file is not the one the configuration pins."""


class DownloadError(DataFileError):
    """The data set could not be fetched."""


@dataclass(frozen=True)
class DataSource:
    """A data file on disk and where it came from."""

    path: Path
    sha256: str
    origin: str  # "local", "offline copy" or the URL it was downloaded from


@dataclass(frozen=True)
class UciDownload:
    """Where to fetch the official archive, what its data file must hash to, where to keep it."""

    url: str = UCI_URL
    sha256: str = UCI_SHA256
    cache_dir: Path = Path(".cache/data")
    timeout: float = 60.0

    @property
    def cached(self) -> Path:
        return self.cache_dir / f"uci-697-{self.sha256[:16]}.csv"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def local_source(path: Path, origin: str = "local") -> DataSource:
    """A file on disk (an institution's own, or an offline copy), hashed as it is."""
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    return DataSource(path=path, sha256=sha256_of(path.read_bytes()), origin=origin)


def offline_copy() -> Path | None:
    """The shared offline copy beside or above the repository, if there is one."""
    for parent in REPO_ROOT.parents:
        if (parent / OFFLINE_COPY).is_file():
            return parent / OFFLINE_COPY
    return None


def find_data_file(
    explicit: Path | None = None,
    *,
    download: UciDownload | None = None,
    offline_copies: bool = False,
) -> DataSource:
    """The data file by the module's order; `download` None means: never fetch."""
    if explicit is not None:
        return local_source(explicit)
    if os.environ.get("DATA_PATH"):
        return local_source(Path(os.environ["DATA_PATH"]))
    if offline_copies and (copy := offline_copy()) is not None:
        return local_source(copy, origin="offline copy")
    if download is not None:
        return fetch_uci(download)
    raise DataFileError(
        "no data file: pass --data PATH or set DATA_PATH to a UCI-format file "
        "(`python -m training train` downloads and caches the official one)"
    )


def fetch_uci(spec: UciDownload) -> DataSource:
    """The UCI data file, from the cache when its checksum matches, else downloaded."""
    cached = spec.cached
    if cached.is_file() and sha256_of(cached.read_bytes()) == spec.sha256:
        log.info("data_cache_hit", path=str(cached))
        return DataSource(path=cached, sha256=spec.sha256, origin=spec.url)

    log.info("data_download", url=spec.url)
    archive = _download(spec.url, spec.timeout)
    data = _extract_data_file(archive, spec.url)
    got = sha256_of(data)
    if got != spec.sha256:
        raise ChecksumError(
            f"{spec.url}!{DATA_MEMBER}: sha256 {got} does not match the expected "
            f"{spec.sha256} (DATA_SHA256)"
        )
    spec.cache_dir.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a crash never leaves a half file that looks cached.
    partial = cached.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(cached)
    log.info("data_cached", path=str(cached), sha256=got)
    return DataSource(path=cached, sha256=got, origin=spec.url)


class _TransientHTTPError(Exception):
    """A 5xx or 429 answer worth retrying."""


@retry(
    retry=retry_if_exception_type(
        (requests.ConnectionError, requests.Timeout, _TransientHTTPError)
    ),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.5, max=4),
    reraise=True,
)
def _get(url: str, timeout: float) -> bytes:
    with requests.get(url, stream=True, timeout=timeout) as response:
        if response.status_code == 429 or response.status_code >= 500:
            raise _TransientHTTPError(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise DownloadError(f"{url}: HTTP {response.status_code}")
        body = bytearray()
        for chunk in response.iter_content(chunk_size=64 * 1024):
            body.extend(chunk)
            if len(body) > MAX_ARCHIVE_BYTES:
                raise DownloadError(f"{url}: larger than {MAX_ARCHIVE_BYTES} bytes")
        return bytes(body)


def _download(url: str, timeout: float) -> bytes:
    try:
        return _get(url, timeout)
    except (requests.RequestException, _TransientHTTPError) as exc:
        raise DownloadError(f"{url}: download failed ({exc})") from exc


def _extract_data_file(archive: bytes, url: str) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            names = zf.namelist()
            member = DATA_MEMBER if DATA_MEMBER in names else None
            if member is None:
                csvs = [n for n in names if n.lower().endswith(".csv")]
                if len(csvs) != 1:
                    raise DataFileError(
                        f"{url}: the archive has no {DATA_MEMBER} (members: {', '.join(names)})"
                    )
                member = csvs[0]
            return zf.read(member)
    except zipfile.BadZipFile as exc:
        raise DataFileError(f"{url}: not a zip archive ({exc})") from exc
