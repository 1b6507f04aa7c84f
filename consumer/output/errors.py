"""What a PutRecords error means for the batch: wait it out, give up at once, or retry a while.

- Throttling is back-pressure, not a failure: the stream (or its KMS key) is busy. Retried with
  capped, jittered backoff for as long as the daemon lives and the lease is ours.
- A permanent refusal can never succeed by retrying (no permission, no such stream, a request
  the service rejects, a KMS key that is disabled or not ours): the processor stops at once
  with one clear line naming the stream and the error (exit code 11).
- Anything else (5xx, a dropped connection, a malformed answer) is transient: retried up to
  PUBLISH_MAX_ATTEMPTS calls, then the processor gives up (exit code 10).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class ErrorClass(StrEnum):
    THROTTLED = "throttled"
    PERMANENT = "permanent"
    TRANSIENT = "transient"


THROTTLING_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "LimitExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "KMSThrottlingException",
        "SlowDown",
    }
)
PERMANENT_CODES: Final = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "ResourceNotFoundException",
        "ValidationException",
        "InvalidArgumentException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "KMSOptInRequired",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "MissingAuthenticationTokenException",
    }
)


def classify(error_code: str) -> ErrorClass:
    if error_code in THROTTLING_CODES:
        return ErrorClass.THROTTLED
    if error_code in PERMANENT_CODES:
        return ErrorClass.PERMANENT
    return ErrorClass.TRANSIENT
