"""Date windows in the account timezone: the one place that turns days/start/end/timeframeKey into dates.

Every date here is an account-local calendar day. Klaviyo reports are bucketed by the account's
timezone, so resolving windows (and mapping report ``date_times`` back to days) in any other zone
would shift rows by a day around midnight and DST.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flowsync_provider.core.errors import ParamError

DEFAULT_MAX_DAYS = 366
REPORT_CHUNK_DAYS = 60  # Klaviyo: a daily series timeframe cannot be longer than 60 days
KLAVIYO_EPOCH = date(2012, 1, 1)  # Klaviyo began in 2012: no account holds data from before this day
# The account-local 'today' is never later than in the easternmost zone (UTC+14): resolving a window
# there gives the latest window any account can have, so its refusals hold for every account zone.
EASTERNMOST_ZONE = "Pacific/Kiritimati"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, order=True)
class Window:
    """An inclusive range of account-local days [start, end]."""

    start: date
    end: date

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, date) or isinstance(value, datetime):
                raise TypeError(f"Window.{name} must be a datetime.date, got {type(value).__name__}")
        if self.start > self.end:
            raise ValueError(f"Window start {self.start} is after end {self.end}")

    @property
    def n_days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.n_days)]

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, data: dict) -> Window:
        return cls(date.fromisoformat(str(data["start"])), date.fromisoformat(str(data["end"])))


# ---------------------------------------------------------------- timezones

def is_valid_timezone(tz: str | None) -> bool:
    """True if ``tz`` is a known IANA zone name."""
    if not tz or not isinstance(tz, str):
        return False
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def zone(tz: str | None) -> ZoneInfo:
    """The account zone; unknown or empty names fall back to UTC (the runbook's default)."""
    return ZoneInfo(tz) if is_valid_timezone(tz) else ZoneInfo("UTC")


def _aware(instant: datetime) -> datetime:
    """Naive datetimes are taken as UTC (Airflow's logical dates are UTC)."""
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def local_today(tz: str | None, now: datetime) -> date:
    """The account-local calendar date at instant ``now``."""
    return _aware(now).astimezone(zone(tz)).date()


def latest_local_today(now: datetime) -> date:
    """The latest calendar date anywhere on earth at ``now``: a bound for checks made before the zone is known."""
    return local_today(EASTERNMOST_ZONE, now)


def check_not_before_klaviyo(field: str, value: str | date | None) -> None:
    """Refuse a day before Klaviyo existed: a report call for it would spend quota on nothing."""
    if _blank(value):
        return
    day = _parse_day(field, value)  # type: ignore[arg-type]
    if day < KLAVIYO_EPOCH:
        raise ParamError(f"{field} {day} is before {KLAVIYO_EPOCH}, when Klaviyo began: nothing older exists; "
                         f"use a later {field}.")


def partial_day_warning(window: Window, today_local: date, tz: str | None) -> list[str]:
    """A window ending today (account time) holds a partial day: allowed, but say so in the summary."""
    if window.end < today_local:
        return []
    return [f"end {window.end} is today in the account timezone ({tz or 'UTC'}): its numbers are partial and "
            "will still grow; rerun after midnight (or end yesterday) for complete days."]


def anchor_day_for_run(run_instant: datetime, tz: str | None) -> date:
    """The nightly anchor T: the account-local day before the run instant (the last complete day)."""
    return local_today(tz, run_instant) - timedelta(days=1)


def nightly_window(anchor_day: date, extra_lookback_days: int = 0) -> Window:
    """The nightly patch window [T-1-extra, T+1] around anchor T (runbook: "yesterday ±1").

    T+1 is usually today (incomplete): re-fetching it each night keeps late events from going missing.
    """
    if extra_lookback_days < 0:
        raise ParamError(
            f"extraLookbackDays must be 0 or more, got {extra_lookback_days}: use 0 for the plain ±1 window."
        )
    return Window(anchor_day - timedelta(days=1 + extra_lookback_days), anchor_day + timedelta(days=1))


# ---------------------------------------------------------------- timeframe keys

def _months_back(day: date, months: int) -> date:
    """The same day-of-month ``months`` earlier, clamped to the month's length (Mar 31 - 1 → Feb 28/29)."""
    index = day.year * 12 + (day.month - 1) - months
    year, month = divmod(index, 12)
    month += 1
    last = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def _last_n_days(n: int) -> Callable[[date], Window]:
    return lambda today: Window(today - timedelta(days=n), today - timedelta(days=1))


def _last_n_months(n: int) -> Callable[[date], Window]:
    return lambda today: Window(_months_back(today, n), today - timedelta(days=1))


def _this_week(today: date) -> Window:
    return Window(today - timedelta(days=today.weekday()), today)


def _last_week(today: date) -> Window:
    monday = today - timedelta(days=today.weekday() + 7)
    return Window(monday, monday + timedelta(days=6))


def _this_month(today: date) -> Window:
    return Window(today.replace(day=1), today)


def _last_month(today: date) -> Window:
    last = today.replace(day=1) - timedelta(days=1)
    return Window(last.replace(day=1), last)


def _this_year(today: date) -> Window:
    return Window(date(today.year, 1, 1), today)


def _last_year(today: date) -> Window:
    return Window(date(today.year - 1, 1, 1), date(today.year - 1, 12, 31))


# Klaviyo's ``Timeframe.key`` enum (spec 2026-07-15), as account-local days relative to today T.
# "last_*" keys are complete days/periods ending yesterday (consistent with ``days``); "this_*" and
# "today" include today (incomplete). Weeks are ISO weeks (Monday..Sunday).
TIMEFRAME_KEYS: dict[str, Callable[[date], Window]] = {
    "today": lambda today: Window(today, today),                      # [T, T]
    "yesterday": lambda today: Window(today - timedelta(days=1),      # [T-1, T-1]
                                      today - timedelta(days=1)),
    "last_7_days": _last_n_days(7),          # [T-7, T-1]
    "last_30_days": _last_n_days(30),        # [T-30, T-1]
    "last_90_days": _last_n_days(90),        # [T-90, T-1]
    "last_365_days": _last_n_days(365),      # [T-365, T-1]
    "last_3_months": _last_n_months(3),      # [same day 3 months ago, T-1]
    "last_12_months": _last_n_months(12),    # [same day 12 months ago, T-1]
    "this_week": _this_week,                 # [Monday of this week, T]
    "last_week": _last_week,                 # previous Monday..Sunday
    "this_month": _this_month,               # [1st of this month, T]
    "last_month": _last_month,               # previous calendar month
    "this_year": _this_year,                 # [Jan 1, T]
    "last_year": _last_year,                 # previous calendar year
}


# ---------------------------------------------------------------- resolve

def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _parse_day(field: str, value: str | date) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = str(value).strip()
    try:
        if not _DATE_RE.match(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ParamError(f"{field} must be a date in YYYY-MM-DD form, got '{text}'.") from None


def _parse_days(value: int | str) -> int:
    if isinstance(value, bool):
        raise ParamError(f"days must be a whole number of at least 1, got '{value}'.")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        n = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    else:
        raise ParamError(f"days must be a whole number of at least 1, got '{value}'.")
    if n < 1:
        raise ParamError(f"days must be a whole number of at least 1, got {n}.")
    return n


def window_source(
    *, days: int | str | None = None, start: str | None = None, end: str | None = None,
    timeframe_key: str | None = None,
) -> str:
    """Which input ``resolve_window`` honours: "start/end", "timeframeKey", "days" or "none" (summaries)."""
    if not _blank(start) or not _blank(end):
        return "start/end"
    if not _blank(timeframe_key):
        return "timeframeKey"
    if not _blank(days):
        return "days"
    return "none"


def resolve_window(
    *,
    today_local: date,
    days: int | str | None = None,
    start: str | date | None = None,
    end: str | date | None = None,
    timeframe_key: str | None = None,
    max_days: int = DEFAULT_MAX_DAYS,
) -> Window:
    """Resolve the run's window in account-local days; raise ParamError (one sentence) on bad input.

    Precedence: start/end > timeframeKey > days. ``days=N`` is the N complete days ending yesterday.
    ``start`` without ``end`` ends yesterday; ``end`` without ``start`` is an error. ``end`` may be today
    (incomplete) but not later. The window may not exceed ``max_days`` (Klaviyo caps reports at a year).
    """
    if max_days < 1:
        raise ValueError("max_days must be at least 1")
    yesterday = today_local - timedelta(days=1)
    source = window_source(days=days, start=start, end=end, timeframe_key=timeframe_key)

    if source == "start/end":
        if _blank(start):
            raise ParamError("end is set without start: give start too, or use days or timeframeKey instead.")
        first = _parse_day("start", start)  # type: ignore[arg-type]
        check_not_before_klaviyo("start", first)
        if _blank(end):
            last = yesterday
            if first > last:
                raise ParamError(
                    f"start ({first}) is after yesterday ({last}), the default end: give an end date "
                    "or an earlier start."
                )
        else:
            last = _parse_day("end", end)  # type: ignore[arg-type]
            if first > last:
                raise ParamError(f"start ({first}) is after end ({last}): swap them or fix the dates.")
        if last > today_local:
            raise ParamError(
                f"end ({last}) is in the future (today is {today_local} in the account timezone): "
                f"use an end on or before {today_local}."
            )
        window = Window(first, last)
        if window.n_days > max_days:
            raise ParamError(
                f"start..end spans {window.n_days} days ({first} to {last}), more than the maximum of "
                f"{max_days}: move start later or end earlier."
            )
        return window

    if source == "timeframeKey":
        key = str(timeframe_key).strip()
        if key not in TIMEFRAME_KEYS:
            raise ParamError(
                f"timeframeKey '{key}' is not a known key: use one of {', '.join(sorted(TIMEFRAME_KEYS))}."
            )
        window = TIMEFRAME_KEYS[key](today_local)
        if window.n_days > max_days:
            raise ParamError(
                f"timeframeKey '{key}' covers {window.n_days} days, more than the maximum of {max_days}: "
                "use a shorter key or start/end."
            )
        _refuse_pre_klaviyo(window, f"timeframeKey '{key}'", "a shorter key")
        return window

    if source == "days":
        n = _parse_days(days)  # type: ignore[arg-type]
        if n > max_days:
            raise ParamError(
                f"days ({n}) is more than the maximum of {max_days}: use a smaller days value "
                "or split the export with start/end."
            )
        window = Window(today_local - timedelta(days=n), yesterday)
        _refuse_pre_klaviyo(window, f"days={n}", f"days of at most {(today_local - KLAVIYO_EPOCH).days}")
        return window

    raise ParamError("No window given: set days, start/end or timeframeKey.")


def _refuse_pre_klaviyo(window: Window, what: str, fix: str) -> None:
    if window.start < KLAVIYO_EPOCH:
        raise ParamError(f"{what} starts {window.start}, before {KLAVIYO_EPOCH}, when Klaviyo began: nothing "
                         f"older exists; use {fix}.")


# ---------------------------------------------------------------- report plumbing

def chunk_window(window: Window, max_days: int = REPORT_CHUNK_DAYS) -> list[Window]:
    """Split into contiguous, ordered chunks of at most ``max_days`` (the last may be shorter)."""
    if max_days < 1:
        raise ValueError("max_days must be at least 1")
    chunks = []
    cursor = window.start
    while cursor <= window.end:
        last = min(cursor + timedelta(days=max_days - 1), window.end)
        chunks.append(Window(cursor, last))
        cursor = last + timedelta(days=1)
    return chunks


def local_midnight(day: date, tz: str | None) -> datetime:
    """Aware datetime of the start of ``day`` in the account zone (offset is DST-correct for that day)."""
    return datetime.combine(day, time(0), tzinfo=zone(tz))


def report_timeframe(window: Window, tz: str | None) -> dict[str, str]:
    """Klaviyo custom timeframe: local midnight of the first day .. 23:59:59 local of the last day.

    Klaviyo evaluates custom timeframes in the company timezone and has been seen to include the
    end instant's day bucket, so an end at the next midnight can add a day. Ending one second before
    midnight keeps the last day inside the window under either reading (instant or day-bucket), which
    matters for values reports whose totals cannot be trimmed afterwards; series are also trimmed by day.
    """
    return {
        "start": local_midnight(window.start, tz).isoformat(),
        "end": datetime.combine(window.end, time(23, 59, 59), tzinfo=zone(tz)).isoformat(),
    }


def parse_instant(value: str) -> datetime:
    """Parse an ISO-8601 date-time (``Z``, offsets, fractions); naive results stay naive."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


def to_local(value: str | datetime, tz: str | None) -> datetime:
    """An instant as an aware account-local datetime (naive input is taken as UTC)."""
    instant = parse_instant(value) if isinstance(value, str) else value
    return _aware(instant).astimezone(zone(tz))


def date_time_to_day(value: str, tz: str | None) -> date:
    """The account-local day a report bucket ``date_time`` labels.

    Daily buckets start at local midnight. Accepted forms: local midnight with its offset
    (``2025-03-09T00:00:00-05:00``), the UTC instant of local midnight (``2025-03-09T05:00:00+00:00``),
    ``Z``, and naive strings (taken as local wall time). If the converted instant is not at local midnight
    but the string's own wall time is, the string labels the local day with a nominal offset (the spec's
    examples use ``+00:00``), so its date is used as is.
    """
    raw = parse_instant(value)
    if raw.tzinfo is None:
        return raw.date()
    local = raw.astimezone(zone(tz))
    if local.time() != time(0) and raw.time() == time(0):
        return raw.date()
    return local.date()


def date_times_to_days(date_times: list[str], tz: str | None) -> list[date]:
    """Map each report ``date_time`` to its account-local day (see ``date_time_to_day``)."""
    return [date_time_to_day(value, tz) for value in date_times]
