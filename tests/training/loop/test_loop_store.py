"""The local-folder store and `open_store` (the S3 store runs against moto in
test_loop_integration.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.object_store import (
    LocalStore,
    ObjectNotFoundError,
    S3Store,
    StoreError,
    open_store,
)


def test_put_get_list_relative_keys_sorted(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    assert store.list() == []  # not made yet: empty
    assert store.put("captures/b/x.gz", b"2")
    assert store.put("captures/a/y.gz", b"1")
    assert store.put("outcomes/o.csv", b"3")
    assert store.list() == ["captures/a/y.gz", "captures/b/x.gz", "outcomes/o.csv"]
    assert store.list("captures/") == ["captures/a/y.gz", "captures/b/x.gz"]
    assert store.list("captures/a") == ["captures/a/y.gz"]
    assert store.get("outcomes/o.csv") == b"3"
    assert store.modified("outcomes/o.csv") <= datetime.now(tz=UTC)


def test_put_if_absent_keeps_the_first_object(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert store.put("k/v", b"first", if_absent=True) is True
    assert store.put("k/v", b"second", if_absent=True) is False
    assert store.get("k/v") == b"first"
    assert store.put("k/v", b"third") is True  # a plain put overwrites
    assert store.get("k/v") == b"third"
    assert store.list() == ["k/v"]  # no temporary file left behind


def test_missing_object_is_named(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with pytest.raises(ObjectNotFoundError) as caught:
        store.get("outcomes/none.csv")
    message = str(caught.value)
    assert message.startswith("get file://")
    assert message.endswith("/outcomes/none.csv: no such object")
    assert caught.value.operation == "get"


@pytest.mark.parametrize("key", ["", "/abs", "../up", "a/../b", "a//b", "folder/"])
def test_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    store = LocalStore(tmp_path / "root")
    with pytest.raises(StoreError, match="invalid key"):
        store.put(key, b"x")
    assert not (tmp_path / "up").exists()


def test_a_file_as_root_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StoreError, match=r"list file://.*: the root is not a folder"):
        LocalStore(tmp_path / "file").list()
    with pytest.raises(StoreError, match=r"^put file://"):
        LocalStore(tmp_path / "file").put("a/b", b"x")


def test_open_store_parses_uris(tmp_path: Path) -> None:
    local = open_store(tmp_path.as_uri())
    assert isinstance(local, LocalStore)
    assert local.root == tmp_path.resolve()
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(tmp_path), LocalStore)
    s3 = open_store("s3://bucket/some/prefix", endpoint_url="http://127.0.0.1:1")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.uri) == ("bucket", "some/prefix/", "s3://bucket/some/prefix/")
    root = open_store("s3://bucket", endpoint_url="http://127.0.0.1:1")
    assert isinstance(root, S3Store)
    assert root.prefix == ""


@pytest.mark.parametrize(
    ("uri", "match"),
    [("s3:///prefix", "needs a bucket"), ("gs://b/p", "unsupported scheme 'gs'")],
)
def test_open_store_rejects_unknown_uris(uri: str, match: str) -> None:
    with pytest.raises(StoreError, match=match):
        open_store(uri)
