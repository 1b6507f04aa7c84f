"""Exit codes of every command of the product; each code means one thing (README lists them).

Codes 10-16 are the shard processor's: the KCL daemon logs a child's exit code ("Child process
exited with value: N"), then exits itself, and the orchestrator restarts the worker, which
resumes from the last checkpoint.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1  # a bug or a library surprise; the log holds the traceback
    BAD_CONFIGURATION = 2  # a setting or a command-line argument is invalid
    DATA = 3  # a data or input file cannot be read or is invalid (checksum, download)
    REGISTRY = 4  # tracking server / registry unreachable, or no such model, version or alias
    PROMOTION_REFUSED = 5  # `promote` refused by the gate
    OUTPUT_WRITE = 6  # an output file cannot be written (offline scoring)
    # -- the shard processor (python -m consumer process) --
    PUBLISH_FAILED = 10  # PutRecords still failed (5xx, network) after PUBLISH_MAX_ATTEMPTS
    OUTPUT_REFUSED = 11  # an output stream refuses for good (AccessDenied, NotFound, KMS, ...)
    PROCESSOR_ERROR = 12  # an unexpected error in a batch or a KCL life-cycle step
    DAEMON_GONE = 13  # the KCL daemon (our parent) is gone; the next owner takes the shard
    SHARD_END_NOT_CHECKPOINTED = 14  # the shard end could not be checkpointed; children wait
    CAPTURE_FAILED = 15  # the capture store still failed after CAPTURE_MAX_ATTEMPTS
    LEASE_LOST_WHILE_PUBLISHING = 16  # another worker took the shard during a long throttle
    # -- the consumer service (python -m consumer run) --
    DAEMON_NOT_STARTED = 20  # the KCL daemon could not be started (no java, bad jars folder)
    DAEMON_EXITED = 21  # the daemon stopped on its own: a shard processor's code is in the log
    INTERRUPTED = 130  # Ctrl-C
