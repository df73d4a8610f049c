"""Plan a sync's report calls up front: window in the account timezone, chunks, call budget.

Call economy is the design constraint (reporting endpoints: 2/min steady, 225/day), so the plan is
made before any report call, printed, and carried to every later task as a small JSON-able dict.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: core.params builds its param specs from this module's limits
    from flowsync_provider.core.params import SyncRequest
from flowsync_provider.core.windows import (
    REPORT_CHUNK_DAYS,
    Window,
    chunk_window,
    latest_local_today,
    nightly_window,
    partial_day_warning,
    report_timeframe,
    resolve_window,
)

SERIES_MAX_DAYS = REPORT_CHUNK_DAYS  # spec: a daily series timeframe cannot be longer than 60 days
# The nightly window [T-1-extra, T+1] spans extra + 3 days: the widest lookback that still fits one series call.
NIGHTLY_ONE_CALL_MAX_LOOKBACK = SERIES_MAX_DAYS - nightly_window(date(2020, 1, 1), 0).n_days
VALUES_MAX_DAYS = 365  # spec: timeframes are at most one year
REPORTING_DAILY_QUOTA = 225  # Klaviyo's reporting calls per account per day (the one copy)
REPORTING_STEADY_PER_MIN = 2


def _chunk_docs(pieces: list[Window], tz: str, kind: str, fallback: str | None) -> list[dict[str, Any]]:
    return [
        {"index": i, "kind": kind, "fallback": fallback, "window": piece.to_dict(),
         "timeframe": report_timeframe(piece, tz), "timezone": tz}
        for i, piece in enumerate(pieces)
    ]


def report_chunks(window: Window, tz: str, *, aggregation: str, strategy: str) -> list[dict[str, Any]]:
    """The flow report calls a window needs: one series call per ≤60 days, or the runbook's one per day."""
    if aggregation == "range":
        pieces, kind = chunk_window(window, VALUES_MAX_DAYS), "values"
    elif strategy == "values-per-day":
        pieces, kind = chunk_window(window, 1), "values"
    else:
        pieces, kind = chunk_window(window, SERIES_MAX_DAYS), "series"
    return _chunk_docs(pieces, tz, kind, "values" if aggregation == "auto" else None)


def campaign_chunks(window: Window, tz: str) -> list[dict[str, Any]]:
    """Campaign metrics come from campaign-values reports: one call per ≤ 1-year window, never per day."""
    return _chunk_docs(chunk_window(window, VALUES_MAX_DAYS), tz, "campaign-values", None)


def call_budget(reporting_calls: int, *, daily_quota: int = REPORTING_DAILY_QUOTA,
                steady_per_min: int = REPORTING_STEADY_PER_MIN) -> dict[str, Any]:
    """What a plan costs against Klaviyo's reporting quota (before pagination)."""
    return {
        "reporting_calls": reporting_calls,
        "daily_quota": daily_quota,
        "share_of_daily_quota": round(reporting_calls / daily_quota, 4),
        "days_of_quota": math.ceil(reporting_calls / daily_quota) if reporting_calls else 0,
        "min_wall_seconds_at_steady_limit": max(0, (reporting_calls - 1)) * 60 / steady_per_min,
    }


def _resolve(request: SyncRequest, today_local: date, max_days: int) -> Window:
    return resolve_window(
        today_local=today_local,
        days=request.days,
        start=request.start,
        end=request.end,
        timeframe_key=request.timeframeKey,
        max_days=max_days,
    )


def preflight_window(request: SyncRequest, *, now: datetime) -> None:
    """Refuse bad windows before any Klaviyo call (the account zone is not known yet).

    Resolved against the latest 'today' on earth, the window is the latest any account can have: every
    refusal here (before 2012, end in the future, start after yesterday) also holds in the account's zone.
    Lengths are checked in the account zone only (a month-based key's length can differ by a day).
    """
    _resolve(request, latest_local_today(now), max_days=1_000_000)


def _plan(request: SyncRequest, *, tz: str, today_local: date, max_days: int, chunker) -> dict[str, Any]:
    window = _resolve(request, today_local, max_days)
    chunks = chunker(window)
    return {
        "window": window.to_dict(),
        "days": window.n_days,
        "timezone": tz,
        "today_local": today_local.isoformat(),
        "chunks": chunks,
        "budget": call_budget(len(chunks)),
        "warnings": partial_day_warning(window, today_local, tz),
    }


def plan_flow_sync(request: SyncRequest, *, tz: str, today_local: date, max_days: int) -> dict[str, Any]:
    return _plan(request, tz=tz, today_local=today_local, max_days=max_days,
                 chunker=lambda w: report_chunks(w, tz, aggregation=request.aggregation,
                                                 strategy=request.reportStrategy))


def plan_campaign_sync(request: SyncRequest, *, tz: str, today_local: date, max_days: int) -> dict[str, Any]:
    return _plan(request, tz=tz, today_local=today_local, max_days=max_days,
                 chunker=lambda w: campaign_chunks(w, tz))


PLANNERS = {"flows": plan_flow_sync, "campaigns": plan_campaign_sync}
