"""Flow sync operators: plan → catalog → report chunks (mapped) → flows.csv / flows.json + summary.

The one-way walk of DESIGN.md. What crosses each task boundary is a small JSON-able dict.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator

from flowsync_provider.core import catalog as catalog_core
from flowsync_provider.core import rows as rows_core
from flowsync_provider.core.csvio import csv_preview, sample, write_csv, write_json
from flowsync_provider.core.params import SyncRequest
from flowsync_provider.core.schemas import FLOW_STATISTICS, FLOWS_COLUMNS
from flowsync_provider.core.summary import merge_diagnostics, quota_line, run_folder
from flowsync_provider.core.windows import Window
from flowsync_provider.klaviyo import KlaviyoAuthError, KlaviyoClient, KlaviyoRequestError
from flowsync_provider.operators.base import KlaviyoBaseOperator
from flowsync_provider.operators.plan import SyncPlanOperator

EMAIL_FILTER = 'equals(send_channel,"email")'
GROUP_BY = ("flow_id", "flow_message_id", "send_channel")


class FlowPlanOperator(SyncPlanOperator):
    """Plan of the flow sync (see :class:`SyncPlanOperator`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(sync="flows", **kwargs)


class FlowCatalogOperator(KlaviyoBaseOperator):
    """The flow list: conversion metric, flows with actions and tags, caps; row budget before reports."""

    template_fields: Sequence[str] = ("plan",)

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        request = SyncRequest.from_dict(self.plan["request"])
        env_metric = os.environ.get("SHOPIFY_PLACED_ORDER_METRIC_ID") or None
        metrics = [] if (request.conversionMetricId or env_metric) else client.get_metrics()
        metric = catalog_core.resolve_conversion_metric(
            metrics, override=request.conversionMetricId, env_value=env_metric
        )
        flows_doc = client.get_flows(include_archived=False)
        catalog = catalog_core.build_flow_catalog(
            flows_doc,
            include_drafts=request.includeDrafts,
            limit_flows=request.limitFlows,
            limit_messages=request.limitMessages,
            enrich_message_names=request.enrichMessageNames,
        )
        planned, days, n_messages = rows_core.planned_flow_rows(
            catalog, Window.from_dict(self.plan["window"]), per_day=request.aggregation != "range"
        )
        rows_core.check_row_budget(planned, request.rowBudget, days=days, messages=n_messages)
        for kind, ids in catalog.get("truncated", {}).items():
            if ids:
                self.log.warning("limit cut %d %s: %s", len(ids), kind, ", ".join(ids))
        self.log.info(
            "Catalog: %d flows, %d email messages; conversion metric %s (%s)",
            len(catalog["flows"]), n_messages, metric["id"], metric["source"],
        )
        catalog["conversion_metric"] = metric
        return catalog


class FlowReportOperator(KlaviyoBaseOperator):
    """One report call for one chunk of the window (mapped over the plan's chunks, pooled)."""

    template_fields: Sequence[str] = ("catalog", "chunk")

    def __init__(self, *, catalog: Any, chunk: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.catalog = catalog
        self.chunk = chunk

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        chunk = self.chunk
        window = Window.from_dict(chunk["window"])
        tz = chunk["timezone"]
        metric_id = self.catalog["conversion_metric"]["id"]
        kind = chunk["kind"]
        warnings: list[str] = []
        args = dict(
            statistics=list(FLOW_STATISTICS),
            start=chunk["timeframe"]["start"],
            end=chunk["timeframe"]["end"],
            conversion_metric_id=metric_id,
            group_by=GROUP_BY,
            filter=EMAIL_FILTER,
        )
        try:
            response = client.query_flow_series(interval="daily", **args) if kind == "series" \
                else client.query_flow_values(**args)
        except (KlaviyoRequestError, KlaviyoAuthError) as exc:
            if kind != "series" or not chunk.get("fallback"):
                raise
            warnings.append(f"series report refused ({exc}); aggregation=auto fell back to one range call.")
            self.log.warning(warnings[-1])
            kind = "values"
            response = client.query_flow_values(**args)
        names = rows_core.report_names(response)
        if kind == "series":
            daily = rows_core.series_to_daily(response, tz, window)
            records = [
                {"day": day, "flow_id": flow_id, "message_id": message_id, "stats": stats}
                for (day, flow_id, message_id), stats in sorted(daily.items())
            ]
        else:
            totals = rows_core.values_to_totals(response)
            records = [
                {"day": window.start.isoformat(), "flow_id": flow_id, "message_id": message_id, "stats": stats}
                for (flow_id, message_id), stats in sorted(totals.items())
            ]
        self.log.info(
            "Chunk %d: %s..%s via %s → %d message-day records",
            chunk["index"], window.start, window.end, kind, len(records),
        )
        return {"index": chunk["index"], "kind": kind, "window": window.to_dict(), "records": records,
                "names": names, "warnings": warnings}


class FlowBuildOperator(BaseOperator):
    """Zero-fill, order and format the rows; write flows.csv/flows.json and summary.json."""

    template_fields: Sequence[str] = ("plan", "catalog", "reports")

    def __init__(self, *, plan: Any, catalog: Any, reports: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.catalog = catalog
        self.reports = reports

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        return build_flow_output(self.plan, self.catalog, list(self.reports or []), context, self.log)


def build_flow_output(plan: Mapping[str, Any], catalog: Mapping[str, Any], reports: list[Mapping[str, Any]],
                      context: Mapping[str, Any], log: Any) -> dict[str, Any]:
    request = SyncRequest.from_dict(plan["request"])
    window = Window.from_dict(plan["window"])
    reports = sorted(reports, key=lambda r: r["index"])
    names: dict[str, str] = {}
    for report in reports:
        names.update(report.get("names") or {})
    is_range = any(r["kind"] == "values" for r in reports) and request.reportStrategy != "values-per-day"
    stats = {(r_["day"], r_["flow_id"], r_["message_id"]): r_["stats"] for r in reports for r_ in r["records"]}
    if is_range:
        totals = {(k[1], k[2]): v for k, v in stats.items()}
        rows = rows_core.range_rows(catalog, totals, window, names=names)
    else:
        rows = rows_core.flow_rows(catalog, stats, window, names=names)
    rows_core.check_row_budget(len(rows), request.rowBudget)

    dag_id = context["dag"].dag_id if context.get("dag") else "klaviyo_flow_sync"
    run_id = context["run_id"] if context.get("run_id") else "manual"
    folder = run_folder(dag_id, run_id, plan["account"].get("id"))
    folder.mkdir(parents=True, exist_ok=True)
    diagnostics = merge_diagnostics(
        [plan.get("diagnostics", {}).get("client"), catalog.get("diagnostics", {}).get("client")]
        + [r.get("diagnostics", {}).get("client") for r in reports]
    )
    warnings = [*plan.get("warnings", []), *catalog.get("warnings", []),
                *[w for r in reports for w in r.get("warnings", [])]]
    summary_diag = {
        "client": diagnostics,
        "reporting_calls": diagnostics.get("reporting_calls", 0),
        "reporting_budget": quota_line(diagnostics.get("reporting_calls", 0)),
        "chunks": [{"index": r["index"], "kind": r["kind"], **r["window"]} for r in reports],
        "timezone": plan["timezone"],
        "conversion_metric": catalog.get("conversion_metric"),
        "truncated": catalog.get("truncated", {}),
        "excluded": catalog.get("excluded", {}),
        "warnings": warnings,
    }
    if request.format == "csv":
        data_path = folder / "flows.csv"
        write_csv(data_path, FLOWS_COLUMNS, rows)
    else:
        data_path = folder / "flows.json"
        write_json(data_path, sample(FLOWS_COLUMNS, rows, n=len(rows)))
    output = {
        "mode": request.mode,
        "rows": len(rows),
        "days": window.n_days if not is_range else 1,
        "flows": len(catalog["flows"]),
        "window": window.to_dict(),
        "aggregation": "range" if is_range else "per-day",
        "sample": sample(FLOWS_COLUMNS, rows, n=5),
        "csvPreview": csv_preview(FLOWS_COLUMNS, rows, n=5),
        "diagnostics": summary_diag,
        "files": {"data": str(data_path), "summary": str(folder / "summary.json")},
    }
    write_json(folder / "summary.json", output)
    log.info("Wrote %d rows to %s; %s", len(rows), data_path, summary_diag["reporting_budget"])
    return output
