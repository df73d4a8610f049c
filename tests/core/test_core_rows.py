"""Report results → rows: window filtering, zero-fill, drafts, deleted-since messages, budget, campaigns."""

from __future__ import annotations

import json
import random
from datetime import date
from decimal import Decimal

import core_docs as d
import pytest
from test_core_catalog import campaigns_fixture, flows_fixture

from flowsync_provider.core.catalog import build_campaign_catalog, build_flow_catalog
from flowsync_provider.core.csvio import csv_text
from flowsync_provider.core.errors import ParamError, RowBudgetExceeded
from flowsync_provider.core.rows import (
    CAMPAIGN_KEYS,
    campaign_rows,
    check_row_budget,
    flow_rows,
    merge_daily,
    merge_stats,
    planned_flow_rows,
    range_rows,
    report_names,
    series_to_daily,
    sum_additive,
    values_to_totals,
)
from flowsync_provider.core.schemas import CAMPAIGNS_COLUMNS, FLOWS_COLUMNS
from flowsync_provider.core.windows import Window

NY = "America/New_York"
WINDOW = Window(date(2025, 3, 8), date(2025, 3, 10))  # spans the spring-forward night
# Klaviyo has been seen to return the end day's bucket too (03-11) — it must be dropped.
LOCAL_DT = ["2025-03-08T00:00:00-05:00", "2025-03-09T00:00:00-05:00", "2025-03-10T00:00:00-04:00",
            "2025-03-11T00:00:00-04:00"]
UTC_DT = ["2025-03-08T05:00:00+00:00", "2025-03-09T05:00:00+00:00", "2025-03-10T04:00:00+00:00",
          "2025-03-11T04:00:00+00:00"]


def series(date_times: list[str]) -> dict:
    return {
        "date_times": date_times,
        "results": [
            d.series_result("F2", "M21", {"delivered": [10, 20, 30, 99], "open_rate": [0.5, 0.25, 0.1, 0.9],
                                          "conversion_value": [1.5, 0, 2.25, 99]}, message_name="Welcome 1"),
            d.series_result("F2", "S21", {"delivered": [5, 5, 5, 5], "open_rate": [1, 1, 1, 1]}, channel="sms"),
            d.series_result("F1", "M11", {"delivered": [0, 7, 0, 99], "open_rate": [0, 0.5, 0, 0.9]}),
            d.series_result("F2", "M99", {"delivered": [0, 3, 0, 0]}, message_name="Deleted since"),
            d.series_result("F9", "M91", {"delivered": [4, 0, 0, 0]}),
            d.series_result("F3", "M31", {"delivered": [8, 8, 8, 8]}),
        ],
    }


def catalog(**kw) -> dict:
    args = {"include_drafts": True, "limit_flows": None, "limit_messages": None} | kw
    return build_flow_catalog(flows_fixture(), **args)


def test_series_to_daily_filters_window_channel_and_agrees_on_both_date_forms() -> None:
    daily = series_to_daily(series(LOCAL_DT), NY, WINDOW)
    assert daily == series_to_daily(series(UTC_DT), NY, WINDOW)
    assert {k[0] for k in daily} == {"2025-03-08", "2025-03-09", "2025-03-10"}  # extra end bucket dropped
    assert not any(k[2] == "S21" for k in daily)  # sms grouping ignored
    assert daily[("2025-03-10", "F2", "M21")] == {"delivered": 30, "open_rate": 0.1, "conversion_value": 2.25}
    # the end-exclusive form (no end bucket) yields exactly the same rows
    trimmed = series(LOCAL_DT[:3])
    for result in trimmed["results"]:
        result["statistics"] = {k: v[:3] for k, v in result["statistics"].items()}
    assert series_to_daily(trimmed, NY, WINDOW) == daily
    assert report_names(series(LOCAL_DT)) == {"M21": "Welcome 1", "M99": "Deleted since"}


