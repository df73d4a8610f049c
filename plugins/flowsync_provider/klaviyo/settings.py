"""Client settings from arguments or ``flowsync_provider.settings`` (the one settings reader), validated once.

The revision is pinned: Klaviyo changes response shapes between revisions, and a silent shape
change would corrupt the CSVs, so only revisions this package was built and tested against pass.
"""

from __future__ import annotations

import hashlib
import math

from flowsync_provider import settings
from flowsync_provider.klaviyo.errors import KlaviyoConfigError

SUPPORTED_REVISIONS: tuple[str, ...] = ("2026-07-15",)
DEFAULT_REVISION = SUPPORTED_REVISIONS[0]
DEFAULT_BASE_URL = "https://a.klaviyo.com"
DEFAULT_TIMEOUT_SECONDS = 30.0


def resolve_revision(value: str | None = None) -> str:
    """The revision to send: argument, else setting KLAVIYO_API_REVISION, else the default."""
    revision = (value or settings.klaviyo_api_revision() or DEFAULT_REVISION).strip()
    if revision not in SUPPORTED_REVISIONS:
        raise KlaviyoConfigError(
            f"Klaviyo API revision {revision!r} is not supported; use one of "
            f"{', '.join(SUPPORTED_REVISIONS)} "
            "(set KLAVIYO_API_REVISION or the connection's 'revision' extra). Older revisions such as "
            "2024-06-15 are retired and return different shapes."
        )
    return revision


def resolve_time_scale(value: float | str | None = None) -> float:
    """Time compression shared with the sandbox (the connection's ``time_scale`` extra); 1 in production."""
    if value is None or value == "":
        return 1.0
    try:
        scale = float(value)
    except (TypeError, ValueError):
        scale = float("nan")
    if not 0 < scale < float("inf"):
        raise KlaviyoConfigError(
            f"time_scale must be a number > 0, got {value!r}: fix the Klaviyo connection's 'time_scale' extra "
            "(sandbox/testing only; 1 or unset in production)"
        )
    return scale


def resolve_timeout(value: object, *, field: str = "KlaviyoClient timeout") -> float:
    """HTTP timeout in seconds: unset/empty means the default; 0, negatives and non-numbers are refused.

    ``field`` names where the value came from (e.g. ``Connection klaviyo_default extra.timeout``) so
    the refusal says what to edit. 0 used to become 30 silently and -1 crashed inside httpx.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_TIMEOUT_SECONDS
    seconds = math.nan
    if not isinstance(value, bool):
        try:
            seconds = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
    if not math.isfinite(seconds) or seconds <= 0:
        raise KlaviyoConfigError(
            f"{field} must be a number of seconds above 0, got {value!r}: set it to e.g. 60, or remove it "
            f"to use the default {DEFAULT_TIMEOUT_SECONDS:g} s"
        )
    return seconds


def resolve_limiter_url(value: str | None = None) -> str:
    """Where pacing state lives: ``redis://…`` or ``sqlite:///abs/path.db`` (default under FLOWSYNC_HOME)."""
    url = value or settings.limiter_url()
    if not url.startswith(("sqlite:///", "redis://", "rediss://", "unix://", "memory://")):
        raise KlaviyoConfigError(
            "FLOWSYNC_LIMITER_URL must start with sqlite:///, redis:// or memory://, "
            f"got scheme {url.split(':', 1)[0]!r}"
        )
    return url


def account_key_for(api_key: str) -> str:
    """Limiter key of an account: a short digest of the key, so the key itself is never stored."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:16]
