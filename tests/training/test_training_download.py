"""The UCI download path, against a loopback HTTP server serving archives built here."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from common.data_files import (
    ChecksumError,
    DataFileError,
    DownloadError,
    UciDownload,
    fetch_uci,
)
from training.cli import app


class Archives:
    """Path -> bytes served on 127.0.0.1, with a hit counter per path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: dict[str, int] = {}
        self.url = ""


@pytest.fixture
def archives() -> Iterator[Archives]:
    served = Archives()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.hits[self.path] = served.hits.get(self.path, 0) + 1
            body = served.files.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_download_checks_and_caches(
    archives: Archives, uci_data_path: Path, tmp_path: Path
) -> None:
    data = uci_data_path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    archives.files["/uci.zip"] = zip_of({"data.csv": data, "README.txt": b"hello"})
    url = f"{archives.url}/uci.zip"

    first = fetch_uci(UciDownload(url, sha, tmp_path / "cache", timeout=10))
    assert first.path.read_bytes() == data
    assert first.sha256 == sha
    assert first.origin == url
    assert archives.hits["/uci.zip"] == 1

    again = fetch_uci(UciDownload(url, sha, tmp_path / "cache", timeout=10))
    assert again.path == first.path
    assert archives.hits["/uci.zip"] == 1  # served from the cache


def test_wrong_checksum_is_refused_and_not_cached(
    archives: Archives, uci_data_path: Path, tmp_path: Path
) -> None:
    archives.files["/uci.zip"] = zip_of({"data.csv": uci_data_path.read_bytes()})
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as caught:
        fetch_uci(UciDownload(f"{archives.url}/uci.zip", wrong, tmp_path / "cache", timeout=10))
    assert "data.csv" in str(caught.value)
    assert wrong in str(caught.value)
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(cache.iterdir())


def test_not_a_zip(archives: Archives, tmp_path: Path) -> None:
    archives.files["/uci.zip"] = b"<html>maintenance</html>"
    with pytest.raises(DataFileError, match="not a zip archive"):
        fetch_uci(UciDownload(f"{archives.url}/uci.zip", "0" * 64, tmp_path, timeout=10))


def test_archive_without_data_file(archives: Archives, tmp_path: Path) -> None:
    archives.files["/uci.zip"] = zip_of({"a.csv": b"x", "b.csv": b"y"})
    with pytest.raises(DataFileError, match=r"no data\.csv"):
        fetch_uci(UciDownload(f"{archives.url}/uci.zip", "0" * 64, tmp_path, timeout=10))


def test_http_error(archives: Archives, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_uci(UciDownload(f"{archives.url}/missing.zip", "0" * 64, tmp_path, timeout=10))


def test_cli_exits_3_on_a_wrong_checksum(
    archives: Archives, uci_data_path: Path, tmp_path: Path
) -> None:
    archives.files["/uci.zip"] = zip_of({"data.csv": uci_data_path.read_bytes()})
    result = CliRunner().invoke(
        app,
        ["train", "--quick"],
        env={
            "DATA_PATH": "",
            "DATA_URL": f"{archives.url}/uci.zip",
            "DATA_SHA256": "1" * 64,
            "DATA_CACHE_DIR": str(tmp_path / "cache"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "REPORTS_DIR": str(tmp_path / "reports"),
        },
    )
    assert result.exit_code == 3, result.output
    assert "does not match the expected" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "mlflow.db").exists()  # nothing was tracked for bad data