def test_flow_rows_zero_fill_shape_and_order() -> None:
    cat = catalog()
    daily = series_to_daily(series(LOCAL_DT), NY, WINDOW)
    rows = flow_rows(cat, daily, WINDOW)
    catalog_keys = [(f["id"], m["id"]) for f in cat["flows"] for m in f["messages"]]
    extras = [("F2", "M99")]
    assert len(rows) == WINDOW.n_days * (len(catalog_keys) + len(extras))
    assert [list(r) for r in rows[:1]] == [list(FLOWS_COLUMNS)]
    keys = [(r["Day"], r["Flow ID"], r["Flow Message ID"]) for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    by_key = {k: r for k, r in zip(keys, rows, strict=True)}
    m21 = by_key[("2025-03-09", "F2", "M21")]
    assert (m21["Delivered"], m21["Open Rate"], m21["Flow Name"], m21["Flow Message Name"], m21["Status"],
            m21["Tags"], m21["Flow Message Channel"]) == (20, 0.25, "Welcome", "Welcome 1", "live",
                                                          "Core;Onboarding", "email")
    zero = by_key[("2025-03-08", "F5", "M51")]  # no data at all → zero-filled
    assert all(zero[c] == 0 for c in ("Delivered", "Open Rate", "Revenue", "Bounce Rate"))


def test_drafts_get_zero_rows() -> None:
    rows = flow_rows(catalog(), {}, WINDOW)
    drafts = [r for r in rows if r["Flow ID"] == "F4"]
    assert len(drafts) == WINDOW.n_days
    assert {r["Status"] for r in drafts} == {"draft"} and {r["Delivered"] for r in drafts} == {0}
    assert not [r for r in flow_rows(catalog(include_drafts=False), {}, WINDOW) if r["Flow ID"] == "F4"]


def test_deleted_since_messages_follow_policy_and_excluded_ids_never_return() -> None:
    cat = catalog(limit_messages=5)  # cuts M51 (and leaves F3 archived, S21 sms excluded)
    assert cat["truncated"]["messages"] == ["M51"]
    daily = series_to_daily(series(LOCAL_DT), NY, WINDOW)
    daily[("2025-03-09", "F5", "M51")] = {"delivered": 12}  # a cut message with data stays cut
    names = report_names(series(LOCAL_DT))

    keep = flow_rows(cat, daily, WINDOW, names=names)
    pairs = {(r["Flow ID"], r["Flow Message ID"]) for r in keep}
    assert ("F2", "M99") in pairs
    assert not pairs & {("F9", "M91"), ("F3", "M31"), ("F5", "M51"), ("F2", "S21")}
    m99 = [r for r in keep if r["Flow Message ID"] == "M99"]
    assert len(m99) == WINDOW.n_days  # zero-filled like the rest
    assert m99[1]["Delivered"] == 3 and m99[0]["Delivered"] == 0
    assert (m99[0]["Flow Name"], m99[0]["Flow Message Name"], m99[0]["Status"]) == ("Welcome", "Deleted since",
                                                                                     "live")

    keep_all = flow_rows(cat, daily, WINDOW, extra_messages_policy="keep_all")
    unknown = [r for r in keep_all if r["Flow ID"] == "F9"]
    assert unknown and unknown[0]["Flow Name"] == "" and unknown[0]["Status"] == "" and unknown[0]["Delivered"] == 4
    assert ("F3", "M31") not in {(r["Flow ID"], r["Flow Message ID"]) for r in keep_all}  # archived stays out

    drop = flow_rows(cat, daily, WINDOW, extra_messages_policy="drop")
    assert {(r["Flow ID"], r["Flow Message ID"]) for r in drop} == {
        (f["id"], m["id"]) for f in cat["flows"] for m in f["messages"]}
    with pytest.raises(ParamError, match="extraMessagesPolicy"):
        flow_rows(cat, daily, WINDOW, extra_messages_policy="maybe")


def test_report_names_fill_unenriched_catalog() -> None:
    cat = catalog(enrich_message_names=False)
    rows = flow_rows(cat, {}, WINDOW, names={"M21": "From report"})
    assert {r["Flow Message Name"] for r in rows if r["Flow Message ID"] == "M21"} == {"From report"}
    assert {r["Flow Message Name"] for r in rows if r["Flow Message ID"] == "M22"} == {""}


def test_rows_sum_to_report_totals() -> None:
    daily = series_to_daily(series(LOCAL_DT), NY, WINDOW)
    rows = flow_rows(catalog(), daily, WINDOW)
    totals = sum_additive(rows)
    # in-window email deliveries of kept messages: M21 10+20+30, M11 7, M99 3
    assert totals["Delivered"] == Decimal(70)
    assert totals["Revenue"] == Decimal("3.75")


def test_identical_csv_bytes_from_shuffled_inputs() -> None:
    def build(seed: int | None) -> str:
        doc = flows_fixture()
        rep = series(UTC_DT if seed else LOCAL_DT)
        if seed is not None:
            rng = random.Random(seed)
            rng.shuffle(doc["data"])
            rng.shuffle(doc["included"])
            rng.shuffle(rep["results"])
        cat = build_flow_catalog(doc, include_drafts=True, limit_flows=4, limit_messages=6)
        return csv_text(FLOWS_COLUMNS, flow_rows(cat, series_to_daily(rep, NY, WINDOW), WINDOW,
                                                 names=report_names(rep)))

    baseline = build(None)
    assert baseline.count("\n") > 10
    for seed in (1, 2, 3):
        assert build(seed) == baseline


def test_range_rows_one_per_message_on_first_day() -> None:
    values = {"results": [
        d.values_result({"flow_id": "F2", "flow_message_id": "M21", "send_channel": "email"},
                        {"delivered": 60, "open_rate": 0.2}),
        d.values_result({"flow_id": "F2", "flow_message_id": "S21", "send_channel": "sms"}, {"delivered": 9}),
    ]}
    totals = values_to_totals(values)
    assert list(totals) == [("F2", "M21")]
    cat = catalog(include_drafts=False)
    rows = range_rows(cat, totals, WINDOW)
    assert len(rows) == sum(len(f["messages"]) for f in cat["flows"])
    assert {r["Day"] for r in rows} == {"2025-03-08"}
    assert [r for r in rows if r["Flow Message ID"] == "M21"][0]["Delivered"] == 60


def test_merge_stats_adds_counts_and_weights_rates() -> None:
    merged = merge_stats({"delivered": 100, "recipients": 100, "open_rate": 0.5, "revenue_per_recipient": 1.0},
                         {"delivered": 300, "recipients": 100, "open_rate": 0.1, "revenue_per_recipient": 3.0})
    assert merged["delivered"] == 400
    assert merged["open_rate"] == pytest.approx(0.2)
    assert merged["revenue_per_recipient"] == pytest.approx(2.0)
    assert merge_stats({"open_rate": None, "delivered": None}, {"open_rate": 0.3}) == {
        "delivered": 0, "open_rate": 0.3}
    a = {("2025-03-08", "F1", "M1"): {"delivered": 2}}
    b = {("2025-03-08", "F1", "M1"): {"delivered": 3}, ("2025-03-09", "F1", "M1"): {"delivered": 1}}
    assert merge_daily(a, b) == {("2025-03-08", "F1", "M1"): {"delivered": 5},
                                 ("2025-03-09", "F1", "M1"): {"delivered": 1}}


def test_row_budget() -> None:
    cat = catalog(include_drafts=False)
    planned, days, messages = planned_flow_rows(cat, Window(date(2025, 1, 1), date(2025, 3, 31)))
    assert (planned, days, messages) == (90 * 5, 90, 5)
    check_row_budget(planned, 450, days=days, messages=messages)
    check_row_budget(planned, None)
    with pytest.raises(RowBudgetExceeded) as info:
        check_row_budget(planned, 449, days=days, messages=messages)
    assert str(info.value) == ("Range too large / row budget exceeded: 450 rows planned (90 days × 5 messages) > "
                               "rowBudget 449; reduce days, limitFlows or limitMessages.")
    assert info.value.planned_rows == 450 and info.value.budget == 449
    assert planned_flow_rows(cat, WINDOW, per_day=False) == (5, 1, 5)
    with pytest.raises(ParamError, match="^rowBudget must be"):
        check_row_budget(1, 0)


def test_campaign_rows_order_offsets_and_zero_fill() -> None:
    window = Window(date(2025, 9, 9), date(2025, 9, 12))
    cat = build_campaign_catalog(campaigns_fixture(), window=window, tz=NY, lists=[], segments=[])
    values = values_to_totals({"results": [
        d.values_result({"campaign_id": "C2", "campaign_message_id": "CM2", "send_channel": "email"},
                        {"recipients": 100, "delivered": 98, "unsubscribe_uniques": 2, "conversion_value": 10.5}),
        d.values_result({"campaign_id": "C2", "campaign_message_id": "CM3", "send_channel": "sms"},
                        {"recipients": 50}),
    ]}, keys=CAMPAIGN_KEYS)
    rows = campaign_rows(cat, values, NY)
    assert [(r["Campaign ID"], r["Campaign Message ID"]) for r in rows] == [("C1", "CM1"), ("C2", "CM2")]
    c1, c2 = rows
    assert (c1["Send Time"], c1["Send Day"]) == ("2025-09-09T22:30:00-04:00", "2025-09-09")
    assert c1["Recipients"] == 0 and c1["Audiences"] == "L1;S1;XX" and c1["Tags"] == "Autumn;Promo"
    assert (c2["Recipients"], c2["Delivered"], c2["Unsubscribes"], c2["Revenue"]) == (100, 98, 2, 10.5)
    assert c2["Subject"] == "Good morning" and c2["Channel"] == "email" and c2["Status"] == "Sent"
    assert list(c2) == list(CAMPAIGNS_COLUMNS)
    text = csv_text(CAMPAIGNS_COLUMNS, rows)
    assert text.splitlines()[2].startswith("C2,Morning,CM2,email,2025-09-10T10:00:00-04:00,2025-09-10,Sent,")
    json.dumps(rows)
