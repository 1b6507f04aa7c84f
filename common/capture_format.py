"""Capture objects (docs/learning-loop.md): what the consumer keeps of every batch it scored,
and what the learning loop reads back.

One object per processed batch per shard: gzip-compressed JSON lines, one line per input record
(schema `dropout.capture.v1`), under a key made from the batch's own positions, so that a batch
written again after a restart lands on the same key when it has the same boundaries; when it
has other boundaries (the KCL re-reads from the last checkpoint), the reader drops the
duplicates by source position (shard, sequence, sub-sequence).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, Final

import orjson

from common.wire import CAPTURE_SCHEMA

CAPTURES_PREFIX: Final = "captures/"
OUTCOMES_PREFIX: Final = "outcomes/"
DATASETS_PREFIX: Final = "datasets/"

__all__ = [
    "CAPTURES_PREFIX",
    "CAPTURE_SCHEMA",
    "DATASETS_PREFIX",
    "OUTCOMES_PREFIX",
    "capture_key",
    "encode_capture_object",
]


def capture_key(
    model_name: str,
    day: date,
    shard_id: str,
    first: tuple[str | int, int],
    last: tuple[str | int, int],
) -> str:
    """The key of a batch's capture object (relative to the store root)."""
    return (
        f"{CAPTURES_PREFIX}{model_name}/dt={day.isoformat()}/{shard_id}/"
        f"{first[0]}-{first[1]}_{last[0]}-{last[1]}.jsonl.gz"
    )


# gzip's fast end: a capture object is written on the scoring path, once per batch.
COMPRESS_LEVEL: Final = 3


def encode_capture_object(lines: Iterable[Mapping[str, Any]]) -> bytes:
    """Capture lines as a gzip JSON-lines object (mtime 0: same lines, same bytes)."""
    body = b"".join(
        orjson.dumps(line if isinstance(line, dict) else dict(line)) + b"\n" for line in lines
    )
    return gzip.compress(body, compresslevel=COMPRESS_LEVEL, mtime=0)
