"""core.history: the whole range as few big report calls, the budget up front, refusal over the share."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.history import (
    HistoryPlanRefused,
    estimated_wall_seconds,
    history_window,
    plan_history,
)
from flowsync_provider.core.windows import Window, report_timeframe


def _covers(chunks: list[dict], start: date, end: date, max_days: int) -> None:
    """Contiguous, ordered, inside [start, end], each ≤ max_days."""
    windows = [Window.from_dict(c["window"]) for c in chunks]
    assert windows[0].start == start and windows[-1].end == end
    for before, after in zip(windows, windows[1:], strict=False):
        assert after.start == before.end + timedelta(days=1)
    assert all(w.n_days <= max_days for w in windows)


def test_two_years_are_sixteen_calls_instead_of_fourteen_hundred() -> None:
    plan = plan_history("2023-10-01", "2025-09-30", "America/New_York", max_share=0.5,
                        today_local=date(2025, 10, 1))
    assert plan["days"] == 731
    _covers(plan["flow_chunks"], date(2023, 10, 1), date(2025, 9, 30), 60)
    _covers(plan["campaign_chunks"], date(2023, 10, 1), date(2025, 9, 30), 365)
    assert {c["kind"] for c in plan["flow_chunks"]} == {"series"}
    assert {c["kind"] for c in plan["campaign_chunks"]} == {"campaign-values"}
    budget = plan["budget"]
    assert (budget["flow_calls"], budget["campaign_calls"], budget["reporting_calls"]) == (13, 3, 16)
    assert budget["days_of_quota"] == 1 and budget["share_of_daily_quota"] == pytest.approx(16 / 225, abs=1e-4)
    assert budget["estimated_wall_seconds"] == 15 * 30.0  # 2 per minute, the first call free
    nightly = plan["nightly_comparison"]
    assert nightly == {"nights": 731, "calls_per_night": 2, "reporting_calls": 1462, "days_of_quota": 7,
                       "calls_saved": 1446, "ratio": 91.4}
    assert plan["over_share"] is False and plan["forced"] is False
    assert "16 reporting calls" in plan["summary"] and "1462 calls" in plan["summary"]
    assert history_window(plan) == Window(date(2023, 10, 1), date(2025, 9, 30))


def test_timeframes_are_local_midnights_of_the_account_timezone() -> None:
    plan = plan_history("2025-03-01", "2025-03-31", "America/New_York", today_local=date(2025, 4, 2))
    (flow,) = plan["flow_chunks"]
    window = Window(date(2025, 3, 1), date(2025, 3, 31))
    assert flow["timeframe"] == report_timeframe(window, "America/New_York")  # the one timeframe rule
    assert flow["timeframe"]["start"] == "2025-03-01T00:00:00-05:00"  # EST; the end is in EDT
    assert flow["timeframe"]["end"].endswith("-04:00")
    assert plan["campaign_chunks"][0]["timeframe"] == flow["timeframe"]


def test_over_the_share_is_refused_with_the_numbers_and_the_force_param() -> None:
    with pytest.raises(HistoryPlanRefused) as err:
        plan_history("2023-10-01", "2025-09-30", "UTC", max_share=0.05)
    message = str(err.value)
    assert "16 reporting calls would use 7.1% of Klaviyo's 225/day reporting quota" in message
    assert "allowed share of 5% (11 calls)" in message and "force=true" in message
    assert err.value.plan["budget"]["reporting_calls"] == 16  # the plan is still there to print


def test_force_runs_an_over_share_plan_and_says_so() -> None:
    plan = plan_history("2023-10-01", "2025-09-30", "UTC", max_share=0.05, force=True)
    assert plan["over_share"] is True and plan["forced"] is True
    assert plan["budget"]["reporting_calls"] == 16


def test_share_is_compared_on_the_exact_ratio_not_a_rounded_one() -> None:
    # 60 days → 1 flow + 1 campaign call = 2/225 = 0.00888..; a share of exactly 2/225 is allowed
    plan = plan_history("2025-01-01", "2025-03-01", "UTC", max_share=2 / 225)
    assert plan["budget"]["reporting_calls"] == 2
    with pytest.raises(HistoryPlanRefused):
        plan_history("2025-01-01", "2025-03-01", "UTC", max_share=2 / 225 - 1e-9)


def test_past_the_daily_quota_the_wall_time_counts_whole_days() -> None:
    assert estimated_wall_seconds(0) == 0
    assert estimated_wall_seconds(1) == 0
    assert estimated_wall_seconds(225) == 224 * 30.0
    assert estimated_wall_seconds(226) == 86400.0
    assert estimated_wall_seconds(10, steady_per_min=1) == 9 * 60.0
    huge = plan_history("2023-01-01", "2025-12-31", "UTC", max_share=10, daily_quota=10)
    assert huge["budget"]["days_of_quota"] == (huge["budget"]["reporting_calls"] + 9) // 10


@pytest.mark.parametrize(
    ("start", "end", "today", "kwargs", "match"),
    [
        (None, "2025-01-31", None, {}, "start is required"),
        ("2025-01-01", None, None, {}, "end is required"),
        ("2025-02-01", "2025-01-01", None, {}, r"start \(2025-02-01\) is after end"),
        ("2025-01-01", "2025-13-01", None, {}, "end must be a date"),
        ("2025-01-01", "2025-10-05", date(2025, 10, 1), {}, "is in the future"),
        ("2015-01-01", "2025-01-01", None, {}, "more than the maximum"),
        ("2025-01-01", "2025-01-31", None, {"max_share": 0}, "max_share must be a number above 0"),
        ("2025-01-01", "2025-01-31", None, {"max_share": True}, "max_share must be a number above 0"),
    ],
)
def test_bad_inputs_are_param_errors(start, end, today, kwargs, match) -> None:
    with pytest.raises(ParamError, match=match):
        plan_history(start, end, "UTC", today_local=today, **kwargs)


def test_missing_end_with_today_means_yesterday() -> None:
    plan = plan_history("2025-09-01", None, "UTC", today_local=date(2025, 9, 20))
    assert plan["window"] == {"start": "2025-09-01", "end": "2025-09-19"}
