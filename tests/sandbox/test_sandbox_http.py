"""HTTP behaviour of the sandbox's collections: auth, revision, pagination, page sizes, filters."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sandbox_helpers import Api, error_of


@pytest.fixture(scope="module")
def api(klaviyo_sandbox):
    client = Api(klaviyo_sandbox)
    yield client
    client.close()


def test_missing_and_unknown_keys_are_401(klaviyo_sandbox):
    resp = httpx.get(klaviyo_sandbox.url + "/api/flows", headers={"revision": "2026-07-15"})
    assert resp.status_code == 401
    assert error_of(resp)["code"] == "not_authenticated"
    bad = Api(klaviyo_sandbox, key="pk_not_a_key")
    try:
        resp = bad.get("/api/flows")
        assert resp.status_code == 401
        err = error_of(resp)
        assert err["code"] == "authentication_failed"
        assert "pk_not_a_key" not in resp.text
    finally:
        bad.close()


def test_readonly_key_lacks_profile_and_list_scopes(klaviyo_sandbox):
    ro = Api(klaviyo_sandbox, key=klaviyo_sandbox.readonly_key)
    try:
        assert ro.get("/api/flows").status_code == 200
        for path in ("/api/profiles", "/api/lists", f"/api/lists/{klaviyo_sandbox.account.lists[0].id}/profiles"):
            resp = ro.get(path)
            assert resp.status_code == 403, path
            assert error_of(resp)["code"] == "permission_denied"
            assert klaviyo_sandbox.readonly_key not in resp.text
    finally:
        ro.close()


def test_revision_header_is_required_and_checked(klaviyo_sandbox):
    auth = {"Authorization": f"Klaviyo-API-Key {klaviyo_sandbox.api_key}"}
    resp = httpx.get(klaviyo_sandbox.url + "/api/accounts", headers=auth)
    assert resp.status_code == 400
    assert error_of(resp)["source"] == {"parameter": "revision"}
    resp = httpx.get(klaviyo_sandbox.url + "/api/accounts", headers={**auth, "revision": "2024-06-15"})
    assert resp.status_code == 400
    detail = error_of(resp)["detail"]
    assert "2024-06-15" in detail and "2026-07-15" in detail


def test_account_timezone_and_currency(api):
    attrs = api.get("/api/accounts").json()["data"][0]["attributes"]
    assert attrs["timezone"] == "America/New_York"
    assert attrs["preferred_currency"] == "USD"


def test_flows_paginate_with_absolute_cursor_links(api, klaviyo_sandbox):
    acc = klaviyo_sandbox.account
    first = api.get("/api/flows", **{"page[size]": "5"}).json()
    nxt = first["links"]["next"]
    assert nxt.startswith(klaviyo_sandbox.url + "/api/flows")
    assert "page[cursor]" in parse_qs(urlsplit(nxt).query)
    data, _inc, pages = api.collect("/api/flows", **{"page[size]": "5"})
    expected = [f.id for f in acc.flows if not f.archived]
    assert [f["id"] for f in data] == expected
    assert pages == -(-len(expected) // 5)
    assert len({f["id"] for f in data}) == len(data)


@pytest.mark.parametrize(("path", "size", "ok"), [
    ("/api/flows", 0, False), ("/api/flows", 51, False), ("/api/flows", 50, True), ("/api/flows", "x", False),
    ("/api/lists", 11, False), ("/api/lists", 10, True), ("/api/segments", 11, False),
    ("/api/campaigns?filter=equals(messages.channel,'email')", 101, False),
    ("/api/profiles", 101, False), ("/api/profiles", 100, True),
])
def test_page_size_bounds(api, path, size, ok):
    resp = api.get(path, **{"page[size]": str(size)})
    if ok:
        assert resp.status_code == 200
    else:
        assert resp.status_code == 400
        assert error_of(resp)["source"] == {"parameter": "page[size]"}


def test_flow_filters_and_includes(api, klaviyo_sandbox):
    acc = klaviyo_sandbox.account
    live = api.collect("/api/flows", filter="equals(status,'live')")[0]
    assert {f["id"] for f in live} == {f.id for f in acc.flows if f.status == "live" and not f.archived}
    archived = api.collect("/api/flows", filter="equals(archived,true)")[0]
    assert {f["id"] for f in archived} == {f.id for f in acc.flows if f.archived} != set()
    both = api.collect("/api/flows", filter="and(equals(archived,true),equals(status,'manual'))")[0]
    assert {f["id"] for f in both} == {f.id for f in acc.flows if f.archived and f.status == "manual"}
    ids = [acc.flows[0].id, acc.flows[3].id]
    picked = api.collect("/api/flows", filter=f'any(id,["{ids[0]}","{ids[1]}"])', include="flow-actions,tags")
    assert [f["id"] for f in picked[0]] == ids
    included = {(r["type"], r["id"]) for r in picked[1]}
    for f in (acc.flows[0], acc.flows[3]):
        assert {("flow-action", a) for a in f.action_ids} <= included
        assert {("tag", t) for t in f.tag_ids} <= included
    rel = picked[0][0]["relationships"]["flow-actions"]["data"]
    assert [r["id"] for r in rel] == list(acc.flows[0].action_ids)


def test_send_action_definitions_point_at_flow_messages(api, klaviyo_sandbox):
    acc = klaviyo_sandbox.account
    _data, included, _ = api.collect("/api/flows", include="flow-actions")
    sends = [r for r in included if r["attributes"]["definition"]["type"] in ("send-email", "send-sms")]
    assert sends
    for action in sends:
        definition = action["attributes"]["definition"]
        msg = acc.message_by_id[definition["data"]["message"]["id"]]
        assert msg.action_id == action["id"]
        assert definition["data"]["message"]["name"] == msg.name
        assert definition["type"] == ("send-email" if msg.channel == "email" else "send-sms")
        messages = api.get(f"/api/flow-actions/{action['id']}/flow-messages").json()["data"]
        assert [(m["id"], m["attributes"]["channel"], m["attributes"]["definition"]["name"]) for m in messages] == \
            [(msg.id, msg.channel, msg.name)]


@pytest.mark.parametrize(("flt", "detail"), [
    ("equals(nope,'x')", "nope"),
    ("contains(status,'li')", "contains"),
    ("equals(status,'live'", "syntax"),
    ("or(equals(status,'live'),equals(status,'draft'))", "or"),
])
def test_bad_filters_are_400(api, flt, detail):
    resp = api.get("/api/flows", filter=flt)
    assert resp.status_code == 400
    err = error_of(resp)
    assert err["source"] == {"parameter": "filter"}
    assert detail in err["detail"]


def test_metrics_filter_by_integration(api, klaviyo_sandbox):
    everything = api.collect("/api/metrics")[0]
    placed = [m for m in everything if m["attributes"]["name"] == "Placed Order"]
    assert {m["attributes"]["integration"]["name"] for m in placed} == {"Shopify", "WooCommerce"}
    shopify = api.collect("/api/metrics", filter='equals(integration.name,"Shopify")')[0]
    assert shopify and all(m["attributes"]["integration"]["name"] == "Shopify" for m in shopify)
    assert klaviyo_sandbox.account.placed_order_metric.id in {m["id"] for m in shopify}
    assert "Opened Email" in {m["attributes"]["name"] for m in everything}


def test_campaigns_require_channel_filter(api, klaviyo_sandbox):
    resp = api.get("/api/campaigns")
    assert resp.status_code == 400
    assert "messages.channel" in error_of(resp)["detail"]
    acc = klaviyo_sandbox.account
    data, included, _ = api.collect("/api/campaigns", filter="equals(messages.channel,'email')",
                                    include="campaign-messages,tags")
    assert {c["id"] for c in data} == {c.id for c in acc.campaigns if c.channel == "email" and not c.archived}
    assert {c["attributes"]["status"] for c in data} >= {"Sent", "Scheduled"}
    messages = {r["id"]: r for r in included if r["type"] == "campaign-message"}
    for c in data:
        truth = acc.campaign_by_id[c["id"]]
        assert c["attributes"]["audiences"] == {"included": list(truth.included), "excluded": list(truth.excluded)}
        (mid,) = [r["id"] for r in c["relationships"]["campaign-messages"]["data"]]
        definition = messages[mid]["attributes"]["definition"]
        assert definition["label"] == acc.campaign_message_by_id[mid].label
        assert definition["content"]["subject"] == acc.campaign_message_by_id[mid].subject
    archived = api.collect("/api/campaigns", filter="and(equals(messages.channel,'email'),equals(archived,true))")[0]
    assert archived and all(c["attributes"]["archived"] for c in archived)


def test_profiles_stream_with_subscriptions_and_updated_filter(api, klaviyo_sandbox):
    acc = klaviyo_sandbox.account
    data, _inc, pages = api.collect("/api/profiles", **{"page[size]": "100",
                                                        "additional-fields[profile]": "subscriptions"})
    assert pages == -(-acc.n_profiles // 100)
    assert [p["id"] for p in data] == [p["id"] for p in acc.profiles]
    assert all("subscriptions" in p["attributes"] for p in data)
    consents = {p["attributes"]["subscriptions"]["email"]["marketing"]["consent"] for p in data}
    assert consents == {"SUBSCRIBED", "UNSUBSCRIBED", "NEVER_SUBSCRIBED"}
    reasons = {s["reason"] for p in data for s in p["attributes"]["subscriptions"]["email"]["marketing"]["suppression"]}
    assert {"HARD_BOUNCE", "SPAM_COMPLAINT", "UNSUBSCRIBE"} <= reasons
    plain = api.get("/api/profiles").json()["data"]
    assert len(plain) == 20 and all("subscriptions" not in p["attributes"] for p in plain)
    cutoff = datetime(acc.yesterday.year, acc.yesterday.month, acc.yesterday.day, tzinfo=UTC)
    recent = api.collect("/api/profiles", filter=f"greater-than(updated,{cutoff.isoformat().replace('+00:00', 'Z')})",
                         **{"page[size]": "100"})[0]
    expected = [acc.profile_id(i) for i in range(acc.n_profiles) if acc.profile_updated(i) > cutoff]
    assert [p["id"] for p in recent] == expected
    assert 0 < len(expected) < acc.n_profiles


def test_list_members_match_ground_truth(api, klaviyo_sandbox):
    acc = klaviyo_sandbox.account
    for lst in acc.lists[:2]:
        data = api.collect(f"/api/lists/{lst.id}/profiles", **{"page[size]": "100"})[0]
        assert [p["id"] for p in data] == list(acc.list_members(lst.id))
        assert all("joined_group_at" in p["attributes"] for p in data)
    empty = next(x for x in acc.lists if x.share == 0)
    assert api.get(f"/api/lists/{empty.id}/profiles").json()["data"] == []


def test_unknown_path_and_method(api):
    assert api.get("/api/nothing-here").status_code == 404
    resp = api.request("DELETE", "/api/accounts")
    assert resp.status_code == 405


def test_admin_routes(klaviyo_sandbox, api):
    assert api.get("/api/accounts").status_code == 200
    info = httpx.get(klaviyo_sandbox.url + "/__sandbox__/info").json()
    assert info["seed"] == 7 and info["timezone"] == "America/New_York"
    assert info["today"] == klaviyo_sandbox.account.today.isoformat()
    log = httpx.get(klaviyo_sandbox.url + "/__sandbox__/requests").json()["requests"]
    entry = log[-1]
    assert (entry["method"], entry["path"], entry["operation"], entry["status"]) == \
        ("GET", "/api/accounts", "get_accounts", 200)
    assert set(entry) >= {"t", "wall", "method", "path", "operation", "bucket", "status", "fault", "key"}
    assert all(e["key"] in (None, "full", "readonly") for e in log)
    assert klaviyo_sandbox.api_key not in str(log)


def test_sparse_fieldsets(api):
    flows = api.get("/api/flows", **{"fields[flow]": "name,status"}).json()["data"]
    assert flows and all(set(f["attributes"]) == {"name", "status"} for f in flows)
    doc = api.get("/api/flows", include="flow-actions", **{"fields[flow-action]": "definition"}).json()
    assert all(set(r["attributes"]) == {"definition"} for r in doc["included"])
