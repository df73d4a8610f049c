"""Campaign sync steps: catalog → one campaign-values report per ≤ 1-year chunk → campaigns.csv + summary.

Klaviyo has no campaign series endpoint, so metrics come from one ``POST /api/campaign-values-reports``
per chunk of at most 365 days (the spec's timeframe maximum), grouped by campaign, message and channel —
never one call per day or per campaign. The API cannot filter campaigns on send time, so the catalog asks
the server for sent email campaigns created before the window ends (filters the spec allows) and keeps
those sent inside the window here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

from flowsync_provider.core import catalog as catalog_core
from flowsync_provider.core import rows as rows_core
from flowsync_provider.core.params import SyncRequest
from flowsync_provider.core.schemas import CAMPAIGN_STATISTICS, CAMPAIGNS_COLUMNS
from flowsync_provider.core.windows import Window, local_midnight
from flowsync_provider.klaviyo import KlaviyoClient
from flowsync_provider.syncs.flows import conversion_metric
from flowsync_provider.syncs.output import (
    base_diagnostics,
    check_budget,
    client_diagnostics,
    finish_output,
    previews,
    write_rows,
)

log = logging.getLogger(__name__)

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


def campaign_catalog(client: KlaviyoClient, plan: Mapping[str, Any]) -> dict[str, Any]:
    """Conversion metric, sent email campaigns of the window, audience names; row budget before reports."""
    request = SyncRequest.from_dict(plan["request"])
    window = Window.from_dict(plan["window"])
    tz = plan["timezone"]
    metric = conversion_metric(client, request.conversionMetricId)
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
    log.info(
        "Catalog: %d sent email campaigns (%d messages) in %s..%s; excluded %s; conversion metric %s (%s)",
        len(catalog["campaigns"]), n_messages, window.start, window.end,
        {k: len(v) for k, v in catalog["excluded"].items()}, metric["id"], metric["source"],
    )
    return catalog


def campaign_report(client: KlaviyoClient, catalog: Mapping[str, Any], chunk: Mapping[str, Any]) -> dict[str, Any]:
    """One campaign-values call for one ≤ 1-year chunk → per-message totals (skipped if nothing was sent)."""
    window = Window.from_dict(chunk["window"])
    out: dict[str, Any] = {"index": chunk["index"], "kind": chunk["kind"], "window": window.to_dict(),
                           "records": [], "warnings": [], "skipped": False}
    if not catalog.get("campaigns"):
        out["skipped"] = True
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


def campaign_rows(plan: Mapping[str, Any], catalog: Mapping[str, Any],
                  reports: Sequence[Mapping[str, Any]]) -> list[dict]:
    """One zero-filled row per campaign message, ordered (send time, campaign id, message id)."""
    request = SyncRequest.from_dict(plan["request"])
    rows = rows_core.campaign_rows(dict(catalog), merge_report_totals(reports), plan["timezone"])
    check_budget(len(rows), request.rowBudget, what="rows", advice=BUDGET_ADVICE)
    return rows


def write_campaign_output(plan: Mapping[str, Any], catalog: Mapping[str, Any],
                          reports: Sequence[Mapping[str, Any]], folder: Path) -> dict[str, Any]:
    """campaigns.csv|campaigns.json + summary.json in ``folder``; returns the summary document."""
    request = SyncRequest.from_dict(plan["request"])
    window = Window.from_dict(plan["window"])
    reports = sorted(reports, key=lambda r: r["index"])
    rows = campaign_rows(plan, catalog, reports)
    folder.mkdir(parents=True, exist_ok=True)
    warnings = [*plan.get("warnings", []), *catalog.get("warnings", []),
                *[w for r in reports for w in r.get("warnings", [])]]
    diagnostics = {
        **base_diagnostics(client_diagnostics([plan, catalog, *reports]), warnings),
        "chunks": [{"index": r["index"], "kind": r["kind"], "skipped": bool(r.get("skipped")), **r["window"]}
                   for r in reports],
        "timezone": plan["timezone"],
        "conversion_metric": catalog.get("conversion_metric"),
        "excluded": catalog.get("excluded", {}),
    }
    data_path = write_rows(folder, "campaigns", CAMPAIGNS_COLUMNS, rows, request.format,
                           escape_formulas=request.escapeFormulas)
    output = {
        "mode": request.mode,
        "rows": len(rows),
        "days": window.n_days,
        "campaigns": len(catalog["campaigns"]),
        "window": window.to_dict(),
        **previews(CAMPAIGNS_COLUMNS, rows, escape_formulas=request.escapeFormulas),
        "diagnostics": diagnostics,
    }
    finish_output(folder, data_path, output)
    log.info("Wrote %d rows to %s; %s", len(rows), data_path, diagnostics["reporting_budget"])
    return output


def run_campaign_sync(client: KlaviyoClient, plan: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """The whole campaign sync in one call (bench, scripts, per-account groups): catalog, chunks, files."""
    catalog = campaign_catalog(client, plan)
    reports = [campaign_report(client, catalog, chunk) for chunk in plan["chunks"]]
    catalog["diagnostics"] = {"client": client.diagnostics.to_dict()}  # one client did every call
    return write_campaign_output(plan, catalog, reports, folder)
