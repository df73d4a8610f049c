"""Flow sync steps: catalog → one report call per chunk → zero-filled rows → files + summary."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowsync_provider import settings
from flowsync_provider.core import catalog as catalog_core
from flowsync_provider.core import rows as rows_core
from flowsync_provider.core.params import SyncRequest
from flowsync_provider.core.schemas import FLOW_STATISTICS, FLOWS_COLUMNS
from flowsync_provider.core.windows import Window
from flowsync_provider.klaviyo import KlaviyoAuthError, KlaviyoClient, KlaviyoRequestError
from flowsync_provider.syncs.output import base_diagnostics, client_diagnostics, finish_output, previews, write_rows

log = logging.getLogger(__name__)

EMAIL_FILTER = 'equals(send_channel,"email")'
GROUP_BY = ("flow_id", "flow_message_id", "send_channel")


def conversion_metric(client: KlaviyoClient, override: str | None) -> dict[str, Any]:
    """param > setting SHOPIFY_PLACED_ORDER_METRIC_ID > the Metrics API's Placed Order (Shopify preferred).

    The one copy: the campaign sync uses it too.
    """
    env_metric = settings.shopify_placed_order_metric_id()
    metrics = [] if (override or env_metric) else client.get_metrics()
    return catalog_core.resolve_conversion_metric(metrics, override=override, env_value=env_metric)


def flow_catalog(client: KlaviyoClient, plan: Mapping[str, Any]) -> dict[str, Any]:
    """Flows with their actions (message ids/names/channels) and tags in one paginated call chain."""
    request = SyncRequest.from_dict(plan["request"])
    metric = conversion_metric(client, request.conversionMetricId)
    catalog = catalog_core.build_flow_catalog(
        client.get_flows(include_archived=False),
        include_drafts=request.includeDrafts,
        limit_flows=request.limitFlows,
        limit_messages=request.limitMessages,
        enrich_message_names=request.enrichMessageNames,
    )
    planned, days, n_messages = rows_core.planned_flow_rows(
        catalog, Window.from_dict(plan["window"]), per_day=request.aggregation != "range"
    )
    rows_core.check_row_budget(planned, request.rowBudget, days=days, messages=n_messages)
    for kind, ids in catalog.get("truncated", {}).items():
        if ids:
            log.warning("limit cut %d %s: %s", len(ids), kind, ", ".join(ids))
    log.info("Catalog: %d flows, %d email messages; conversion metric %s (%s)",
             len(catalog["flows"]), n_messages, metric["id"], metric["source"])
    catalog["conversion_metric"] = metric
    return catalog


def flow_report(client: KlaviyoClient, catalog: Mapping[str, Any], chunk: Mapping[str, Any]) -> dict[str, Any]:
    """One report call for one chunk; auto mode falls back to a values call if the series is refused."""
    window = Window.from_dict(chunk["window"])
    kind = chunk["kind"]
    warnings: list[str] = []
    args = dict(
        statistics=list(FLOW_STATISTICS),
        start=chunk["timeframe"]["start"],
        end=chunk["timeframe"]["end"],
        conversion_metric_id=catalog["conversion_metric"]["id"],
        group_by=GROUP_BY,
        filter=EMAIL_FILTER,
    )
    try:
        if kind == "series":
            response = client.query_flow_series(interval="daily", **args)
        else:
            response = client.query_flow_values(**args)
    except (KlaviyoRequestError, KlaviyoAuthError) as exc:
        if kind != "series" or not chunk.get("fallback"):
            raise
        warnings.append(f"series report refused ({exc}); aggregation=auto fell back to one range call.")
        log.warning(warnings[-1])
        kind = "values"
        response = client.query_flow_values(**args)
    if kind == "series":
        daily = rows_core.series_to_daily(response, chunk["timezone"], window)
        records = [{"day": d, "flow_id": f, "message_id": m, "stats": s} for (d, f, m), s in sorted(daily.items())]
    else:
        totals = rows_core.values_to_totals(response)
        first = window.start.isoformat()
        records = [{"day": first, "flow_id": f, "message_id": m, "stats": s} for (f, m), s in sorted(totals.items())]
    log.info("Chunk %d: %s..%s via %s → %d message-day records", chunk["index"], window.start, window.end, kind,
             len(records))
    return {"index": chunk["index"], "kind": kind, "window": window.to_dict(), "records": records,
            "names": rows_core.report_names(response), "warnings": warnings}


def flow_rows(plan: Mapping[str, Any], catalog: Mapping[str, Any],
              reports: list[Mapping[str, Any]]) -> tuple[list[dict], bool]:
    """Zero-filled, ordered rows from the chunks' records; (rows, is_range)."""
    request = SyncRequest.from_dict(plan["request"])
    window = Window.from_dict(plan["window"])
    names: dict[str, str] = {}
    for report in reports:
        names.update(report.get("names") or {})
    is_range = any(r["kind"] == "values" for r in reports) and request.reportStrategy != "values-per-day"
    stats = {(r_["day"], r_["flow_id"], r_["message_id"]): r_["stats"] for r in reports for r_ in r["records"]}
    if is_range:
        rows = rows_core.range_rows(catalog, {(k[1], k[2]): v for k, v in stats.items()}, window, names=names)
    else:
        rows = rows_core.flow_rows(catalog, stats, window, names=names)
    rows_core.check_row_budget(len(rows), request.rowBudget)
    return rows, is_range


