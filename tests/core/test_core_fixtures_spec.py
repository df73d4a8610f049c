"""The core's test documents conform to Klaviyo's published schemas (so the core is tested on real shapes)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import core_docs as d
import jsonschema  # noqa: E402
import pytest

# The vendored per-category slices of Klaviyo's spec (revision 2026-07-15; tests/data/openapi/README.md).
SLICES = Path(__file__).resolve().parents[1] / "data" / "openapi"


def _any_of(node: object) -> object:
    """The spec's ``oneOf`` lists overlap (e.g. send_options: every object matches all three option
    schemas), so exactly-one can never hold; validate as ``anyOf`` (at least one shape must match)."""
    if isinstance(node, dict):
        return {("anyOf" if k == "oneOf" else k): _any_of(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_any_of(v) for v in node]
    return node


@cache
def _spec() -> dict:
    """The slices' components merged (each slice is self-contained; shared schemas are identical)."""
    schemas: dict = {}
    for path in sorted(SLICES.glob("*.json")):
        schemas.update(json.loads(path.read_text())["components"]["schemas"])
    return _any_of({"components": {"schemas": schemas}})


def _validate(schema_name: str, document: dict) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": _spec()["components"]}
    jsonschema.Draft7Validator(schema).validate(document)


def test_flows_document_matches_spec() -> None:
    doc = d.flows_doc(
        [d.flow("F1", "Welcome", action_ids=["A1", "A2", "A3", "A4"], tag_ids=["T1"])],
        [d.email_action("A1", "M1", "Welcome 1"), d.sms_action("A2", "S1", "SMS 1"), d.delay_action("A3"),
         d.ab_test_action("A4", [("M2", "Variant A"), ("M3", "Variant B")]), d.tag("T1", "Onboarding")],
    )
    _validate("GetFlowResponseCollectionCompoundDocument", doc)


def test_campaigns_document_matches_spec() -> None:
    doc = d.campaigns_doc(
        [d.campaign("C1", "September", audiences=["L1"], message_ids=["CM1"], tag_ids=["T1"])],
        [d.campaign_message("CM1", "C1"), d.tag("T1", "Newsletter")],
    )
    _validate("GetCampaignResponseCollectionCompoundDocument", doc)


def test_metrics_account_lists_profiles_match_spec() -> None:
    _validate("GetMetricResponseCollection", {"data": [d.metric("M1", "Placed Order", d.SHOPIFY)],
                                              "links": {"self": "https://a.klaviyo.com/api/metrics/"}})
    _validate("GetAccountResponseCollection", {"data": [d.account()],
                                               "links": {"self": "https://a.klaviyo.com/api/accounts/"}})
    _validate("GetListResponseCollection", {"data": [d.named("list", "L1", "Newsletter")],
                                            "links": {"self": "https://a.klaviyo.com/api/lists/"}})
    _validate("GetSegmentResponseCollection", {"data": [d.named("segment", "S1", "VIPs")],
                                               "links": {"self": "https://a.klaviyo.com/api/segments/"}})
    suppressed = [{"reason": "HARD_BOUNCE", "timestamp": "2025-01-01T00:00:00+00:00"}]
    _validate("GetProfileResponseCollection", {"data": [d.profile("P1", "a@example.com", suppression=suppressed)],
                                               "links": {"self": "https://a.klaviyo.com/api/profiles/"}})


def test_report_documents_match_spec() -> None:
    series = {"results": [d.series_result("F1", "M1", {"delivered": [1, 2], "open_rate": [0.5, 0.25]})],
              "date_times": ["2025-09-01T00:00:00-04:00", "2025-09-02T00:00:00-04:00"]}
    _validate("PostFlowSeriesResponseDTO", d.report_document("flow-series-report", series))
    values = {"results": [d.values_result({"campaign_id": "C1", "campaign_message_id": "CM1",
                                           "send_channel": "email"}, {"delivered": 10})]}
    _validate("PostCampaignValuesResponseDTO", d.report_document("campaign-values-report", values))


def test_validation_rejects_a_misshapen_document() -> None:
    """Guard: the validator really checks (a flow without links/attributes must fail)."""
    with pytest.raises(jsonschema.ValidationError):
        _validate("GetFlowResponseCollectionCompoundDocument", {"data": [{"type": "flow", "id": "F1"}]})


def test_validation_rejects_a_misshapen_flow_action() -> None:
    """Guard: relaxing oneOf to anyOf still rejects a definition no action schema accepts."""
    bad = d.email_action("A1", "M1", "Welcome")
    bad["attributes"]["definition"]["data"]["message"] = "not-an-object"
    doc = d.flows_doc([d.flow("F1", "Welcome", action_ids=["A1"])], [bad])
    with pytest.raises(jsonschema.ValidationError):
        _validate("GetFlowResponseCollectionCompoundDocument", doc)
