"""Report semantics: timeframes in the account timezone, the end-day bucket, DST, self-consistency,
activity-only groupings, conversion metrics, channel filters, validation errors, pagination."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sandbox_helpers import Api, error_of, report_body

from flowsync_dev.sandbox.data import ADDITIVE_STATS, ALL_STATS, RATE_STATS, SandboxAccount, rates, sum_stats

TODAY = date(2025, 9, 17)
SERIES, VALUES, CAMPAIGNS = "/api/flow-series-reports", "/api/flow-values-reports", "/api/campaign-values-reports"
EMAIL = 'equals(send_channel,"email")'


@pytest.fixture
def api(sandbox_factory):
    client = Api(sandbox_factory(today=TODAY, enforce_limits=False))
    yield client
    client.close()


@pytest.fixture(scope="module")
def truth() -> SandboxAccount:
    """An independent ground-truth instance (same seed and day as the servers)."""
    return SandboxAccount(7, today=TODAY)


def series(api: Api, start: str, end: str, stats: list[str] | None = None, **extra) -> dict:
    metric = extra.pop("metric", None) or api.srv.account.placed_order_metric.id
    resp = api.post(SERIES, report_body("flow-series-report", stats or ["recipients"], metric, start, end, **extra))
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]["attributes"]


def test_end_day_bucket_is_included(api):
    attrs = series(api, "2025-03-01T00:00:00-05:00", "2025-03-08T00:00:00-05:00")
    assert [d[:10] for d in attrs["date_times"]] == [f"2025-03-0{i}" for i in range(1, 9)]
    assert all(len(r["statistics"]["recipients"]) == 8 for r in attrs["results"])


def test_offset_is_ignored_local_date_parts_are_used(api):
    base = series(api, "2025-03-01T00:00:00-05:00", "2025-03-08T00:00:00-05:00")
    shifted = series(api, "2025-03-01T00:00:00+09:00", "2025-03-08T00:00:00Z")
    assert shifted == base


def test_dst_days_in_date_times(api, sandbox_factory):
    spring = series(api, "2025-03-08T00:00:00-05:00", "2025-03-11T00:00:00-04:00")["date_times"]
    assert spring == ["2025-03-08T00:00:00-05:00", "2025-03-09T00:00:00-05:00",
                      "2025-03-10T00:00:00-04:00", "2025-03-11T00:00:00-04:00"]
    fall = series(api, "2024-11-02T00:00:00-04:00", "2024-11-04T00:00:00-05:00")["date_times"]
    assert fall == ["2024-11-02T00:00:00-04:00", "2024-11-03T00:00:00-04:00", "2024-11-04T00:00:00-05:00"]
    utc = Api(sandbox_factory(today=TODAY, enforce_limits=False, date_times_utc=True))
    try:
        got = series(utc, "2025-03-08T00:00:00-05:00", "2025-03-11T00:00:00-04:00")["date_times"]
    finally:
        utc.close()
    assert got == ["2025-03-08T05:00:00+00:00", "2025-03-09T05:00:00+00:00",
                   "2025-03-10T04:00:00+00:00", "2025-03-11T04:00:00+00:00"]


def test_series_values_and_ground_truth_agree(api, truth):
    metric = truth.placed_order_metric.id
    start, end = "2025-05-01T00:00:00-04:00", "2025-06-15T00:00:00-04:00"
    stats = sorted(ALL_STATS)
    ser = series(api, start, end, stats, filter=EMAIL)
    vals = api.post(VALUES, report_body("flow-values-report", stats, metric, start, end, filter=EMAIL)).json()
    values = {r["groupings"]["flow_message_id"]: r["statistics"] for r in vals["data"]["attributes"]["results"]}
    days = truth.days(date(2025, 5, 1), date(2025, 6, 15))
    assert len(ser["date_times"]) == len(days)
    assert {r["groupings"]["flow_message_id"] for r in ser["results"]} == set(values)
    assert len(values) > 5
    for row in ser["results"]:
        mid = row["groupings"]["flow_message_id"]
        daily = [truth.daily_stats(mid, d, metric) for d in days]
        expected_total = sum_stats(daily)
        for name in ADDITIVE_STATS:
            assert row["statistics"][name] == pytest.approx([d[name] for d in daily]), (mid, name)
            assert values[mid][name] == pytest.approx(sum(row["statistics"][name])), (mid, name)
            assert values[mid][name] == pytest.approx(expected_total[name]), (mid, name)
        expected_rates = rates(expected_total)
        for name in RATE_STATS:
            assert values[mid][name] == pytest.approx(expected_rates[name]), (mid, name)
            assert row["statistics"][name] == pytest.approx([rates(d)[name] for d in daily])
        assert values[mid]["open_rate"] == pytest.approx(
            values[mid]["opens_unique"] / values[mid]["delivered"] if values[mid]["delivered"] else 0.0)


def test_groupings_only_with_activity_drafts_absent_deleted_present(api, truth):
    ser = series(api, "2025-04-01T00:00:00-04:00", "2025-05-30T00:00:00-04:00")
    got = {r["groupings"]["flow_message_id"] for r in ser["results"]}
    days = truth.days(date(2025, 4, 1), date(2025, 5, 30))
    metric = truth.placed_order_metric.id
    active = {m.id for m in truth.flow_messages
              if any(truth.daily_stats(m.id, d, metric)["recipients"] for d in days)}
    assert got == active
    drafts = {m.id for m in truth.flow_messages if truth.flow_by_id[m.flow_id].status == "draft"}
    assert drafts and not got & drafts
    deleted = {m.id for m in truth.flow_messages if m.deleted}
    in_flows = {truth.action_by_id[a].message_id for f in truth.flows for a in f.action_ids}
    assert deleted & got and not deleted & in_flows
    for r in ser["results"]:
        assert any(r["statistics"]["recipients"])


def test_sms_filtered_by_send_channel(api, truth):
    everything = series(api, "2025-08-01T00:00:00-04:00", "2025-08-10T00:00:00-04:00")["results"]
    email = series(api, "2025-08-01T00:00:00-04:00", "2025-08-10T00:00:00-04:00", filter=EMAIL)["results"]
    channels = {r["groupings"]["send_channel"] for r in everything}
    assert channels == {"email", "sms"}
    assert {r["groupings"]["send_channel"] for r in email} == {"email"}
    assert len(email) == sum(1 for r in everything if r["groupings"]["send_channel"] == "email")
    flow_id = truth.flows[1].id
    one_flow = series(api, "2025-08-01T00:00:00-04:00", "2025-08-10T00:00:00-04:00",
                      filter=f'and(equals(flow_id,"{flow_id}"),contains-any(send_channel,["sms"]))')["results"]
    assert one_flow and {(r["groupings"]["flow_id"], r["groupings"]["send_channel"]) for r in one_flow} == \
        {(flow_id, "sms")}


def test_conversion_metric_changes_conversions(api, truth):
    body = {"start": "2025-07-01T00:00:00-04:00", "end": "2025-07-31T00:00:00-04:00"}
    shopify, woo = [m.id for m in truth.metrics if m.name == "Placed Order"]
    opened = next(m.id for m in truth.metrics if m.name == "Opened Email")

    def totals(metric: str) -> dict:
        resp = api.post(VALUES, report_body("flow-values-report", ["conversion_value", "conversion_uniques",
                                                                   "delivered"], metric, **body))
        rows = resp.json()["data"]["attributes"]["results"]
        return {r["groupings"]["flow_message_id"]: r["statistics"] for r in rows}

    a, b, c = totals(shopify), totals(woo), totals(opened)
    assert set(a) == set(b) == set(c)
    assert {k: v["delivered"] for k, v in a.items()} == {k: v["delivered"] for k, v in b.items()}
    assert sum(v["conversion_value"] for v in a.values()) > sum(v["conversion_value"] for v in b.values()) > 0
    assert all(v["conversion_value"] == 0 and v["conversion_uniques"] == 0 for v in c.values())


def test_weekly_buckets_sum_daily(api):
    start, end = "2025-06-01T00:00:00-04:00", "2025-06-28T00:00:00-04:00"
    daily = series(api, start, end, ["delivered", "click_rate"])
    weekly = series(api, start, end, ["delivered", "click_rate"], interval="weekly")
    assert len(weekly["date_times"]) == 4
    d = {r["groupings"]["flow_message_id"]: r["statistics"]["delivered"] for r in daily["results"]}
    for r in weekly["results"]:
        per_day = d[r["groupings"]["flow_message_id"]]
        assert r["statistics"]["delivered"] == [sum(per_day[i:i + 7]) for i in (0, 7, 14, 21)]


def test_campaign_values_match_ground_truth(api, truth):
    metric = truth.placed_order_metric.id
    resp = api.post(CAMPAIGNS, report_body("campaign-values-report", ["recipients", "conversion_value",
                                                                      "unsubscribe_uniques", "open_rate"],
                                           metric, key="last_365_days"))
    rows = resp.json()["data"]["attributes"]["results"]
    first, last = TODAY - timedelta(days=365), TODAY - timedelta(days=1)
    expected = {cm.id for cm in truth.campaign_messages
                if truth.campaign_by_id[cm.campaign_id].status == "Sent"
                and first <= truth.campaign_by_id[cm.campaign_id].send_day <= last}
    assert {r["groupings"]["campaign_message_id"] for r in rows} == expected
    for r in rows:
        s = truth.campaign_stats(r["groupings"]["campaign_message_id"], metric)
        assert r["statistics"]["recipients"] == s["recipients"] > 0
        assert r["statistics"]["conversion_value"] == pytest.approx(s["conversion_value"])
        assert r["statistics"]["unsubscribe_uniques"] == s["unsubscribe_uniques"]
        assert r["statistics"]["open_rate"] == pytest.approx(rates(s)["open_rate"])
        assert set(r["groupings"]) == {"campaign_id", "campaign_message_id", "send_channel"}
    email = api.post(CAMPAIGNS, report_body("campaign-values-report", ["recipients"], metric, key="last_365_days",
                                            filter=EMAIL)).json()["data"]["attributes"]["results"]
    assert {r["groupings"]["send_channel"] for r in email} == {"email"}
    assert len(email) < len(rows)


@pytest.mark.parametrize(("mutate", "pointer"), [
    (lambda a: a.pop("conversion_metric_id"), "/data/attributes/conversion_metric_id"),
    (lambda a: a.update(conversion_metric_id="XXXXXX"), "/data/attributes/conversion_metric_id"),
    (lambda a: a.update(timeframe={"start": "2025-01-01T00:00:00", "end": "2025-03-15T00:00:00"}),
     "/data/attributes/timeframe"),
    (lambda a: a.update(timeframe={"start": "2025-03-15T00:00:00", "end": "2025-03-01T00:00:00"}),
     "/data/attributes/timeframe"),
    (lambda a: a.update(timeframe={"start": "yesterday", "end": "2025-03-01T00:00:00"}),
     "/data/attributes/timeframe/start"),
    (lambda a: a.update(timeframe={"key": "last_2_days"}), "/data/attributes/timeframe/key"),
    (lambda a: a.pop("timeframe"), "/data/attributes/timeframe"),
    (lambda a: a.update(statistics=["recipients", "open_ratio"]), "/data/attributes/statistics/1"),
    (lambda a: a.update(statistics=[]), "/data/attributes/statistics"),
    (lambda a: a.pop("interval"), "/data/attributes/interval"),
    (lambda a: a.update(interval="yearly"), "/data/attributes/interval"),
    (lambda a: a.update(group_by=["flow_id", "campaign_id"]), "/data/attributes/group_by"),
    (lambda a: a.update(group_by=["flow_id", "send_channel"]), "/data/attributes/group_by"),
    (lambda a: a.update(filter='equals(send_channel,"fax")'), "/data/attributes/filter"),
    (lambda a: a.update(filter='and(equals(flow_id,"a"),equals(flow_id,"b"))'), "/data/attributes/filter"),
    (lambda a: a.update(filter="equals(send_channel"), "/data/attributes/filter"),
])
def test_series_body_validation(api, mutate, pointer):
    body = report_body("flow-series-report", ["recipients"], api.srv.account.placed_order_metric.id,
                       "2025-03-01T00:00:00-05:00", "2025-03-08T00:00:00-05:00")
    mutate(body["data"]["attributes"])
    resp = api.post(SERIES, body)
    assert resp.status_code == 400, resp.text
    err = error_of(resp)
    assert err["source"] == {"pointer": pointer}
    assert err["status"] == 400 and err["detail"]


def test_values_validation_type_and_year_limit(api):
    metric = api.srv.account.placed_order_metric.id
    body = report_body("flow-series-report", ["recipients"], metric, "2024-01-01T00:00:00", "2024-02-01T00:00:00")
    resp = api.post(VALUES, body)
    assert error_of(resp)["source"] == {"pointer": "/data/type"}
    too_long = report_body("flow-values-report", ["recipients"], metric, "2024-01-01T00:00:00", "2025-01-02T00:00:00")
    resp = api.post(VALUES, too_long)
    assert resp.status_code == 400 and error_of(resp)["source"] == {"pointer": "/data/attributes/timeframe"}
    a_year = report_body("flow-values-report", ["recipients"], metric, "2024-01-01T00:00:00", "2025-01-01T00:00:00")
    assert api.post(VALUES, a_year).status_code == 200
    resp = api.client.post(VALUES, content=b"{not json")
    assert resp.status_code == 400 and error_of(resp)["source"] == {"pointer": "/data"}


def test_report_pagination_follows_links_next(sandbox_factory, api):
    small = Api(sandbox_factory(today=TODAY, enforce_limits=False, report_page_size=4))
    try:
        metric = small.srv.account.placed_order_metric.id
        body = report_body("flow-series-report", ["recipients", "open_rate"], metric,
                           "2025-05-01T00:00:00-04:00", "2025-05-20T00:00:00-04:00")
        pages, results = 0, []
        resp = small.post(SERIES, body)
        while True:
            assert resp.status_code == 200, resp.text
            doc = resp.json()
            pages += 1
            results += doc["data"]["attributes"]["results"]
            nxt = doc["links"].get("next")
            if not nxt:
                break
            assert "page_cursor=" in nxt
            resp = small.request("POST", nxt, json=body)
        whole = api.post(SERIES, body).json()["data"]["attributes"]["results"]
        assert results == whole
        assert pages == -(-len(whole) // 4) > 1
        # a cursor is bound to its request body
        other = report_body("flow-series-report", ["recipients"], metric,
                            "2025-05-01T00:00:00-04:00", "2025-05-20T00:00:00-04:00")
        first = small.post(SERIES, body).json()["links"]["next"]
        resp = small.request("POST", first, json=other)
        assert resp.status_code == 400 and error_of(resp)["source"] == {"parameter": "page_cursor"}
    finally:
        small.close()


def test_two_servers_same_seed_are_identical(sandbox_factory):
    a = Api(sandbox_factory(seed=11, today=TODAY, enforce_limits=False, profiles=150))
    b = Api(sandbox_factory(seed=11, today=TODAY, enforce_limits=False, profiles=150))
    c = Api(sandbox_factory(seed=12, today=TODAY, enforce_limits=False, profiles=150))
    try:
        def snapshot(x: Api) -> str:
            metric = x.get("/api/metrics", filter='equals(integration.name,"Shopify")').json()["data"][0]["id"]
            body = report_body("flow-series-report", ["recipients", "conversion_value"], metric,
                               "2025-02-01T00:00:00", "2025-02-10T00:00:00")
            parts = [x.collect("/api/flows", include="flow-actions,tags")[:2],
                     x.collect("/api/profiles", **{"page[size]": "100",
                                                   "additional-fields[profile]": "subscriptions"})[0],
                     x.post(SERIES, body).json()["data"]["attributes"]]
            # links differ only by the port
            return [json.dumps(p, sort_keys=True).replace(x.srv.url, "BASE") for p in parts]

        sa, sb, sc = snapshot(a), snapshot(b), snapshot(c)
        assert sa == sb
        assert sa[0] != sc[0] and sa[1] != sc[1] and sa[2] != sc[2]
    finally:
        for x in (a, b, c):
            x.close()
