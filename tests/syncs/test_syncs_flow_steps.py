"""Unit edge cases of the flow sync steps that the sandbox cannot provoke (a refused series endpoint)."""

from __future__ import annotations

from datetime import date

import pytest

from flowsync_provider.core.plan import report_chunks
from flowsync_provider.core.windows import Window
from flowsync_provider.klaviyo import KlaviyoRequestError
from flowsync_provider.syncs import flows as flow_sync

CATALOG = {"flows": [{"id": "F1", "name": "Welcome", "status": "live", "tags": [],
                      "messages": [{"id": "M1", "name": "Hello", "channel": "email", "action_id": "A1"}]}],
           "conversion_metric": {"id": "PO1"}}
VALUES = {"results": [{"groupings": {"flow_id": "F1", "flow_message_id": "M1", "send_channel": "email"},
                       "statistics": {"delivered": 10, "opens_unique": 4, "open_rate": 0.4}}]}


class RefusingSeries:
    """A client whose account refuses the series endpoint (e.g. a plan without it)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def query_flow_series(self, **kwargs):
        self.calls.append("series")
        raise KlaviyoRequestError("series reports are not available for this account", status=400,
                                  detail="not available", pointer="/data")

    def query_flow_values(self, **kwargs):
        self.calls.append("values")
        assert kwargs["group_by"] == flow_sync.GROUP_BY and kwargs["filter"] == flow_sync.EMAIL_FILTER
        return VALUES


def test_auto_falls_back_to_one_range_call_with_a_diagnostic():
    window = Window(date(2025, 9, 1), date(2025, 9, 5))
    chunk = report_chunks(window, "America/New_York", aggregation="auto", strategy="series")[0]
    client = RefusingSeries()
    report = flow_sync.flow_report(client, CATALOG, chunk)
    assert client.calls == ["series", "values"]
    assert report["kind"] == "values"
    assert report["records"] == [{"day": "2025-09-01", "flow_id": "F1", "message_id": "M1",
                                  "stats": VALUES["results"][0]["statistics"]}]
    assert "fell back to one range call" in report["warnings"][0]


def test_per_day_does_not_fall_back():
    window = Window(date(2025, 9, 1), date(2025, 9, 5))
    chunk = report_chunks(window, "America/New_York", aggregation="per-day", strategy="series")[0]
    with pytest.raises(KlaviyoRequestError):
        flow_sync.flow_report(RefusingSeries(), CATALOG, chunk)
