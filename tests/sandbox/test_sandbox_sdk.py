"""Klaviyo's official Python SDK (klaviyo-api 24.x) parses the sandbox's responses."""

from __future__ import annotations

from datetime import date

import pytest

klaviyo_api = pytest.importorskip("klaviyo_api")


@pytest.fixture
def sdk(sandbox_factory):
    srv = sandbox_factory(today=date(2025, 9, 17), enforce_limits=False)
    # test_host is the SDK's documented override of https://a.klaviyo.com
    return srv, klaviyo_api.KlaviyoAPI(srv.api_key, max_retries=0, test_host=srv.url)


def test_sdk_parses_accounts_flows_campaigns(sdk):
    srv, client = sdk
    accounts = client.Accounts.get_accounts()
    assert accounts.data[0].attributes.timezone == "America/New_York"
    flows = client.Flows.get_flows(include=["flow-actions", "tags"])
    assert [f.id for f in flows.data] == [f.id for f in srv.account.flows if not f.archived]
    # the SDK keeps oneOf members of ``included`` as plain dicts after validating the document
    assert {x["type"] for x in flows.included} == {"flow-action", "tag"}
    campaigns = client.Campaigns.get_campaigns(filter="equals(messages.channel,'email')",
                                               include=["campaign-messages", "tags"])
    assert campaigns.data and all(c.attributes.status for c in campaigns.data)
    assert srv.requests()[0]["key"] == "full"


def test_sdk_parses_reports(sdk):
    srv, client = sdk
    metric = srv.account.placed_order_metric.id
    timeframe = {"start": "2025-03-01T00:00:00-05:00", "end": "2025-03-08T00:00:00-05:00"}
    series = client.Reporting.query_flow_series({"data": {"type": "flow-series-report", "attributes": {
        "statistics": ["recipients", "open_rate"], "timeframe": timeframe, "interval": "daily",
        "conversion_metric_id": metric}}})
    assert len(series.data.attributes.date_times) == 8
    assert series.data.attributes.results[0].statistics["recipients"]
    values = client.Reporting.query_flow_values({"data": {"type": "flow-values-report", "attributes": {
        "statistics": ["recipients"], "timeframe": timeframe, "conversion_metric_id": metric}}})
    by_id = {r.groupings["flow_message_id"]: r.statistics["recipients"] for r in values.data.attributes.results}
    assert by_id == {r.groupings["flow_message_id"]: sum(r.statistics["recipients"])
                     for r in series.data.attributes.results}
