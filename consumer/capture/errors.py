"""How a capture can fail: the store kept refusing (the process exits, 15), or the daemon went
away while the writer waited to retry (13, as for publishing)."""

from __future__ import annotations


class CaptureError(RuntimeError):
    """The capture store still refused the batch after CAPTURE_MAX_ATTEMPTS writes."""


class CaptureAbandonedError(CaptureError):
    """Retries stopped because the KCL daemon is gone."""
