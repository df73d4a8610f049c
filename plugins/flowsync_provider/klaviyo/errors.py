"""Errors raised by the Klaviyo client.

Every message is written for the person running the sync: what happened and what to change.
None of them ever contains the API key or a response body (bodies hold PII); Klaviyo's JSON:API
``detail`` and ``source`` of a 4xx are kept because they describe the request, not a profile.
"""

from __future__ import annotations

from flowsync_provider.errors import FlowsyncError


class KlaviyoError(FlowsyncError):
    """Base class of everything the client raises on purpose."""


class KlaviyoConfigError(KlaviyoError, ValueError):
    """A client setting is invalid (unsupported revision, bad time scale, bad limiter URL)."""


class KlaviyoAuthError(KlaviyoError):
    """401/403: the key is wrong or lacks a scope. Never retried: retrying cannot fix it."""

    def __init__(self, message: str, *, status: int, missing_scope: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.missing_scope = missing_scope


class KlaviyoRequestError(KlaviyoError):
    """A 4xx other than 401/403/429: the request itself is wrong (Klaviyo's detail explains why)."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        detail: str | None = None,
        pointer: str | None = None,
        parameter: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.pointer = pointer
        self.parameter = parameter


class KlaviyoServerError(KlaviyoError):
    """5xx, timeouts or connection failures that outlived every retry attempt."""

    retryable = True  # Klaviyo may be back by the next task try

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class KlaviyoReportQuotaGuard(KlaviyoError):
    """A chunk's reporting call went unanswered so often that retrying would only burn more quota.

    Each unanswered call (read timeout, dropped answer, 5xx) may still have counted against Klaviyo's
    225/day reporting quota. Never retried: the operator fails the task without Airflow retries.
    """

    def __init__(self, message: str, *, spent: int, endpoint: str) -> None:
        super().__init__(message)
        self.spent = spent
        self.endpoint = endpoint


class KlaviyoRateLimitExceeded(KlaviyoError):
    """The next allowed request is further away than ``max_wait_seconds``.

    Raised instead of blocking so an Airflow operator can defer until ``retry_at`` (epoch seconds)
    rather than hold a worker slot asleep.
    """

    retryable = True  # the wait ends by itself

    def __init__(self, retry_at: float, bucket: str, *, wait_seconds: float | None = None) -> None:
        self.retry_at = float(retry_at)
        self.bucket = bucket
        self.wait_seconds = wait_seconds
        wait = f" (in {wait_seconds:.1f}s)" if wait_seconds is not None else ""
        super().__init__(
            f"Klaviyo rate limit for bucket {bucket!r}: next request allowed at epoch "
            f"{self.retry_at:.1f}{wait}, "
            "longer than the client's max_wait_seconds; defer or retry later"
        )

    def __reduce__(self):  # keep picklable across process boundaries (Airflow task results)
        return (_rebuild_rate_limit_exceeded, (self.retry_at, self.bucket, self.wait_seconds))


def _rebuild_rate_limit_exceeded(
    retry_at: float, bucket: str, wait_seconds: float | None
) -> KlaviyoRateLimitExceeded:
    return KlaviyoRateLimitExceeded(retry_at, bucket, wait_seconds=wait_seconds)
