"""Klaviyo's per-endpoint rate limits, read from the spec's ``x-klaviyo-ratelimit`` (vendored JSON).

One table serves the client's pacing and the sandbox's enforcement, so both agree by construction.
The reporting endpoints share one bucket (burst, steady and the 225/day quota): Klaviyo documents
the daily quota per account across reports, and sharing burst/steady too is the conservative choice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

REPORTING_BUCKET = "reporting"
SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class RateLimit:
    """Requests allowed per window: burst (per second), steady (per minute), optional daily."""

    burst_per_s: int
    steady_per_min: int
    daily: int | None = None

    def windows(self) -> list[tuple[int, float]]:
        """(limit, window seconds) pairs, unscaled."""
        out = [(self.burst_per_s, 1.0), (self.steady_per_min, 60.0)]
        if self.daily:
            out.append((self.daily, 86400.0))
        return out

    def lowered(self, burst: int | None = None, per_minute: int | None = None) -> RateLimit:
        """Apply the runbook's global limiter envs: they may only lower limits."""
        b = min(self.burst_per_s, burst) if burst and burst > 0 else self.burst_per_s
        m = min(self.steady_per_min, per_minute) if per_minute and per_minute > 0 else self.steady_per_min
        return RateLimit(b, m, self.daily)


def _parse(value: str, unit: str) -> int:
    count, per = value.split("/")
    if per != unit:
        raise ValueError(f"unexpected rate {value!r}, expected per {unit}")
    return int(count)


@cache
def _table() -> dict:
    text = resources.files("flowsync_provider.core").joinpath("ratelimits.json").read_text()
    return json.loads(text)


@cache
def _compiled() -> list[tuple[str, re.Pattern[str], str, dict]]:
    out = []
    for key, entry in _table()["operations"].items():
        method, template = key.split(" ", 1)
        pattern = re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "/?$")
        out.append((method, pattern, template, entry))
    # Literal paths before templated ones (e.g. /api/flows/{id} vs /api/flows/...)
    out.sort(key=lambda t: t[2].count("{"))
    return out


def operation_for(method: str, path: str) -> tuple[str, str, dict] | None:
    """(operationId, path template, raw limits) for a concrete request path, or None if unknown."""
    method = method.upper()
    path = path.split("?", 1)[0]
    for m, pattern, template, entry in _compiled():
        if m == method and pattern.match(path):
            return entry["operation"], template, entry
    return None


def is_reporting(operation: str) -> bool:
    return operation.startswith("query_") and ("values" in operation or "series" in operation)


def limits_for(method: str, path: str) -> tuple[str, RateLimit]:
    """Bucket name and limits for a request. Unknown paths get the strictest ordinary limit."""
    found = operation_for(method, path)
    if found is None:
        return "unknown", RateLimit(1, 15)
    operation, _template, entry = found
    limit = RateLimit(
        _parse(entry["burst"], "s"),
        _parse(entry["steady"], "m"),
        _parse(entry["daily"], "d") if "daily" in entry else None,
    )
    bucket = REPORTING_BUCKET if is_reporting(operation) else operation
    return bucket, limit
