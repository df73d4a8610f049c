"""Contract: every sandbox response flowsync uses validates against Klaviyo's 2026-07-15 schemas."""

from __future__ import annotations

from datetime import date

import jsonschema
import pytest
from sandbox_helpers import Api, error_of, report_body

from flowsync_dev.sandbox.data import ALL_STATS

TODAY = date(2025, 9, 17)


@pytest.fixture(scope="module")
def api(klaviyo_sandbox):
    client = Api(klaviyo_sandbox)
    yield client
    client.close()


@pytest.fixture
def report_api(sandbox_factory):
    srv = sandbox_factory(today=TODAY, enforce_limits=False)
    client = Api(srv)
    yield client
    client.close()


def test_spec_revision_and_statistics_enum(openapi_spec):
    assert openapi_spec.revision == "2026-07-15"
    attrs = openapi_spec.raw["reporting"]["components"]["schemas"]["FlowSeriesRequestDTOResourceObject"]
    enum = attrs["properties"]["attributes"]["properties"]["statistics"]["items"]["enum"]
    assert sorted(enum) == sorted(ALL_STATS)


def test_validator_rejects_a_broken_document(openapi_spec, api):
    doc = api.get("/api/accounts").json()
    del doc["data"][0]["attributes"]["timezone"]
    with pytest.raises(jsonschema.ValidationError):
        openapi_spec.validate("accounts", "get", "/api/accounts", doc)


@pytest.mark.parametrize(("category", "path", "params"), [
    ("accounts", "/api/accounts", {}),
    ("flows", "/api/flows", {"include": "flow-actions,tags"}),
    ("flows", "/api/flows", {"filter": "and(equals(archived,true),equals(status,'live'))"}),
    ("metrics", "/api/metrics", {}),
    ("campaigns", "/api/campaigns", {"filter": "equals(messages.channel,'email')",
                                     "include": "campaign-messages,tags"}),
    ("campaigns", "/api/campaigns", {"filter": "equals(messages.channel,'sms')", "include": "campaign-messages"}),
    ("lists", "/api/lists", {}),
    ("segments", "/api/segments", {}),
    ("profiles", "/api/profiles", {"additional-fields[profile]": "subscriptions", "page[size]": "100"}),
])
def test_collections_match_spec(openapi_spec, api, category, path, params):
    resp = api.get(path, **params)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "application/vnd.api+json"
    doc = resp.json()
    assert doc["data"], f"{path} returned no data"
    openapi_spec.validate(category, "get", path, doc)


def test_flow_actions_and_messages_match_spec(openapi_spec, api, klaviyo_sandbox):
    acc = klaviyo_sandbox.account
    flow = next(f for f in acc.flows if any(acc.action_by_id[a].type == "send-sms" for a in f.action_ids))
    actions = api.get(f"/api/flows/{flow.id}/flow-actions").json()
    openapi_spec.validate("flows", "get", "/api/flows/{id}/flow-actions", actions)
    types = {a["attributes"]["definition"]["type"] for a in actions["data"]}
    assert {"send-email", "send-sms", "time-delay"} <= types
    for action in actions["data"]:
        msgs = api.get(f"/api/flow-actions/{action['id']}/flow-messages").json()
        openapi_spec.validate("flows", "get", "/api/flow-actions/{id}/flow-messages", msgs)


def test_list_profiles_match_spec(openapi_spec, api, klaviyo_sandbox):
    lst = klaviyo_sandbox.account.lists[0]
    doc = api.get(f"/api/lists/{lst.id}/profiles", **{"additional-fields[profile]": "subscriptions",
                                                      "page[size]": "100"}).json()
    assert len(doc["data"]) == 100
    openapi_spec.validate("lists", "get", "/api/lists/{id}/profiles", doc)


def test_reports_match_spec(openapi_spec, report_api):
    metric = report_api.srv.account.placed_order_metric.id
    stats = sorted(ALL_STATS)
    cases = [
        ("flow-series-report", "/api/flow-series-reports", {}),
        ("flow-values-report", "/api/flow-values-reports", {}),
        ("campaign-values-report", "/api/campaign-values-reports", {}),
    ]
    for rtype, path, extra in cases:
        body = report_body(rtype, stats, metric, "2025-06-01T00:00:00-04:00", "2025-07-31T00:00:00-04:00", **extra)
        if rtype == "campaign-values-report":
            body = report_body(rtype, stats, metric, key="last_365_days")
        resp = report_api.post(path, body)
        assert resp.status_code == 200, resp.text
        doc = resp.json()
        assert doc["data"]["attributes"]["results"], rtype
        openapi_spec.validate("reporting", "post", path, doc)
        # the request body we send is itself valid per the spec's request schema
        req_schema = openapi_spec.raw["reporting"]["paths"][path]["post"]["requestBody"]["content"]
        name = req_schema["application/vnd.api+json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        jsonschema.Draft202012Validator(openapi_spec.schema("reporting", name)).validate(body)


def test_errors_match_spec(openapi_spec, klaviyo_sandbox, report_api):
    anonymous = Api(klaviyo_sandbox, key="pk_wrong")
    try:
        resp = anonymous.get("/api/flows")
        assert resp.status_code == 401
        openapi_spec.validate("flows", "get", "/api/flows", resp.json(), status="4XX")
    finally:
        anonymous.close()
    resp = report_api.post("/api/flow-series-reports", report_body(
        "flow-series-report", ["recipients"], "nope", "2025-06-01T00:00:00", "2025-06-02T00:00:00"))
    assert resp.status_code == 400
    openapi_spec.validate("reporting", "post", "/api/flow-series-reports", resp.json(), status="4XX")
    assert error_of(resp)["source"] == {"pointer": "/data/attributes/conversion_metric_id"}