def write_flow_output(plan: Mapping[str, Any], catalog: Mapping[str, Any], reports: list[Mapping[str, Any]],
                      folder: Path) -> dict[str, Any]:
    """Write flows.csv|flows.json + summary.json; return the runbook's dry-run output."""
    request = SyncRequest.from_dict(plan["request"])
    window = Window.from_dict(plan["window"])
    reports = sorted(reports, key=lambda r: r["index"])
    rows, is_range = flow_rows(plan, catalog, reports)
    folder.mkdir(parents=True, exist_ok=True)
    warnings = [*plan.get("warnings", []), *catalog.get("warnings", []),
                *[w for r in reports for w in r.get("warnings", [])]]
    diagnostics = {
        **base_diagnostics(client_diagnostics([plan, catalog, *reports]), warnings),
        "chunks": [{"index": r["index"], "kind": r["kind"], **r["window"]} for r in reports],
        "timezone": plan["timezone"],
        "conversion_metric": catalog.get("conversion_metric"),
        "truncated": catalog.get("truncated", {}),
        "excluded": catalog.get("excluded", {}),
    }
    data_path = write_rows(folder, "flows", FLOWS_COLUMNS, rows, request.format,
                           escape_formulas=request.escapeFormulas)
    output = {
        "mode": request.mode,
        "rows": len(rows),
        "days": 1 if is_range else window.n_days,
        "flows": len(catalog["flows"]),
        "window": window.to_dict(),
        "aggregation": "range" if is_range else "per-day",
        **previews(FLOWS_COLUMNS, rows, escape_formulas=request.escapeFormulas),
        "diagnostics": diagnostics,
    }
    finish_output(folder, data_path, output)
    log.info("Wrote %d rows to %s; %s", len(rows), data_path, diagnostics["reporting_budget"])
    return output


def run_flow_sync(client: KlaviyoClient, plan: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """The whole flow sync in one task (nightly/history per-account groups): catalog, every chunk, files."""
    catalog = flow_catalog(client, plan)
    catalog["diagnostics"] = {}
    reports = [flow_report(client, catalog, chunk) for chunk in plan["chunks"]]
    # one client did every call: attach its diagnostics once
    catalog["diagnostics"] = {"client": client.diagnostics.to_dict()}
    return write_flow_output(plan, catalog, reports, folder)
