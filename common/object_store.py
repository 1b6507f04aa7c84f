"""A small object-store interface: S3 (boto3, any endpoint, path-style) and a local folder.

Keys are relative to the store's root (the URI's prefix) and use `/` as separator, e.g. a store
opened on `s3://bucket/loop/` holds `captures/...` at `s3://bucket/loop/captures/...`.

Every failure is a `StoreError` naming the URI, the operation and the key; a missing object is
the subclass `ObjectNotFoundError`. `put(..., if_absent=True)` writes only when no object has
the key (S3 conditional write `If-None-Match: *`; a hard link on a local folder) and returns
whether it wrote, so that deterministic keys make re-uploads harmless.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import unquote, urlparse

# In-progress local writes carry this prefix; listings never show them.
_TEMP_PREFIX: Final = ".tmp-"
# Status codes S3 (and MinIO, moto) answer to a conditional write that lost.
_EXISTS_CODES: Final = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412"})
_MISSING_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})


class StoreError(RuntimeError):
    """An object-store operation failed; the message names the URI, operation and key."""

    def __init__(self, uri: str, operation: str, detail: str, *, key: str | None = None) -> None:
        self.uri = uri
        self.operation = operation
        self.key = key
        self.detail = detail
        target = f"{uri}{key}" if key is not None else uri
        super().__init__(f"{operation} {target}: {detail}")


class ObjectNotFoundError(StoreError):
    """`get` or `modified` of a key that holds no object."""


class Store(Protocol):
    """What the capture writer and the learning loop need from object storage."""

    @property
    def uri(self) -> str:
        """The root, as `s3://bucket/prefix/` or `file:///folder/`."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys (relative to the root) that start with `prefix`, sorted."""
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes."""
        ...

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        """Write the object; with `if_absent`, only when the key is free. True if written."""
        ...

    def modified(self, key: str) -> datetime:
        """When the object was last written (UTC)."""
        ...


def check_key(uri: str, operation: str, key: str) -> str:
    """Reject keys that could escape the root or that no object can have."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts[:-1]):
        raise StoreError(uri, operation, "invalid key (empty, absolute or with . or ..)", key=key)
    if parts[-1] in ("", ".", ".."):
        raise StoreError(uri, operation, "invalid key (names no object)", key=key)
    return key


class LocalStore:
    """A folder as an object store (unit tests, offline use). Writes are atomic."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    @property
    def uri(self) -> str:
        return self.root.as_uri() + "/"

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []  # a folder not made yet is an empty store
        if not self.root.is_dir():
            raise StoreError(self.uri, "list", "the root is not a folder")
        keys: list[str] = []
        try:
            for dirpath, _, filenames in os.walk(self.root):
                base = Path(dirpath).relative_to(self.root)
                for name in filenames:
                    if name.startswith(_TEMP_PREFIX):
                        continue
                    key = (base / name).as_posix()
                    if key.startswith(prefix):
                        keys.append(key)
        except OSError as exc:
            raise StoreError(self.uri, "list", str(exc), key=prefix) from exc
        return sorted(keys)

    def _path(self, operation: str, key: str) -> Path:
        return self.root / check_key(self.uri, operation, key)

    def get(self, key: str) -> bytes:
        path = self._path("get", key)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(self.uri, "get", "no such object", key=key) from exc
        except OSError as exc:
            raise StoreError(self.uri, "get", str(exc), key=key) from exc

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        path = self._path("put", key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=path.parent)
            temp = Path(temp_name)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                if not if_absent:
                    os.replace(temp, path)
                    return True
                try:
                    os.link(temp, path)  # atomic create-if-absent
                except FileExistsError:
                    return False
                return True
            finally:
                temp.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(self.uri, "put", str(exc), key=key) from exc

    def modified(self, key: str) -> datetime:
        path = self._path("modified", key)
        try:
            return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(self.uri, "modified", "no such object", key=key) from exc
        except OSError as exc:
            raise StoreError(self.uri, "modified", str(exc), key=key) from exc


class S3Store:
    """An S3 bucket and prefix over boto3; `endpoint_url` for moto, MinIO or LocalStack."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        client: Any = None,
        max_attempts: int = 5,
    ) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self._client: Any = client if client is not None else _s3_client(endpoint_url, max_attempts)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _error(self, operation: str, exc: Exception, key: str | None) -> StoreError:
        code, detail = _error_code(exc)
        kind = ObjectNotFoundError if code in _MISSING_CODES else StoreError
        return kind(self.uri, operation, detail, key=key)

    def list(self, prefix: str = "") -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        keys: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                keys.extend(item["Key"][len(self.prefix) :] for item in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise self._error("list", exc, prefix) from exc
        return sorted(keys)

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        check_key(self.uri, "get", key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            data: bytes = response["Body"].read()
            return data
        except (BotoCoreError, ClientError) as exc:
            raise self._error("get", exc, key) from exc

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        check_key(self.uri, "put", key)
        try:
            if if_absent:
                self._client.put_object(
                    Bucket=self.bucket, Key=self.prefix + key, Body=data, IfNoneMatch="*"
                )
            else:
                self._client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)
        except ClientError as exc:
            if if_absent and _error_code(exc)[0] in _EXISTS_CODES:
                return False
            raise self._error("put", exc, key) from exc
        except BotoCoreError as exc:
            raise self._error("put", exc, key) from exc
        return True

    def modified(self, key: str) -> datetime:
        from botocore.exceptions import BotoCoreError, ClientError

        check_key(self.uri, "modified", key)
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except (BotoCoreError, ClientError) as exc:
            raise self._error("modified", exc, key) from exc
        when: datetime = head["LastModified"]
        return when.astimezone(UTC)


def _s3_client(endpoint_url: str | None, max_attempts: int = 5) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path"},  # MinIO and emulators have no virtual hosts
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=30,
    )
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)


def _error_code(exc: Exception) -> tuple[str, str]:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")) or str(exc)
        return code, f"{code}: {message}" if code else message
    return "", f"{type(exc).__name__}: {exc}"


def open_store(uri: str | Path, endpoint_url: str | None = None) -> Store:
    """`s3://bucket/prefix/`, `file:///folder` or a plain path (a folder, made on first put)."""
    if isinstance(uri, Path):
        return LocalStore(uri)
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StoreError(uri, "open", "an S3 URI needs a bucket: s3://bucket/prefix/")
        return S3Store(parsed.netloc, parsed.path.lstrip("/"), endpoint_url=endpoint_url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(uri, "open", "a file URI names a local folder: file:///folder")
        return LocalStore(unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return LocalStore(uri)
    raise StoreError(uri, "open", f"unsupported scheme {parsed.scheme!r} (use s3:// or file://)")
