"""Fetch the official UCI archive, check the data file's sha256, keep it in a local cache."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import requests
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from training.errors import ChecksumError, DataValidationError, DownloadError
from training.log import get_logger

log = get_logger(__name__)

# The UCI archive is ~0.2 MB; refuse anything absurdly large rather than fill the disk.
MAX_ARCHIVE_BYTES = 50 * 1024 * 1024
DATA_MEMBER = "data.csv"


@dataclass(frozen=True)
class DataSource:
    """A data file on disk and where it came from."""

    path: Path
    sha256: str
    origin: str  # the URL it was downloaded from, or "local"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def local_source(path: Path) -> DataSource:
    """A file an institution provides: validated like the download, no fixed checksum."""
    if not path.is_file():
        raise DataValidationError(path, "no such file")
    return DataSource(path=path, sha256=sha256_of(path.read_bytes()), origin="local")


def fetch_uci(url: str, expected_sha256: str, cache_dir: Path, timeout: float) -> DataSource:
    """The UCI data file, from the cache when its checksum matches, else downloaded."""
    cached = cache_dir / f"uci-697-{expected_sha256[:16]}.csv"
    if cached.is_file() and sha256_of(cached.read_bytes()) == expected_sha256:
        log.info("data_cache_hit", path=str(cached))
        return DataSource(path=cached, sha256=expected_sha256, origin=url)

    log.info("data_download", url=url)
    archive = _download(url, timeout)
    data = _extract_data_file(archive, url)
    got = sha256_of(data)
    if got != expected_sha256:
        raise ChecksumError(
            f"{url}!{DATA_MEMBER}",
            f"sha256 {got} does not match the expected {expected_sha256} (DATA_SHA256)",
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a crash never leaves a half file that looks cached.
    partial = cached.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(cached)
    log.info("data_cached", path=str(cached), sha256=got)
    return DataSource(path=cached, sha256=got, origin=url)


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
                    raise DataValidationError(
                        url, f"the archive has no {DATA_MEMBER} (members: {', '.join(names)})"
                    )
                member = csvs[0]
            return zf.read(member)
    except zipfile.BadZipFile as exc:
        raise DataValidationError(url, f"not a zip archive ({exc})") from exc
