"""Catalogs from spec-shaped JSON:API documents: exclusions, caps with cut ids, metrics, account, campaigns."""

from __future__ import annotations

import json
import random
from datetime import date

import core_docs as d
import pytest

from flowsync_provider.core.catalog import (
    account_info,
    build_campaign_catalog,
    build_flow_catalog,
    catalog_message_count,
    resolve_conversion_metric,
)
from flowsync_provider.core.errors import FlowsyncError, ParamError
from flowsync_provider.core.windows import Window


def flows_fixture() -> dict:
    return d.flows_doc(
        [
            d.flow("F2", "Welcome", action_ids=["A21", "A22", "A23"], tag_ids=["T2", "T1"]),
            d.flow("F1", "Abandoned Cart", status="manual", action_ids=["A11", "A12"]),
            d.flow("F3", "Old flow", archived=True, action_ids=["A31"]),
            d.flow("F4", "Draft flow", status="draft", action_ids=["A41"]),
            d.flow("F5", "Winback", action_ids=["A51"]),
        ],
        [
            d.email_action("A21", "M22", "Welcome 2"),
            d.email_action("A22", "M21", "Welcome 1"),
            d.sms_action("A23", "S21", "Welcome SMS"),
            d.delay_action("A11"),
            d.ab_test_action("A12", [("M11", "Cart A"), ("M12", "Cart B")]),
            d.email_action("A31", "M31", "Old"),
            d.email_action("A41", "M41", "Draft 1"),
            d.email_action("A51", "M51", "Winback 1"),
            d.tag("T1", "Onboarding"),
            d.tag("T2", "Core"),
        ],
    )


def test_flow_catalog_shape_exclusions_and_order() -> None:
    catalog = build_flow_catalog(flows_fixture(), include_drafts=False, limit_flows=None, limit_messages=None)
    assert [f["id"] for f in catalog["flows"]] == ["F1", "F2", "F5"]
    f1, f2, _ = catalog["flows"]
    assert f1 == {
        "id": "F1", "name": "Abandoned Cart", "status": "manual", "archived": False, "tags": [],
        "messages": [
            {"id": "M11", "name": "Cart A", "channel": "email", "action_id": "A12"},
            {"id": "M12", "name": "Cart B", "channel": "email", "action_id": "A12"},
        ],
    }
    assert f2["tags"] == ["Core", "Onboarding"]
    assert [(m["id"], m["name"], m["action_id"]) for m in f2["messages"]] == [
        ("M21", "Welcome 1", "A22"), ("M22", "Welcome 2", "A21")]
    assert catalog["excluded"] == {"archived": ["F3"], "drafts": ["F4"], "non_email_messages": ["S21"]}
    assert catalog["truncated"] == {"flows": [], "messages": []}
    assert catalog_message_count(catalog) == 5
    json.dumps(catalog)  # JSON-able (crosses task boundaries as XCom)


def test_drafts_only_with_include_drafts_and_names_without_enrichment() -> None:
    catalog = build_flow_catalog(flows_fixture(), include_drafts=True, limit_flows=None, limit_messages=None,
                                 enrich_message_names=False)
    assert [f["id"] for f in catalog["flows"]] == ["F1", "F2", "F4", "F5"]
    assert catalog["excluded"]["drafts"] == []
    assert {m["name"] for f in catalog["flows"] for m in f["messages"]} == {""}


def test_caps_cut_flows_then_messages_deterministically() -> None:
    catalog = build_flow_catalog(flows_fixture(), include_drafts=False, limit_flows=2, limit_messages=3)
    assert [f["id"] for f in catalog["flows"]] == ["F1", "F2"]
    assert [m["id"] for f in catalog["flows"] for m in f["messages"]] == ["M11", "M12", "M21"]
    assert catalog["truncated"] == {"flows": ["F5"], "messages": ["M22"]}
    assert len(catalog["warnings"]) == 2

    only_messages = build_flow_catalog(flows_fixture(), include_drafts=False, limit_flows=None, limit_messages=1)
    assert [len(f["messages"]) for f in only_messages["flows"]] == [1, 0, 0]
    assert only_messages["truncated"]["messages"] == ["M12", "M21", "M22", "M51"]


