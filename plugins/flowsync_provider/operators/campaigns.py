"""Campaign sync operators: plan → catalog → campaign-values report per chunk (mapped) → campaigns.csv.

Thin shells over ``flowsync_provider.syncs.campaigns`` (see its docstring for the call economy).
Deterministic errors (row budget, missing metric) fail the task without retries (``operators.base``):
a retry would fail the same way and only burn quota.
"""

from __future__ import annotations

from typing import Any

from flowsync_provider.operators.base import BuildStepOperator, CatalogStepOperator, ReportStepOperator
from flowsync_provider.operators.plan import SyncPlanOperator
from flowsync_provider.syncs import campaigns as campaign_sync


class CampaignPlanOperator(SyncPlanOperator):
    """Plan of the campaign sync: window in the account timezone, ≤ 365-day campaign-values chunks."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(sync="campaigns", **kwargs)


class CampaignCatalogOperator(CatalogStepOperator):
    """Sent email campaigns of the window with messages, tags and audience names; row budget."""

    step = staticmethod(campaign_sync.campaign_catalog)


class CampaignReportOperator(ReportStepOperator):
    """One campaign-values report call per chunk (mapped over the plan's chunks, pooled)."""

    step = staticmethod(campaign_sync.campaign_report)


class CampaignBuildOperator(BuildStepOperator):
    """Order, zero-fill and format the rows; write campaigns.csv/json and summary.json."""

    step = staticmethod(campaign_sync.write_campaign_output)
