"""Loopback ports for the services of one stack, without a race between parallel test workers.

Asking the kernel for a free port (bind to 0, close, hand the number out) races: another
process can take the port between the close and the service's own bind, and parallel test
workers ask at the same moment. Here every process owns a block of ports below the kernel's
ephemeral range (which starts at 32768 on Linux): a pytest-xdist worker `gwN` owns block
N + 1, anything else (a plain pytest run, the demo, a benchmark) block 0. Within a block ports
are handed out once, in order, and each is checked with a bind first, so a port some
unrelated program holds is skipped rather than handed out. Two test sessions at once on one
machine (two checkouts) set DEVSTACK_PORT_BLOCK_OFFSET to different values to stay apart.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
from typing import Final

FIRST_PORT: Final = 20000
BLOCK_SIZE: Final = 400
BLOCKS: Final = 30  # 20000 .. 32000: below the ephemeral range

_lock = threading.Lock()
_counter: itertools.count[int] | None = None


def _block() -> int:
    offset = int(os.environ.get("DEVSTACK_PORT_BLOCK_OFFSET", "0") or 0)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        return (offset + 1 + int(worker[2:])) % BLOCKS
    return offset % BLOCKS


def _bindable(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port of this process's block that no one has bound; never the same one twice."""
    global _counter  # noqa: PLW0603 (one allocator per process, created on first use)
    with _lock:
        if _counter is None:
            _counter = itertools.count(FIRST_PORT + _block() * BLOCK_SIZE)
        for port in _counter:
            if port >= FIRST_PORT + BLOCKS * BLOCK_SIZE:
                break
            if _bindable(port, host):
                return port
    raise RuntimeError("no free loopback port left in this process's block")
