"""Window edges a user can hit by hand: a start before Klaviyo existed, an end that is today, nightly width."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.history import plan_history
from flowsync_provider.core.params import SyncRequest, validate_request
from flowsync_provider.core.plan import (
    NIGHTLY_ONE_CALL_MAX_LOOKBACK,
    SERIES_MAX_DAYS,
    plan_campaign_sync,
    plan_flow_sync,
    preflight_window,
    report_chunks,
)
from flowsync_provider.core.windows import KLAVIYO_EPOCH, latest_local_today, nightly_window, resolve_window

TODAY = date(2025, 9, 17)
NY = "America/New_York"
PRE_2012 = "start 2009-01-01 is before 2012-01-01, when Klaviyo began: nothing older exists; use a later start."


# ---------------------------------------------------------------- before 2012

@pytest.mark.parametrize("sync", ["flows", "campaigns"])
def test_validate_request_refuses_a_start_before_klaviyo_existed(sync: str) -> None:
    with pytest.raises(ParamError) as info:
        validate_request({"start": "2009-01-01", "end": "2009-01-05"}, sync=sync)
    assert str(info.value) == PRE_2012


def test_the_first_klaviyo_day_is_accepted() -> None:
    assert validate_request({"start": "2012-01-01", "end": "2012-01-31"}).start == "2012-01-01"
    with pytest.raises(ParamError, match="start 2011-12-31 is before 2012-01-01"):
        validate_request({"start": "2011-12-31", "end": "2012-01-31"})


def test_history_plan_refuses_a_start_before_klaviyo_existed() -> None:
    with pytest.raises(ParamError) as info:
        plan_history("2009-01-01", "2012-06-30", NY, max_share=100, today_local=TODAY)
    assert str(info.value) == PRE_2012
    # and without a today (end given): the same sentence
    with pytest.raises(ParamError) as info:
        plan_history("2009-01-01", "2009-06-30", NY, max_share=100)
    assert str(info.value) == PRE_2012


def test_days_up_to_a_raised_hard_max_cannot_reach_before_2012() -> None:
    """FLOWSYNC_MAX_DAYS can be raised: days is then bounded by 2012 too, naming the largest useful value."""
    most = (TODAY - KLAVIYO_EPOCH).days
    assert resolve_window(today_local=TODAY, days=most, max_days=100_000).start == KLAVIYO_EPOCH
    with pytest.raises(ParamError) as info:
        resolve_window(today_local=TODAY, days=most + 1, max_days=100_000)
    assert str(info.value) == (f"days={most + 1} starts 2011-12-31, before 2012-01-01, when Klaviyo began: "
                               f"nothing older exists; use days of at most {most}.")


def test_preflight_refuses_before_the_zone_is_known() -> None:
    """The pre-call check uses the latest 'today' on earth: its refusals hold in every account zone."""
    now = datetime(2025, 9, 17, 12, tzinfo=UTC)
    assert latest_local_today(now) == date(2025, 9, 18)  # UTC+14 is already tomorrow
    with pytest.raises(ParamError, match="before 2012-01-01"):
        preflight_window(SyncRequest(days=6000), now=now)
    with pytest.raises(ParamError, match="before 2012-01-01"):
        preflight_window(SyncRequest(start="2011-06-01", end="2011-06-02"), now=now)
    preflight_window(SyncRequest(days=7), now=now)  # fine everywhere
    # an end that is "today" somewhere on earth passes the preflight (the account zone decides later)
    preflight_window(SyncRequest(start="2025-09-17", end="2025-09-18"), now=now)


# ---------------------------------------------------------------- end = today

@pytest.mark.parametrize("planner", [plan_flow_sync, plan_campaign_sync])
def test_end_today_is_allowed_with_a_partial_day_warning(planner) -> None:
    plan = planner(SyncRequest(start="2025-09-15", end="2025-09-17"), tz=NY, today_local=TODAY, max_days=366)
    assert plan["window"] == {"start": "2025-09-15", "end": "2025-09-17"}
    assert plan["warnings"] == [
        "end 2025-09-17 is today in the account timezone (America/New_York): its numbers are partial and will "
        "still grow; rerun after midnight (or end yesterday) for complete days."
    ]
    done = planner(SyncRequest(start="2025-09-15", end="2025-09-16"), tz=NY, today_local=TODAY, max_days=366)
    assert done["warnings"] == []
    keyed = planner(SyncRequest(timeframeKey="this_week"), tz=NY, today_local=TODAY, max_days=366)
    assert len(keyed["warnings"]) == 1  # "this_*" keys include today: same warning


def test_history_end_today_warns_and_yesterday_does_not() -> None:
    plan = plan_history("2025-09-01", "2025-09-17", NY, today_local=TODAY)
    assert [w.split(":")[0] for w in plan["warnings"]] == [
        "end 2025-09-17 is today in the account timezone (America/New_York)"]
    assert plan_history("2025-09-01", None, NY, today_local=TODAY)["warnings"] == []


# ---------------------------------------------------------------- nightly width

def test_documented_nightly_lookback_bound_matches_the_chunk_math() -> None:
    """extraLookbackDays ≤ bound keeps one series call; bound + 1 needs a second one."""
    assert NIGHTLY_ONE_CALL_MAX_LOOKBACK == SERIES_MAX_DAYS - 3 == 57
    anchor = date(2025, 9, 16)

    def calls(extra: int) -> int:
        return len(report_chunks(nightly_window(anchor, extra), NY, aggregation="per-day", strategy="series"))

    assert [calls(e) for e in (0, NIGHTLY_ONE_CALL_MAX_LOOKBACK - 1, NIGHTLY_ONE_CALL_MAX_LOOKBACK,
                               NIGHTLY_ONE_CALL_MAX_LOOKBACK + 1)] == [1, 1, 1, 2]
