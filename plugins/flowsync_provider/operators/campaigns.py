"""Campaign sync operators: plan → catalog → campaign-values report per chunk (mapped) → campaigns.csv.

Thin shells over ``flowsync_provider.syncs.campaigns`` (see its docstring for the call economy).
Deterministic errors (row budget, missing metric) fail the task without retries: a retry would fail
the same way and only burn quota.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator

from flowsync_provider.core.summary import run_folder
from flowsync_provider.klaviyo import KlaviyoClient
from flowsync_provider.operators.base import KlaviyoBaseOperator, fail_fast
from flowsync_provider.operators.plan import SyncPlanOperator
from flowsync_provider.syncs import campaigns as campaign_sync

no_retry_on_flowsync_errors = fail_fast  # the shared policy (operators.base)


class CampaignPlanOperator(SyncPlanOperator):
    """Plan of the campaign sync: window in the account timezone, ≤ 365-day campaign-values chunks."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(sync="campaigns", **kwargs)


class CampaignCatalogOperator(KlaviyoBaseOperator):
    """Sent email campaigns of the window with messages, tags and audience names; row budget."""

    template_fields: Sequence[str] = ("plan",)

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        with no_retry_on_flowsync_errors():
            return campaign_sync.campaign_catalog(client, self.plan)


class CampaignReportOperator(KlaviyoBaseOperator):
    """One campaign-values report call per chunk (mapped over the plan's chunks, pooled)."""

    template_fields: Sequence[str] = ("catalog", "chunk")

    def __init__(self, *, catalog: Any, chunk: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.catalog = catalog
        self.chunk = chunk

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        return campaign_sync.campaign_report(client, self.catalog, self.chunk)


class CampaignBuildOperator(BaseOperator):
    """Order, zero-fill and format the rows; write campaigns.csv/json and summary.json."""

    template_fields: Sequence[str] = ("plan", "catalog", "reports")

    def __init__(self, *, plan: Any, catalog: Any, reports: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.catalog = catalog
        self.reports = reports

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        folder = run_folder(context["dag"].dag_id, context["run_id"], self.plan["account"].get("id"))
        with no_retry_on_flowsync_errors():
            return campaign_sync.write_campaign_output(self.plan, self.catalog, list(self.reports or []), folder)
