"""Flow sync operators: plan → catalog → report chunks (mapped) → flows.csv / flows.json + summary.

The one-way walk of DESIGN.md; each operator is a thin shell over ``flowsync_provider.syncs.flows``.
What crosses each task boundary is a small JSON-able dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator

from flowsync_provider.core.summary import run_folder
from flowsync_provider.klaviyo import KlaviyoClient
from flowsync_provider.operators.base import KlaviyoBaseOperator, fail_fast
from flowsync_provider.operators.plan import SyncPlanOperator
from flowsync_provider.syncs import flows as flow_sync


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
        return flow_sync.flow_catalog(client, self.plan)


class FlowReportOperator(KlaviyoBaseOperator):
    """One report call for one chunk of the window (mapped over the plan's chunks, pooled)."""

    template_fields: Sequence[str] = ("catalog", "chunk")

    def __init__(self, *, catalog: Any, chunk: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.catalog = catalog
        self.chunk = chunk

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        return flow_sync.flow_report(client, self.catalog, self.chunk)


class FlowBuildOperator(BaseOperator):
    """Zero-fill, order and format the rows; write flows.csv/flows.json and summary.json."""

    template_fields: Sequence[str] = ("plan", "catalog", "reports")

    def __init__(self, *, plan: Any, catalog: Any, reports: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.catalog = catalog
        self.reports = reports

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        folder = run_folder(context["dag"].dag_id, context["run_id"], self.plan["account"].get("id"))
        with fail_fast():
            return flow_sync.write_flow_output(self.plan, self.catalog, list(self.reports or []), folder)
