"""Report results → CSV rows: zero-filled, deterministically ordered, keyed by the CSV column names.

Rows hold raw numbers (formatting happens once, in csvio). Data walks one way: report JSON → keyed
stats (``series_to_daily`` / ``values_to_totals``) → rows over the catalog (``flow_rows`` /
``range_rows`` / ``campaign_rows``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from flowsync_provider.core.errors import ParamError, RowBudgetExceeded
from flowsync_provider.core.schemas import (
    ADDITIVE_COLUMNS,
    ADDITIVE_STATISTICS,
    CAMPAIGNS_COLUMNS,
    COLUMN_STATISTICS,
    FLOWS_COLUMNS,
    to_decimal,
)
from flowsync_provider.core.windows import Window, date_times_to_days, to_local

FLOW_KEYS: tuple[str, str] = ("flow_id", "flow_message_id")
CAMPAIGN_KEYS: tuple[str, str] = ("campaign_id", "campaign_message_id")
EXTRA_MESSAGE_POLICIES = ("keep", "keep_all", "drop")
# Rates merged across duplicate groupings are weighted by their denominator.
_RATE_WEIGHTS = {"revenue_per_recipient": "recipients", "bounce_rate": "recipients"}

Stats = dict[str, float | int | None]


def _num(value: object) -> float | int:
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int | float):
        return value
    return float(to_decimal(value))


def _is_rate(stat: str) -> bool:
    return stat.endswith("_rate") or stat in _RATE_WEIGHTS


def merge_stats(a: Stats, b: Stats) -> Stats:
    """Combine two stat dicts for the same key: additive stats add, rates are weighted by their denominator.

    Needed when a grouping repeats (e.g. extra group-bys, or overlapping chunks); with the standard
    group-by each key appears once and this is never called.
    """
    out: Stats = {}
    for stat in sorted(set(a) | set(b)):
        va, vb = _num(a.get(stat)), _num(b.get(stat))
        if stat in ADDITIVE_STATISTICS:
            out[stat] = va + vb
        elif _is_rate(stat):
            weight = _RATE_WEIGHTS.get(stat, "delivered")
            wa, wb = _num(a.get(weight)), _num(b.get(weight))
            out[stat] = (va * wa + vb * wb) / (wa + wb) if wa + wb > 0 else max(va, vb)
        else:
            out[stat] = vb if stat in b else va
    return out


def _is_email(groupings: dict) -> bool:
    channel = groupings.get("send_channel")
    return channel is None or channel == "email"


def series_to_daily(series: dict, tz: str | None, window: Window) -> dict[tuple[str, str, str], Stats]:
    """Flow series report → {(day, flow id, message id): stats}, email only, days inside ``window`` only.

    Dropping buckets outside the window makes both "end is exclusive" and "end bucket included" report
    semantics yield the same rows.
    """
    days = date_times_to_days(list(series.get("date_times") or []), tz)
    out: dict[tuple[str, str, str], Stats] = {}
    for result in series.get("results") or []:
        groupings = result.get("groupings") or {}
        if not _is_email(groupings):
            continue
        flow_id, message_id = str(groupings.get(FLOW_KEYS[0])), str(groupings.get(FLOW_KEYS[1]))
        statistics = result.get("statistics") or {}
        for index, day in enumerate(days):
            if not window.contains(day):
                continue
            stats: Stats = {
                name: (values[index] if isinstance(values, list) and index < len(values) else None)
                for name, values in statistics.items()
            }
            key = (day.isoformat(), flow_id, message_id)
            out[key] = merge_stats(out[key], stats) if key in out else stats
    return out


def merge_daily(*parts: dict[tuple[str, str, str], Stats]) -> dict[tuple[str, str, str], Stats]:
    """Union of per-chunk daily dicts (chunks don't overlap; a repeat is merged, never dropped)."""
    out: dict[tuple[str, str, str], Stats] = {}
    for part in parts:
        for key, stats in part.items():
            out[key] = merge_stats(out[key], stats) if key in out else dict(stats)
    return out


def values_to_totals(values: dict, keys: tuple[str, str] = FLOW_KEYS) -> dict[tuple[str, str], Stats]:
    """Values report → {(id, message id): stats}, email only. ``keys=CAMPAIGN_KEYS`` for campaigns."""
    out: dict[tuple[str, str], Stats] = {}
    for result in values.get("results") or []:
        groupings = result.get("groupings") or {}
        if not _is_email(groupings):
            continue
        key = (str(groupings.get(keys[0])), str(groupings.get(keys[1])))
        stats = dict(result.get("statistics") or {})
        out[key] = merge_stats(out[key], stats) if key in out else stats
    return out


def report_names(series_or_values: dict) -> dict[str, str]:
    """message id → name from report groupings (``flow_message_name`` / ``campaign_message_name``), if any."""
    names: dict[str, str] = {}
    for result in series_or_values.get("results") or []:
        groupings = result.get("groupings") or {}
        for id_key, name_key in (("flow_message_id", "flow_message_name"),
                                 ("campaign_message_id", "campaign_message_name")):
            if groupings.get(id_key) is not None and groupings.get(name_key):
                names[str(groupings[id_key])] = str(groupings[name_key])
    return names


# ---------------------------------------------------------------- flows

def _plan(
    catalog: dict, observed: Iterable[tuple[str, str]], policy: str,
) -> list[tuple[str, str, dict | None, str]]:
    """(flow id, message id, catalog flow or None, catalog message name) for every message to write.

    Catalog messages always; report-only messages per ``policy``: "keep" = messages of catalog flows that
    are no longer in the flow (deleted since); "keep_all" = also messages of flows unknown to the catalog
    (deleted flows — and archived ones, when the catalog was fetched without them); "drop" = none.
    Ids the catalog excluded or cut on purpose are never re-added.
    """
    if policy not in EXTRA_MESSAGE_POLICIES:
        raise ParamError(
            f"extraMessagesPolicy '{policy}' is not known: use one of {', '.join(EXTRA_MESSAGE_POLICIES)}."
        )
    flows = {flow["id"]: flow for flow in catalog["flows"]}
    planned = {
        (flow["id"], m["id"]): (flow, m["name"]) for flow in catalog["flows"] for m in flow["messages"]
    }
    known_messages = {message_id for _, message_id in planned}
    excluded, truncated = catalog.get("excluded") or {}, catalog.get("truncated") or {}
    blocked_flows = set(excluded.get("archived", [])) | set(excluded.get("drafts", [])) | set(
        truncated.get("flows", []))
    blocked_messages = set(excluded.get("non_email_messages", [])) | set(truncated.get("messages", []))
    if policy != "drop":
        for flow_id, message_id in observed:
            if (flow_id, message_id) in planned or message_id in known_messages:
                continue
            if flow_id in blocked_flows or message_id in blocked_messages:
                continue
            if flow_id in flows or policy == "keep_all":
                planned[(flow_id, message_id)] = (flows.get(flow_id), "")
    return [(f, m, flow, name) for (f, m), (flow, name) in sorted(planned.items())]


def _flow_row(
    day: str, flow_id: str, message_id: str, flow: dict | None, name: str, stats: Stats | None,
) -> dict:
    stats = stats or {}
    row: dict = {
        "Day": day,
        "Flow ID": flow_id,
        "Flow Name": flow["name"] if flow else "",
        "Flow Message ID": message_id,
        "Flow Message Name": name,
        "Flow Message Channel": "email",
        "Status": flow["status"] if flow else "",
        "Tags": ";".join(sorted(flow["tags"])) if flow else "",
    }
    for column in FLOWS_COLUMNS:
        if column in COLUMN_STATISTICS:
            row[column] = stats.get(COLUMN_STATISTICS[column]) or 0
    return {column: row[column] for column in FLOWS_COLUMNS}


def flow_rows(
    catalog: dict,
    daily: dict[tuple[str, str, str], Stats],
    window: Window,
    *,
    extra_messages_policy: str = "keep",
    names: dict[str, str] | None = None,
) -> list[dict]:
    """One row per (day, message) for each day of ``window``, zero-filled, ordered (Day, Flow ID, Message ID).

    Draft flows (in the catalog only with includeDrafts) get zero rows like any message without data.
    Report-only messages follow ``extra_messages_policy`` (see ``_plan``); their Status is the flow's
    status when the flow is known, else empty. Empty message names are filled from ``names``
    (``report_names``) when available.
    """
    names = names or {}
    observed = {(f, m) for (d, f, m) in daily if window.contains(date.fromisoformat(d))}
    plan = _plan(catalog, observed, extra_messages_policy)
    rows = []
    for day in window.days:
        day_iso = day.isoformat()
        for flow_id, message_id, flow, name in plan:
            rows.append(_flow_row(day_iso, flow_id, message_id, flow, name or names.get(message_id, ""),
                                  daily.get((day_iso, flow_id, message_id))))
    return rows


def range_rows(
    catalog: dict,
    totals: dict[tuple[str, str], Stats],
    window: Window,
    *,
    extra_messages_policy: str = "keep",
    names: dict[str, str] | None = None,
) -> list[dict]:
    """One row per message for the whole window (values report), Day = the window's first day."""
    names = names or {}
    plan = _plan(catalog, totals.keys(), extra_messages_policy)
    day_iso = window.start.isoformat()
    return [
        _flow_row(day_iso, flow_id, message_id, flow, name or names.get(message_id, ""),
                  totals.get((flow_id, message_id)))
        for flow_id, message_id, flow, name in plan
    ]


def planned_flow_rows(catalog: dict, window: Window, *, per_day: bool = True) -> tuple[int, int, int]:
    """(planned rows, days, messages) for the row budget, known before any report call."""
    messages = sum(len(flow["messages"]) for flow in catalog["flows"])
    days = window.n_days if per_day else 1
    return days * messages, days, messages


def check_row_budget(
    planned_rows: int, budget: int | None, *, days: int | None = None, messages: int | None = None,
) -> None:
    """Fail fast (runbook) when the CSV would exceed ``budget`` rows; ``None`` means no budget."""
    if budget is None:
        return
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ParamError(
            f"rowBudget must be a whole number of at least 1, got '{budget}': raise it or leave it unset."
        )
    if planned_rows > budget:
        raise RowBudgetExceeded(planned_rows, budget, days, messages)


# ---------------------------------------------------------------- campaigns

def campaign_rows(campaign_catalog: dict, values: dict[tuple[str, str], Stats], tz: str | None) -> list[dict]:
    """One row per campaign message, zero-filled, ordered (send time, campaign id, message id).

    Send Time is ISO-8601 with the account's UTC offset; Send Day its account-local date.
    """
    keyed = []
    for campaign in campaign_catalog["campaigns"]:
        send = to_local(campaign["send_time"], tz)
        for message in campaign["messages"]:
            stats = values.get((campaign["id"], message["id"])) or {}
            row: dict = {
                "Campaign ID": campaign["id"],
                "Campaign Name": campaign["name"],
                "Campaign Message ID": message["id"],
                "Channel": message.get("channel") or "email",
                "Send Time": send.isoformat(),
                "Send Day": send.date().isoformat(),
                "Status": campaign["status"],
                "Subject": message.get("subject") or "",
                "Audiences": ";".join(sorted(campaign.get("audiences") or [])),
                "Tags": ";".join(sorted(campaign.get("tags") or [])),
            }
            for column in CAMPAIGNS_COLUMNS:
                if column in COLUMN_STATISTICS:
                    row[column] = stats.get(COLUMN_STATISTICS[column]) or 0
            keyed.append(((send.timestamp(), campaign["id"], message["id"]),
                          {column: row[column] for column in CAMPAIGNS_COLUMNS}))
    keyed.sort(key=lambda item: item[0])
    return [row for _, row in keyed]


def sum_additive(rows: Iterable[dict]) -> dict[str, Decimal]:
    """Exact totals of the additive columns present in ``rows`` (checks: rows sum to report totals)."""
    totals: dict[str, Decimal] = {}
    for row in rows:
        for column in ADDITIVE_COLUMNS:
            if column in row:
                totals[column] = totals.get(column, Decimal(0)) + to_decimal(row[column])
    return totals
