"""The ground truth (pure): determinism, account shape, statistic invariants and definitions."""

from __future__ import annotations

import inspect
from collections import Counter
from datetime import date, timedelta

import pytest

from flowsync_dev.sandbox.data import (
    ADDITIVE_STATS,
    HISTORY_DAYS,
    RATE_STATS,
    SandboxAccount,
    rates,
    sum_stats,
    timeframe_key_days,
)

TODAY = date(2025, 9, 17)


@pytest.fixture(scope="module")
def acc() -> SandboxAccount:
    return SandboxAccount(7, today=TODAY)


def test_deterministic_given_seed_and_today(acc):
    again = SandboxAccount(7, today=TODAY)
    assert again.flows == acc.flows and again.flow_messages == acc.flow_messages
    assert again.campaigns == acc.campaigns and again.metrics == acc.metrics
    m = acc.flow_messages[0].id
    assert again.daily_stats(m, date(2025, 2, 3), acc.placed_order_metric.id) == \
        acc.daily_stats(m, date(2025, 2, 3), acc.placed_order_metric.id)
    assert [p["id"] for p in again.profiles][:50] == [p["id"] for p in acc.profiles][:50]
    other = SandboxAccount(8, today=TODAY)
    assert [f.id for f in other.flows] != [f.id for f in acc.flows]


def test_today_defaults_to_account_timezone_date():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    before = datetime.now(ZoneInfo("America/New_York")).date()
    got = SandboxAccount(1).today
    assert got in (before, before + timedelta(days=1))


def test_flows_cover_statuses_channels_tags(acc):
    statuses = Counter((f.status, f.archived) for f in acc.flows)
    assert len(acc.flows) >= 12
    assert {s for s, _a in statuses} == {"live", "manual", "draft"}
    assert any(a for _s, a in statuses)
    for f in acc.flows:
        sends = [acc.action_by_id[a] for a in f.action_ids if acc.action_by_id[a].type != "time-delay"]
        assert 1 <= len(sends) <= 4
        assert all(a.status == f.status for a in sends)
        assert all(acc.message_by_id[a.message_id].action_id == a.id for a in sends)
    assert {m.channel for m in acc.flow_messages} == {"email", "sms"}
    assert any(f.tag_ids for f in acc.flows) and any(c.tag_ids for c in acc.campaigns)
    deleted = [m for m in acc.flow_messages if m.deleted]
    assert 1 <= len(deleted) <= 2
    referenced = {a.message_id for a in acc.flow_actions}
    assert not {m.id for m in deleted} & referenced
    assert len(acc.live_flow_messages()) == len(acc.flow_messages) - len(deleted)


def test_metrics_and_campaigns(acc):
    placed = [(m.name, m.integration_name) for m in acc.metrics if m.name == "Placed Order"]
    assert placed == [("Placed Order", "Shopify"), ("Placed Order", "WooCommerce")]
    assert acc.placed_order_metric.integration_name == "Shopify"
    assert 25 <= len(acc.campaigns) <= 35
    assert {c.status for c in acc.campaigns} == {"Sent", "Draft", "Scheduled", "Cancelled"}
    for c in acc.campaigns:
        if c.status == "Sent":
            assert acc.history_start <= c.send_day <= acc.yesterday
            assert acc.campaign_stats(c.message_ids[0], acc.placed_order_metric.id)["recipients"] > 0
        else:
            assert acc.campaign_stats(c.message_ids[0], acc.placed_order_metric.id)["recipients"] == 0
        if c.status == "Scheduled":
            assert c.send_day > TODAY
        assert c.included and not set(c.included) & set(c.excluded)
    assert any(c.archived for c in acc.campaigns)


def test_daily_stats_invariants(acc):
    metric = acc.placed_order_metric.id
    days = [acc.yesterday - timedelta(days=i) for i in range(0, 700, 37)]
    seen_activity = False
    for m in acc.flow_messages:
        for d in days:
            s = acc.daily_stats(m.id, d, metric)
            assert set(s) == set(ADDITIVE_STATS)
            assert s["recipients"] == s["delivered"] + s["bounced"] + s["failed"]
            assert s["bounced_or_failed"] == s["bounced"] + s["failed"]
            assert s["opens_unique"] <= s["opens"] and s["opens_unique"] <= s["delivered"]
            assert s["clicks_unique"] <= s["clicks"] and s["conversion_uniques"] <= s["conversions"]
            assert s["unsubscribe_uniques"] <= s["unsubscribes"] and s["conversion_uniques"] <= s["delivered"]
            assert s["conversion_value"] == round(s["conversion_value"], 2)
            if m.channel == "sms":
                assert s["opens"] == 0 and s["bounced"] == 0
            else:
                assert s["failed"] == 0 and s["message_segment_count_sum"] == 0
            seen_activity |= s["recipients"] > 0
    assert seen_activity


