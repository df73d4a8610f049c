"""Window resolution, chunking, report timeframes and bucket→day mapping in the account timezone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.windows import (
    TIMEFRAME_KEYS,
    Window,
    anchor_day_for_run,
    chunk_window,
    date_times_to_days,
    local_today,
    nightly_window,
    report_timeframe,
    resolve_window,
    window_source,
    zone,
)

TODAY = date(2025, 9, 17)  # a Wednesday
NY = "America/New_York"


def W(a: str, b: str) -> Window:
    return Window(date.fromisoformat(a), date.fromisoformat(b))


# ---------------------------------------------------------------- Window

def test_window_days_and_roundtrip() -> None:
    w = W("2025-02-27", "2025-03-02")
    assert w.n_days == 4
    assert w.days == [date(2025, 2, 27), date(2025, 2, 28), date(2025, 3, 1), date(2025, 3, 2)]
    assert w.to_dict() == {"start": "2025-02-27", "end": "2025-03-02"}
    assert Window.from_dict(w.to_dict()) == w
    with pytest.raises(ValueError):
        W("2025-03-02", "2025-03-01")
    with pytest.raises(TypeError):
        Window(datetime(2025, 1, 1), date(2025, 1, 2))


# ---------------------------------------------------------------- resolve_window

def test_days_are_complete_days_ending_yesterday() -> None:
    assert resolve_window(today_local=TODAY, days=7) == W("2025-09-10", "2025-09-16")
    assert resolve_window(today_local=TODAY, days=1) == W("2025-09-16", "2025-09-16")
    assert resolve_window(today_local=TODAY, days="3") == W("2025-09-14", "2025-09-16")


def test_precedence_start_end_over_timeframe_over_days() -> None:
    both = resolve_window(today_local=TODAY, days=7, start="2025-09-01", end="2025-09-05",
                          timeframe_key="last_month")
    assert both == W("2025-09-01", "2025-09-05")
    assert resolve_window(today_local=TODAY, days=7, timeframe_key="last_month") == W("2025-08-01", "2025-08-31")
    assert window_source(days=7, start="2025-09-01") == "start/end"
    assert window_source(days=7, timeframe_key="yesterday") == "timeframeKey"
    assert window_source(days=7, start="", end=" ", timeframe_key="") == "days"
    assert window_source() == "none"


def test_start_without_end_ends_yesterday_and_end_may_be_today() -> None:
    assert resolve_window(today_local=TODAY, start="2025-09-01") == W("2025-09-01", "2025-09-16")
    assert resolve_window(today_local=TODAY, start="2025-09-15", end="2025-09-17") == W("2025-09-15", "2025-09-17")
    assert resolve_window(today_local=TODAY, start=date(2025, 9, 1), end=date(2025, 9, 2)) == W(
        "2025-09-01", "2025-09-02")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "2025-13-01"}, "start must be a date in YYYY-MM-DD form, got '2025-13-01'."),
        ({"start": "2025-09-01", "end": "09/05/2025"}, "end must be a date in YYYY-MM-DD form, got '09/05/2025'."),
        ({"start": "20250901"}, "start must be a date in YYYY-MM-DD form, got '20250901'."),
        ({"start": "2025-09-05", "end": "2025-09-01"},
         "start (2025-09-05) is after end (2025-09-01): swap them or fix the dates."),
        ({"start": "2025-09-17"},
         "start (2025-09-17) is after yesterday (2025-09-16), the default end: give an end date or an earlier start."),
        ({"end": "2025-09-05"}, "end is set without start: give start too, or use days or timeframeKey instead."),
        ({"start": "2025-09-10", "end": "2025-09-18"},
         "end (2025-09-18) is in the future (today is 2025-09-17 in the account timezone): "
         "use an end on or before 2025-09-17."),
        ({"days": 0}, "days must be a whole number of at least 1, got 0."),
        ({"days": -3}, "days must be a whole number of at least 1, got -3."),
        ({"days": "seven"}, "days must be a whole number of at least 1, got 'seven'."),
        ({"days": True}, "days must be a whole number of at least 1, got 'True'."),
        ({"days": 400}, "days (400) is more than the maximum of 366: use a smaller days value or split the export "
                        "with start/end."),
        ({"start": "2024-01-01", "end": "2025-09-01"},
         "start..end spans 610 days (2024-01-01 to 2025-09-01), more than the maximum of 366: "
         "move start later or end earlier."),
        ({"timeframe_key": "last_2_days"},
         "timeframeKey 'last_2_days' is not a known key: use one of " + ", ".join(sorted(TIMEFRAME_KEYS)) + "."),
        ({}, "No window given: set days, start/end or timeframeKey."),
    ],
)
def test_param_errors_are_one_clear_sentence(kwargs: dict, message: str) -> None:
    with pytest.raises(ParamError) as info:
        resolve_window(today_local=TODAY, **kwargs)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_max_days_is_configurable_and_applies_to_timeframe_keys() -> None:
    assert resolve_window(today_local=TODAY, days=30, max_days=30).n_days == 30
    with pytest.raises(ParamError, match=r"^days \(31\) is more than the maximum of 30"):
        resolve_window(today_local=TODAY, days=31, max_days=30)
    with pytest.raises(ParamError, match=r"^timeframeKey 'last_90_days' covers 90 days, more than the maximum of 60"):
        resolve_window(today_local=TODAY, timeframe_key="last_90_days", max_days=60)


def test_timeframe_keys_match_klaviyo_enum() -> None:
    import json
    from pathlib import Path

    spec = Path(__file__).resolve().parents[1] / "data" / "openapi" / "reporting.json"  # vendored slice
    enum = json.loads(spec.read_text())["components"]["schemas"]["Timeframe"]["properties"]["key"]["enum"]
    assert sorted(TIMEFRAME_KEYS) == sorted(enum)


@pytest.mark.parametrize(
    ("key", "start", "end"),
    [
        ("today", "2025-09-17", "2025-09-17"),
        ("yesterday", "2025-09-16", "2025-09-16"),
        ("last_7_days", "2025-09-10", "2025-09-16"),
        ("last_30_days", "2025-08-18", "2025-09-16"),
        ("last_90_days", "2025-06-19", "2025-09-16"),
        ("last_365_days", "2024-09-17", "2025-09-16"),
        ("last_3_months", "2025-06-17", "2025-09-16"),
        ("last_12_months", "2024-09-17", "2025-09-16"),
        ("this_week", "2025-09-15", "2025-09-17"),
        ("last_week", "2025-09-08", "2025-09-14"),
        ("this_month", "2025-09-01", "2025-09-17"),
        ("last_month", "2025-08-01", "2025-08-31"),
        ("this_year", "2025-01-01", "2025-09-17"),
        ("last_year", "2024-01-01", "2024-12-31"),
    ],
)
def test_timeframe_key_dates(key: str, start: str, end: str) -> None:
    assert resolve_window(today_local=TODAY, timeframe_key=key) == W(start, end)


def test_timeframe_keys_consistent_with_days_and_edge_dates() -> None:
    assert resolve_window(today_local=TODAY, timeframe_key="last_30_days") == resolve_window(
        today_local=TODAY, days=30)
    # month arithmetic clamps: May 31 - 3 months = Feb 28; Jan 1: last_month is December of the prior year
    assert resolve_window(today_local=date(2025, 5, 31), timeframe_key="last_3_months").start == date(2025, 2, 28)
    assert resolve_window(today_local=date(2024, 5, 31), timeframe_key="last_3_months").start == date(2024, 2, 29)
    assert resolve_window(today_local=date(2025, 1, 1), timeframe_key="last_month") == W("2024-12-01", "2024-12-31")
    assert resolve_window(today_local=date(2025, 1, 1), timeframe_key="this_month") == W("2025-01-01", "2025-01-01")
    # Monday: this_week is just today; last_week the previous Mon..Sun
    assert resolve_window(today_local=date(2025, 9, 15), timeframe_key="this_week") == W("2025-09-15", "2025-09-15")
    assert resolve_window(today_local=date(2025, 9, 15), timeframe_key="last_week") == W("2025-09-08", "2025-09-14")
    # every key fits the default maximum on a leap-year Dec 31
    for key in TIMEFRAME_KEYS:
        assert resolve_window(today_local=date(2024, 12, 31), timeframe_key=key).n_days <= 366


# ---------------------------------------------------------------- timezones, nightly

def test_local_today_uses_account_timezone() -> None:
    now = datetime(2025, 9, 17, 2, 30, tzinfo=UTC)
    assert local_today(NY, now) == date(2025, 9, 16)
    assert local_today("Asia/Tokyo", now) == date(2025, 9, 17)
    assert local_today("Not/AZone", now) == date(2025, 9, 17)  # unknown → UTC
    assert local_today("", datetime(2025, 9, 17, 23, 59)) == date(2025, 9, 17)  # naive → UTC
    assert str(zone(None)) == "UTC"


def test_nightly_window_and_anchor() -> None:
    run = datetime(2025, 9, 17, 6, 0, tzinfo=UTC)  # 02:00 in New York on the 17th
    anchor = anchor_day_for_run(run, NY)
    assert anchor == date(2025, 9, 16)
    assert nightly_window(anchor) == W("2025-09-15", "2025-09-17")
    assert nightly_window(anchor, extra_lookback_days=2) == W("2025-09-13", "2025-09-17")
    assert anchor_day_for_run(datetime(2025, 9, 17, 3, 0, tzinfo=UTC), NY) == date(2025, 9, 15)
    with pytest.raises(ParamError, match="extraLookbackDays"):
        nightly_window(anchor, extra_lookback_days=-1)


# ---------------------------------------------------------------- chunking

@pytest.mark.parametrize(("n_days", "sizes"), [(90, [60, 30]), (120, [60, 60]), (61, [60, 1]), (1, [1]),
                                               (60, [60]), (366, [60] * 6 + [6])])
def test_chunk_window_sizes_are_contiguous_and_ordered(n_days: int, sizes: list[int]) -> None:
    window = Window(date(2025, 1, 1), date(2025, 1, 1) + timedelta(days=n_days - 1))
    chunks = chunk_window(window, 60)
    assert [c.n_days for c in chunks] == sizes
    assert chunks[0].start == window.start and chunks[-1].end == window.end
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start == a.end + timedelta(days=1)
    assert [d for c in chunks for d in c.days] == window.days


def test_chunk_window_rejects_non_positive_size() -> None:
    with pytest.raises(ValueError):
        chunk_window(W("2025-01-01", "2025-01-02"), 0)


# ---------------------------------------------------------------- report timeframe (DST)

def test_report_timeframe_offsets_follow_dst() -> None:
    spring = report_timeframe(W("2025-03-08", "2025-03-10"), NY)
    assert spring == {"start": "2025-03-08T00:00:00-05:00", "end": "2025-03-10T23:59:59-04:00"}
    fall = report_timeframe(W("2025-11-01", "2025-11-02"), NY)
    assert fall == {"start": "2025-11-01T00:00:00-04:00", "end": "2025-11-02T23:59:59-05:00"}
    assert report_timeframe(W("2025-09-01", "2025-09-01"), "UTC") == {
        "start": "2025-09-01T00:00:00+00:00", "end": "2025-09-01T23:59:59+00:00"}
    assert report_timeframe(W("2025-09-01", "2025-09-01"), "Asia/Kolkata")["start"] == "2025-09-01T00:00:00+05:30"


# ---------------------------------------------------------------- date_times → days (DST)

def test_date_times_local_midnight_and_utc_instant_agree_around_spring_forward() -> None:
    local = ["2025-03-08T00:00:00-05:00", "2025-03-09T00:00:00-05:00", "2025-03-10T00:00:00-04:00"]
    utc = ["2025-03-08T05:00:00+00:00", "2025-03-09T05:00:00+00:00", "2025-03-10T04:00:00+00:00"]
    zulu = ["2025-03-08T05:00:00Z", "2025-03-09T05:00:00Z", "2025-03-10T04:00:00.000Z"]
    expected = [date(2025, 3, 8), date(2025, 3, 9), date(2025, 3, 10)]
    assert date_times_to_days(local, NY) == expected
    assert date_times_to_days(utc, NY) == expected
    assert date_times_to_days(zulu, NY) == expected


def test_date_times_around_fall_back() -> None:
    local = ["2025-11-01T00:00:00-04:00", "2025-11-02T00:00:00-04:00", "2025-11-03T00:00:00-05:00"]
    utc = ["2025-11-01T04:00:00+00:00", "2025-11-02T04:00:00+00:00", "2025-11-03T05:00:00+00:00"]
    expected = [date(2025, 11, 1), date(2025, 11, 2), date(2025, 11, 3)]
    assert date_times_to_days(local, NY) == expected
    assert date_times_to_days(utc, NY) == expected


def test_date_times_nominal_utc_label_and_naive_strings() -> None:
    # a local day labelled with a nominal +00:00 (the spec's examples) keeps its date
    assert date_times_to_days(["2025-03-09T00:00:00+00:00"], NY) == [date(2025, 3, 9)]
    assert date_times_to_days(["2025-03-09T00:00:00"], NY) == [date(2025, 3, 9)]
    # east of UTC: local midnight of the 9th is the 8th 15:00 UTC
    assert date_times_to_days(["2025-03-08T15:00:00+00:00"], "Asia/Tokyo") == [date(2025, 3, 9)]
