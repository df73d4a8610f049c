"""Klaviyo API client (no Airflow import): auth, revision, pagination, pacing, retries, diagnostics."""

from __future__ import annotations

from flowsync_provider.klaviyo.client import REQUIRED_SCOPES, KlaviyoClient, normalize_base_url
from flowsync_provider.klaviyo.diagnostics import Diagnostics
from flowsync_provider.klaviyo.errors import (
    KlaviyoAuthError,
    KlaviyoConfigError,
    KlaviyoError,
    KlaviyoRateLimitExceeded,
    KlaviyoReportQuotaGuard,
    KlaviyoRequestError,
    KlaviyoServerError,
)
from flowsync_provider.klaviyo.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_REVISION,
    SUPPORTED_REVISIONS,
    account_key_for,
    resolve_revision,
    resolve_timeout,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_REVISION",
    "REQUIRED_SCOPES",
    "SUPPORTED_REVISIONS",
    "Diagnostics",
    "KlaviyoAuthError",
    "KlaviyoClient",
    "KlaviyoConfigError",
    "KlaviyoError",
    "KlaviyoRateLimitExceeded",
    "KlaviyoReportQuotaGuard",
    "KlaviyoRequestError",
    "KlaviyoServerError",
    "account_key_for",
    "normalize_base_url",
    "resolve_revision",
    "resolve_timeout",
]
