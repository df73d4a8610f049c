"""Plan a long history backfill as few, large report calls, and refuse plans the quota can't carry.

Rebuilding two years night by night would cost one flow-series and one campaign-values call per
night (730 nights → 1,460 reporting calls, over six days of Klaviyo's 225/day reporting quota). The
history DAG instead asks for ≤ 60-day daily series chunks (flows) and ≤ 1-year values chunks
(campaigns), prints the budget before the first call and refuses plans that would eat more than a
configurable share of the day's quota unless forced. Pure: no Airflow, no HTTP, no clock.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

from flowsync_provider.core.errors import FlowsyncError, ParamError
from flowsync_provider.core.params import SyncRequest
from flowsync_provider.core.plan import (
    REPORTING_DAILY_QUOTA,
    REPORTING_STEADY_PER_MIN,
    SERIES_MAX_DAYS,
    VALUES_MAX_DAYS,
    call_budget,
    plan_campaign_sync,
    report_chunks,
)
from flowsync_provider.core.windows import Window, check_not_before_klaviyo, partial_day_warning, resolve_window

__all__ = [
    "DEFAULT_MAX_HISTORY_DAYS",
    "DEFAULT_MAX_SHARE",
    "NIGHTLY_CALLS_PER_NIGHT",
    "HistoryPlanRefused",
    "estimated_wall_seconds",
    "history_window",
    "plan_history",
]

DEFAULT_MAX_SHARE = 0.5  # a history run may use at most half a day's reporting quota unless forced
DEFAULT_MAX_HISTORY_DAYS = 3 * 366  # three years: more is a typo more often than a wish
NIGHTLY_CALLS_PER_NIGHT = 2  # one flow-series call + one campaign-values call per nightly run


class HistoryPlanRefused(FlowsyncError):
    """The plan would use more than the allowed share of the daily reporting quota (and no force)."""

    def __init__(self, message: str, plan: dict[str, Any]) -> None:
        super().__init__(message)
        self.plan = plan


def estimated_wall_seconds(calls: int, *, daily_quota: int = REPORTING_DAILY_QUOTA,
                           steady_per_min: int = REPORTING_STEADY_PER_MIN) -> float:
    """Lower bound of the wall time at the steady limit, counting full-day waits past the daily quota.

    Calls are spaced 60/steady seconds apart; every ``daily_quota`` calls the rest of the day is a wait
    (the quota is a rolling day, so a full day per exhausted quota is the honest estimate).
    """
    if calls <= 0:
        return 0.0
    full_days = (calls - 1) // daily_quota
    last_day_calls = calls - full_days * daily_quota
    return full_days * 86400.0 + (last_day_calls - 1) * 60.0 / steady_per_min


def _human_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def plan_history(
    start: str | date | None,
    end: str | date | None,
    tz: str,
    *,
    max_share: float = DEFAULT_MAX_SHARE,
    force: bool = False,
    today_local: date | None = None,
    max_days: int = DEFAULT_MAX_HISTORY_DAYS,
    daily_quota: int = REPORTING_DAILY_QUOTA,
    steady_per_min: int = REPORTING_STEADY_PER_MIN,
) -> dict[str, Any]:
    """The history plan: flow series chunks, campaign values chunks, the call budget, the nightly comparison.

    ``start``/``end`` are account-local days (inclusive). With ``today_local`` the end may not be in the
    future and a missing ``end`` means yesterday; without it ``end`` is required. Raises
    :class:`~flowsync_provider.core.errors.ParamError` for bad dates or ``max_share`` and
    :class:`HistoryPlanRefused` when ``calls / daily_quota > max_share`` and not ``force``.
    """
    if isinstance(max_share, bool) or not isinstance(max_share, int | float) or not max_share > 0:
        raise ParamError(f"max_share must be a number above 0 (a share of the daily quota, e.g. 0.5), "
                         f"got {max_share!r}.")
    if start in (None, ""):
        raise ParamError("start is required for a history plan: give the first day to rebuild (YYYY-MM-DD).")
    check_not_before_klaviyo("start", start)
    partial = today_local is not None
    if today_local is None:
        if end in (None, ""):
            raise ParamError("end is required for a history plan: give both start and end (YYYY-MM-DD).")
        today_local = date.max - timedelta(days=1)
    window = resolve_window(today_local=today_local, start=start, end=end, max_days=max_days)

    flow_chunks = report_chunks(window, tz, aggregation="per-day", strategy="series")
    campaign_plan = plan_campaign_sync(
        SyncRequest(start=window.start.isoformat(), end=window.end.isoformat()),
        tz=tz, today_local=max(today_local, window.end + timedelta(days=1)), max_days=max_days,
    )
    campaign_chunks = campaign_plan["chunks"]
    calls = len(flow_chunks) + len(campaign_chunks)
    budget = call_budget(calls, daily_quota=daily_quota, steady_per_min=steady_per_min)
    wall = estimated_wall_seconds(calls, daily_quota=daily_quota, steady_per_min=steady_per_min)
    allowed_calls = math.floor(max_share * daily_quota)
    budget.update(
        flow_calls=len(flow_chunks),
        campaign_calls=len(campaign_chunks),
        max_share=max_share,
        allowed_calls=allowed_calls,
        estimated_wall_seconds=wall,
        steady_per_min=steady_per_min,
    )
    nightly_calls = NIGHTLY_CALLS_PER_NIGHT * window.n_days
    nightly = {
        "nights": window.n_days,
        "calls_per_night": NIGHTLY_CALLS_PER_NIGHT,
        "reporting_calls": nightly_calls,
        "days_of_quota": math.ceil(nightly_calls / daily_quota),
        "calls_saved": nightly_calls - calls,
        "ratio": round(nightly_calls / calls, 1),
    }
    over = calls / daily_quota > max_share
    summary = (
        f"History {window.start}..{window.end} ({window.n_days} days, {tz}): {len(flow_chunks)} flow series "
        f"(≤ {SERIES_MAX_DAYS} d) + {len(campaign_chunks)} campaign values (≤ {VALUES_MAX_DAYS} d) = {calls} "
        f"reporting calls before pagination, {budget['share_of_daily_quota']:.1%} of Klaviyo's "
        f"{daily_quota}/day quota ({budget['days_of_quota']} day(s) of quota), ≥ {_human_seconds(wall)} at "
        f"{steady_per_min}/min; nightly runs would spend {nightly_calls} calls ({nightly['ratio']:g}× more)."
    )
    plan: dict[str, Any] = {
        "window": window.to_dict(),
        "days": window.n_days,
        "timezone": tz,
        "flow_chunks": flow_chunks,
        "campaign_chunks": campaign_chunks,
        "budget": budget,
        "nightly_comparison": nightly,
        "over_share": over,
        "forced": bool(force and over),
        "summary": summary,
        # an explicit end = today (account time) is a partial day: allowed, said in the summaries
        "warnings": partial_day_warning(window, today_local, tz) if partial else [],
    }
    if over and not force:
        raise HistoryPlanRefused(
            f"History plan refused: {calls} reporting calls would use {budget['share_of_daily_quota']:.1%} of "
            f"Klaviyo's {daily_quota}/day reporting quota, over the allowed share of {max_share:.0%} "
            f"({allowed_calls} calls); shorten start..end, raise the allowed share, or set force=true to run it "
            "anyway.",
            plan,
        )
    return plan


def history_window(plan: dict[str, Any]) -> Window:
    """The plan's window as a :class:`Window` (for callers holding the JSON-able plan)."""
    return Window.from_dict(plan["window"])
