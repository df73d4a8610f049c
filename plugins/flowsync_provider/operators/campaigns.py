"""Campaign sync operators: plan → catalog → campaign-values report per ≤ 1-year chunk → campaigns.csv.

Same walk as the flow sync. Klaviyo has no campaign series endpoint, so metrics come from one
``POST /api/campaign-values-reports`` per chunk of at most 365 days (the spec's timeframe maximum),
grouped by campaign, message and channel — never one call per day or per campaign. The API cannot
filter campaigns on send time, so the catalog asks the server for sent email campaigns created
before the window ends (the filters the spec allows) and keeps those sent inside the window here.

The plain functions (``fetch_campaign_catalog``, ``run_campaign_report``, ``build_campaign_output``)
hold the logic so the benchmark can run them with a bare client; the operators only wire them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, timedelta
from typing import Any

from airflow.sdk import BaseOperator

from flowsync_provider.core import catalog as catalog_core
from flowsync_provider.core import rows as rows_core
from flowsync_provider.core.errors import FlowsyncError
from flowsync_provider.core.params import SyncRequest
from flowsync_provider.core.schemas import CAMPAIGN_STATISTICS, CAMPAIGNS_COLUMNS
from flowsync_provider.core.windows import Window, local_midnight
from flowsync_provider.klaviyo import KlaviyoClient
from flowsync_provider.operators.base import KlaviyoBaseOperator
from flowsync_provider.operators.output import (
    base_diagnostics,
    check_budget,
    client_diagnostics,
    fail_without_retry,
    finish_output,
    output_folder,
    previews,
    write_rows,
)
from flowsync_provider.operators.plan import SyncPlanOperator

DAG_ID = "klaviyo_campaign_sync"
EMAIL_FILTER = 'equals(send_channel,"email")'
GROUP_BY = ("campaign_id", "campaign_message_id", "send_channel")
CAMPAIGNS_PATH = "/api/campaigns"
BUDGET_ADVICE = "reduce days (or start/end) to cover fewer campaigns, or raise rowBudget"


def campaign_query_params(window: Window, tz: str | None) -> dict[str, Any]:
    """``GET /api/campaigns`` params: the required channel filter plus the coarse filters the spec allows.

    Sent, not archived, created before the window's last local day ends: a campaign created later cannot
    have been sent inside the window. Send time itself is not filterable, so the catalog finishes the job.
    """
    created_before = local_midnight(window.end + timedelta(days=1), tz).astimezone(UTC)
    stamp = created_before.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "filter": (
            "and(equals(messages.channel,'email'),equals(status,'Sent'),equals(archived,false),"
            f"less-than(created_at,{stamp}))"
        ),
        "include": "campaign-messages,tags",
        "page[size]": 100,
    }


def fetch_campaign_catalog(client: KlaviyoClient, plan: Mapping[str, Any], log: Any = None) -> dict[str, Any]:
    """Conversion metric, sent email campaigns of the window, audience names; row budget before reports."""
    request = SyncRequest.from_dict(plan["request"])
    window = Window.from_dict(plan["window"])
    tz = plan["timezone"]
    env_metric = os.environ.get("SHOPIFY_PLACED_ORDER_METRIC_ID") or None
    metrics = [] if (request.conversionMetricId or env_metric) else client.get_metrics()
    metric = catalog_core.resolve_conversion_metric(metrics, override=request.conversionMetricId, env_value=env_metric)
    # client.get_campaigns() only knows the channel/archived filters; the coarse status/created_at
    # filter saves pages on accounts with years of campaigns.
    campaigns_doc = client.get_collection(CAMPAIGNS_PATH, campaign_query_params(window, tz))
    needs_names = any(((c.get("attributes") or {}).get("audiences") or {}).get("included")
                      for c in campaigns_doc.get("data") or [])
    lists = client.get_lists() if needs_names else []
    segments = client.get_segments() if needs_names else []
    catalog = catalog_core.build_campaign_catalog(campaigns_doc, window=window, tz=tz, lists=lists, segments=segments)
    n_messages = sum(len(c["messages"]) for c in catalog["campaigns"])
    check_budget(n_messages, request.rowBudget, what="campaign messages", advice=BUDGET_ADVICE)
    catalog["conversion_metric"] = metric
    if log is not None:
        log.info(
            "Catalog: %d sent email campaigns (%d messages) in %s..%s; excluded %s; conversion metric %s (%s)",
            len(catalog["campaigns"]), n_messages, window.start, window.end,
            {k: len(v) for k, v in catalog["excluded"].items()}, metric["id"], metric["source"],
        )
    return catalog


def run_campaign_report(client: KlaviyoClient, catalog: Mapping[str, Any], chunk: Mapping[str, Any],
                        log: Any = None) -> dict[str, Any]:
    """One campaign-values call for one ≤ 1-year chunk → per-message totals (skipped if nothing was sent)."""
    window = Window.from_dict(chunk["window"])
    out: dict[str, Any] = {"index": chunk["index"], "kind": chunk["kind"], "window": window.to_dict(),
                           "records": [], "warnings": [], "skipped": False}
    if not catalog.get("campaigns"):
        out["skipped"] = True
        if log is not None:
            log.info("Chunk %d: no sent email campaign in the window; no report call needed.", chunk["index"])
        return out
    response = client.query_campaign_values(
        statistics=list(CAMPAIGN_STATISTICS),
        start=chunk["timeframe"]["start"],
        end=chunk["timeframe"]["end"],
        conversion_metric_id=catalog["conversion_metric"]["id"],
        group_by=GROUP_BY,
        filter=EMAIL_FILTER,
    )
    totals = rows_core.values_to_totals(response, keys=rows_core.CAMPAIGN_KEYS)
    out["records"] = [{"campaign_id": cid, "message_id": mid, "stats": stats}
                      for (cid, mid), stats in sorted(totals.items())]
    if log is not None:
        log.info("Chunk %d: %s..%s → %d campaign-message totals", chunk["index"], window.start, window.end,
                 len(out["records"]))
    return out


def merge_report_totals(reports: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], dict]:
    """Per (campaign, message) totals over all chunks (counts add, rates are re-weighted)."""
    totals: dict[tuple[str, str], dict] = {}
    for report in sorted(reports, key=lambda r: r["index"]):
        for record in report.get("records") or []:
            key = (str(record["campaign_id"]), str(record["message_id"]))
            stats = dict(record.get("stats") or {})
            totals[key] = rows_core.merge_stats(totals[key], stats) if key in totals else stats
    return totals


def build_campaign_output(plan: Mapping[str, Any], catalog: Mapping[str, Any],
                          reports: Sequence[Mapping[str, Any]], context: Mapping[str, Any],
                          log: Any = None) -> dict[str, Any]:
    """campaigns.csv/json and summary.json in the run folder; returns the summary document."""
    request = SyncRequest.from_dict(plan["request"])
    window = Window.from_dict(plan["window"])
    reports = sorted(reports, key=lambda r: r["index"])
    rows = rows_core.campaign_rows(dict(catalog), merge_report_totals(reports), plan["timezone"])
    check_budget(len(rows), request.rowBudget, what="rows", advice=BUDGET_ADVICE)
    folder = output_folder(context, DAG_ID, plan["account"].get("id"))
    client = client_diagnostics([plan, catalog, *reports])
    warnings = [*plan.get("warnings", []), *catalog.get("warnings", []),
                *[w for r in reports for w in r.get("warnings", [])]]
    diagnostics = {
        **base_diagnostics(client, warnings),
        "chunks": [{"index": r["index"], "kind": r["kind"], "skipped": bool(r.get("skipped")), **r["window"]}
                   for r in reports],
        "timezone": plan["timezone"],
        "conversion_metric": catalog.get("conversion_metric"),
        "excluded": catalog.get("excluded", {}),
    }
    data_path = write_rows(folder, "campaigns", CAMPAIGNS_COLUMNS, rows, request.format)
    output = {
        "mode": request.mode,
        "rows": len(rows),
        "days": window.n_days,
        "campaigns": len(catalog["campaigns"]),
        "window": window.to_dict(),
        **previews(CAMPAIGNS_COLUMNS, rows),
        "diagnostics": diagnostics,
    }
    finish_output(folder, data_path, output)
    if log is not None:
        log.info("Wrote %d rows to %s; %s", len(rows), data_path, diagnostics["reporting_budget"])
    return output


class CampaignPlanOperator(SyncPlanOperator):
    """Plan of the campaign sync: window in the account timezone, ≤ 365-day campaign-values chunks."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(sync="campaigns", **kwargs)


class CampaignCatalogOperator(KlaviyoBaseOperator):
    """Sent email campaigns of the window with messages, tags and audience names (see module doc)."""

    template_fields: Sequence[str] = ("plan",)

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        try:
            return fetch_campaign_catalog(client, self.plan, self.log)
        except FlowsyncError as exc:
            raise fail_without_retry(exc) from exc


class CampaignReportOperator(KlaviyoBaseOperator):
    """One campaign-values report call per chunk (mapped over the plan's chunks, pooled)."""

    template_fields: Sequence[str] = ("catalog", "chunk")

    def __init__(self, *, catalog: Any, chunk: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.catalog = catalog
        self.chunk = chunk

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        return run_campaign_report(client, self.catalog, self.chunk, self.log)


class CampaignBuildOperator(BaseOperator):
    """Order, zero-fill and format the rows; write campaigns.csv/json and summary.json."""

    template_fields: Sequence[str] = ("plan", "catalog", "reports")

    def __init__(self, *, plan: Any, catalog: Any, reports: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.catalog = catalog
        self.reports = reports

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return build_campaign_output(self.plan, self.catalog, list(self.reports or []), context, self.log)
        except FlowsyncError as exc:
            raise fail_without_retry(exc) from exc
