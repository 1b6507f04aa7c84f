"""The processors' log sink: one JSON line per datagram to the relay, never a stalled batch."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import structlog

from consumer.observe import logs as consumer_log
from consumer.observe.logs import MAX_DATAGRAM_BYTES, configure_logging


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[tuple[Path, socket.socket]]:
    path = tmp_path / "log.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    yield path, server
    server.close()
    structlog.reset_defaults()


def test_lines_reach_the_relay_as_json_with_their_logger(
    relay: tuple[Path, socket.socket],
) -> None:
    path, server = relay
    fallback = io.StringIO()
    configure_logging("INFO", relay_socket=path, fallback=fallback, shard_id="shard-7")
    structlog.get_logger("consumer.intake.kcl_processor").info("batch_processed", batch_size=3)
    line = orjson.loads(server.recv(MAX_DATAGRAM_BYTES + 1000))
    assert line["event"] == "batch_processed"
    assert line["logger"] == "consumer.intake.kcl_processor"
    assert line["shard_id"] == "shard-7"
    assert fallback.getvalue() == ""


def test_a_huge_line_is_replaced_by_valid_json_that_says_so(
    relay: tuple[Path, socket.socket],
) -> None:
    path, server = relay
    configure_logging("INFO", relay_socket=path, fallback=io.StringIO())
    structlog.get_logger("consumer.intake.kcl_processor").warning("dump", payload="x" * 100_000)
    line = orjson.loads(server.recv(MAX_DATAGRAM_BYTES + 1000))
    assert line["event"] == "log_line_too_large"
    assert line["bytes"] > 100_000
    assert line["head"].startswith("{")


def test_a_relay_that_does_not_read_cannot_stall_logging(
    relay: tuple[Path, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _server = relay  # never reads: its queue fills up
    monkeypatch.setattr(consumer_log, "RELAY_SEND_TIMEOUT_SECONDS", 0.05)
    fallback = io.StringIO()
    configure_logging("INFO", relay_socket=path, fallback=fallback)
    logger = structlog.get_logger("consumer.intake.kcl_processor")
    for i in range(5000):
        logger.info("line", i=i, pad="y" * 1000)
        if fallback.getvalue():
            break
    first = orjson.loads(fallback.getvalue().splitlines()[0])
    assert first["event"] == "line"
    assert first["i"] > 0, "lines went to the relay until its queue was full"