def test_no_activity_for_drafts_today_future_and_before_history(acc):
    metric = acc.placed_order_metric.id
    draft = next(m for m in acc.flow_messages if acc.flow_by_id[m.flow_id].status == "draft")
    assert all(acc.daily_stats(draft.id, acc.yesterday - timedelta(days=i), metric)["recipients"] == 0
               for i in range(60))
    busy = max(acc.live_flow_messages(), key=lambda m: m.base_volume)
    assert acc.daily_stats(busy.id, acc.yesterday, metric)["recipients"] > 0
    for d in (TODAY, TODAY + timedelta(days=3), acc.history_start - timedelta(days=1)):
        assert acc.daily_stats(busy.id, d, metric)["recipients"] == 0
    assert acc.history_start == TODAY - timedelta(days=HISTORY_DAYS)


def test_conversion_metric_dependence(acc):
    busy = max(acc.live_flow_messages(), key=lambda m: m.base_volume)
    shopify, woo = [m.id for m in acc.metrics if m.name == "Placed Order"]
    opened = next(m.id for m in acc.metrics if m.name == "Opened Email")
    first, last = acc.yesterday - timedelta(days=29), acc.yesterday
    a, b = acc.range_stats(busy.id, first, last, shopify), acc.range_stats(busy.id, first, last, woo)
    c = acc.range_stats(busy.id, first, last, opened)
    assert a["delivered"] == b["delivered"] == c["delivered"] > 0
    assert a["conversion_value"] != b["conversion_value"]
    assert c["conversions"] == c["conversion_uniques"] == 0 and c["conversion_value"] == 0


def test_rates_definitions():
    r = rates({"recipients": 200, "delivered": 100, "bounced": 4, "failed": 0, "bounced_or_failed": 4,
               "opens_unique": 50, "clicks_unique": 10, "conversion_uniques": 5, "conversions": 8,
               "conversion_value": 400.0, "unsubscribe_uniques": 2, "spam_complaints": 1, "text_message_spend": 0})
    assert r["open_rate"] == 0.5 and r["click_rate"] == 0.1 and r["conversion_rate"] == 0.05
    assert r["revenue_per_recipient"] == 4.0 and r["unsubscribe_rate"] == 0.02 and r["spam_complaint_rate"] == 0.01
    assert r["bounce_rate"] == 0.02 and r["click_to_open_rate"] == 0.2 and r["average_order_value"] == 50.0
    assert r["delivery_rate"] == 0.5 and r["text_message_roi"] == 0.0
    assert set(rates({})) == set(RATE_STATS) and all(v == 0.0 for v in rates({}).values())
    total = sum_stats([{"conversion_value": 0.1, "delivered": 1}, {"conversion_value": 0.2, "delivered": 2}])
    assert total["conversion_value"] == 0.3 and total["delivered"] == 3


def test_profiles_and_lists(acc):
    profiles = acc.profiles
    assert inspect.isgenerator(profiles)
    ids = [p["id"] for p in profiles]
    assert len(ids) == acc.n_profiles == 2000 and ids == sorted(ids) and len(set(ids)) == len(ids)
    sample = [acc.profile(i)["attributes"]["subscriptions"]["email"]["marketing"] for i in range(0, 2000, 3)]
    assert {s["consent"] for s in sample} == {"SUBSCRIBED", "UNSUBSCRIBED", "NEVER_SUBSCRIBED"}
    assert any(s["list_suppressions"] for s in sample)
    assert any(s["consent"] == "SUBSCRIBED" and not s["can_receive_email_marketing"] for s in sample)
    newsletter = list(acc.list_members(acc.lists[0].id))
    assert 0.5 * 2000 < len(newsletter) < 0.7 * 2000 and newsletter == sorted(newsletter)
    sms = acc.lists[2]
    assert sms.name == "SMS Subscribers"
    assert all(acc.profile(i)["attributes"]["phone_number"] for i in acc.list_member_indexes(sms.id))


@pytest.mark.parametrize(("key", "first", "last"), [
    ("yesterday", date(2025, 9, 16), date(2025, 9, 16)),
    ("last_7_days", date(2025, 9, 10), date(2025, 9, 16)),
    ("last_30_days", date(2025, 8, 18), date(2025, 9, 16)),
    ("this_month", date(2025, 9, 1), date(2025, 9, 17)),
    ("last_month", date(2025, 8, 1), date(2025, 8, 31)),
    ("last_week", date(2025, 9, 8), date(2025, 9, 14)),
    ("last_year", date(2024, 1, 1), date(2024, 12, 31)),
])
def test_timeframe_keys(key, first, last):
    assert timeframe_key_days(key, TODAY) == (first, last)