def test_catalog_is_independent_of_input_order() -> None:
    doc = flows_fixture()
    baseline = json.dumps(build_flow_catalog(doc, include_drafts=True, limit_flows=3, limit_messages=4),
                          sort_keys=True)
    for seed in range(5):
        shuffled = json.loads(json.dumps(doc))
        rng = random.Random(seed)
        rng.shuffle(shuffled["data"])
        rng.shuffle(shuffled["included"])
        for flow in shuffled["data"]:
            rng.shuffle(flow["relationships"]["flow-actions"]["data"])
        again = build_flow_catalog(shuffled, include_drafts=True, limit_flows=3, limit_messages=4)
        assert json.dumps(again, sort_keys=True) == baseline


def test_actions_linked_only_from_the_action_side_and_missing_actions() -> None:
    doc = d.flows_doc([d.flow("F1", "Flow", action_ids=["A9"])],
                      [d.email_action("A1", "M1", "One", flow_id="F1")])
    catalog = build_flow_catalog(doc, include_drafts=False, limit_flows=None, limit_messages=None)
    assert [m["id"] for m in catalog["flows"][0]["messages"]] == ["M1"]
    assert any("A9" in w for w in catalog["warnings"])


@pytest.mark.parametrize("bad", [0, -1, "5", True])
def test_limits_must_be_positive_integers(bad: object) -> None:
    with pytest.raises(ParamError, match="^limitFlows must be a whole number of at least 1"):
        build_flow_catalog(flows_fixture(), include_drafts=False, limit_flows=bad, limit_messages=None)
    with pytest.raises(ParamError, match="^limitMessages must be"):
        build_flow_catalog(flows_fixture(), include_drafts=False, limit_flows=None, limit_messages=bad)


# ---------------------------------------------------------------- conversion metric

METRICS = [
    d.metric("MX0", "Opened Email", d.API),
    d.metric("MA1", "Placed Order", d.API),
    d.metric("MS9", "Placed Order", d.SHOPIFY),
    d.metric("MS2", "Placed Order", d.SHOPIFY),
]


def test_conversion_metric_resolution_order() -> None:
    assert resolve_conversion_metric(METRICS, override="MA1", env_value="MS9") == {
        "id": "MA1", "name": "Placed Order", "integration": "API", "source": "param"}
    assert resolve_conversion_metric(METRICS, override=" ", env_value="ZZZ") == {
        "id": "ZZZ", "name": "", "integration": "", "source": "env"}
    assert resolve_conversion_metric(METRICS, override=None, env_value=None) == {
        "id": "MS2", "name": "Placed Order", "integration": "Shopify", "source": "metrics-api"}
    no_shopify = [m for m in METRICS if m["id"] != "MS2" and m["id"] != "MS9"]
    assert resolve_conversion_metric(no_shopify, override=None, env_value="")["id"] == "MA1"
    by_name_only = [d.metric("MN1", "Placed Order", {"name": "Shopify"})]
    assert resolve_conversion_metric(by_name_only + METRICS[1:2], override=None, env_value=None)["id"] == "MN1"


def test_conversion_metric_missing_is_one_clear_error() -> None:
    with pytest.raises(FlowsyncError) as info:
        resolve_conversion_metric(METRICS[:1], override=None, env_value=None)
    assert str(info.value) == ("No 'Placed Order' metric found in this Klaviyo account: set conversionMetricId or "
                               "SHOPIFY_PLACED_ORDER_METRIC_ID.")


# ---------------------------------------------------------------- account

def test_account_info_and_timezone_default() -> None:
    assert account_info(d.account()) == {"id": "AbC123", "timezone": "America/New_York",
                                         "timezone_defaulted": False, "currency": "USD", "name": "Example Shop"}
    bad = d.account(timezone="Mars/Olympus")
    assert account_info(bad)["timezone"] == "UTC" and account_info(bad)["timezone_defaulted"] is True
    missing = d.account()
    del missing["attributes"]["timezone"]
    assert account_info(missing)["timezone"] == "UTC"


# ---------------------------------------------------------------- campaigns

LISTS = [d.named("list", "L1", "Newsletter"), d.named("list", "L2", "Customers")]
SEGMENTS = [d.named("segment", "S1", "VIPs")]


def campaigns_fixture() -> dict:
    return d.campaigns_doc(
        [
            # 2025-09-10 02:30 UTC is 2025-09-09 22:30 in New York
            d.campaign("C1", "Late night", send_time="2025-09-10T02:30:00+00:00", audiences=["L1", "S1", "XX"],
                       message_ids=["CM1"], tag_ids=["T2", "T1"]),
            d.campaign("C2", "Morning", send_time="2025-09-10T14:00:00+00:00", audiences=["L2"],
                       message_ids=["CM2", "CM3"]),
            d.campaign("C3", "Archived", archived=True, message_ids=["CM4"]),
            d.campaign("C4", "Draft", status="Draft", send_time=None, message_ids=["CM5"]),
            d.campaign("C5", "Old", send_time="2025-08-01T14:00:00+00:00", message_ids=["CM6"]),
            d.campaign("C6", "Scheduled", status="Scheduled", send_time="2025-09-10T16:00:00+00:00"),
        ],
        [
            d.campaign_message("CM1", "C1", subject="Midnight sale", label="Main"),
            d.campaign_message("CM2", "C2", subject="Good morning", label="A"),
            d.campaign_message("CM3", "C2", channel="sms"),
            d.campaign_message("CM4", "C3"),
            d.campaign_message("CM5", "C4"),
            d.campaign_message("CM6", "C5"),
            d.tag("T1", "Promo"),
            d.tag("T2", "Autumn"),
        ],
    )


def test_campaign_catalog_window_filtering_in_account_timezone() -> None:
    window = Window(date(2025, 9, 10), date(2025, 9, 12))
    ny = build_campaign_catalog(campaigns_fixture(), window=window, tz="America/New_York", lists=LISTS,
                                segments=SEGMENTS)
    assert [c["id"] for c in ny["campaigns"]] == ["C2"]  # C1 went out on the 9th, New York time
    assert ny["excluded"] == {"archived": ["C3"], "not_sent": ["C4", "C6"], "no_send_time": [],
                              "outside_window": ["C1", "C5"], "non_email_messages": ["CM3"]}
    c2 = ny["campaigns"][0]
    assert c2 == {"id": "C2", "name": "Morning", "status": "Sent", "send_time": "2025-09-10T10:00:00-04:00",
                  "send_day": "2025-09-10", "audiences": ["Customers"], "tags": [],
                  "messages": [{"id": "CM2", "channel": "email", "subject": "Good morning", "label": "A"}]}

    utc = build_campaign_catalog(campaigns_fixture(), window=window, tz="UTC", lists=LISTS, segments=SEGMENTS)
    assert [c["id"] for c in utc["campaigns"]] == ["C1", "C2"]
    c1 = utc["campaigns"][0]
    assert c1["audiences"] == ["Newsletter", "VIPs", "XX"]  # unknown audience ids stay visible
    assert c1["tags"] == ["Autumn", "Promo"]
    assert c1["send_time"] == "2025-09-10T02:30:00+00:00" and c1["send_day"] == "2025-09-10"
    assert c1["messages"][0]["subject"] == "Midnight sale" and c1["messages"][0]["label"] == "Main"

    one_day = Window(date(2025, 9, 10), date(2025, 9, 10))
    tokyo = build_campaign_catalog(campaigns_fixture(), window=one_day, tz="Asia/Tokyo", lists=LISTS,
                                   segments=SEGMENTS)
    assert [c["id"] for c in tokyo["campaigns"]] == ["C1", "C2"]  # 11:30 and 23:00 on the 10th in Tokyo
    assert tokyo["campaigns"][1]["send_time"] == "2025-09-10T23:00:00+09:00"
    ny_9th = build_campaign_catalog(campaigns_fixture(), window=Window(date(2025, 9, 9), date(2025, 9, 9)),
                                    tz="America/New_York", lists=LISTS, segments=SEGMENTS)
    assert [c["id"] for c in ny_9th["campaigns"]] == ["C1"]
    assert ny_9th["campaigns"][0]["send_day"] == "2025-09-09"
    json.dumps(utc)
