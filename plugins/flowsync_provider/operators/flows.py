"""Flow sync operators: plan → catalog → report chunks (mapped) → flows.csv / flows.json + summary.

The one-way walk of DESIGN.md; each operator is a thin shell over ``flowsync_provider.syncs.flows``.
What crosses each task boundary is a small JSON-able dict.
"""

from __future__ import annotations

from typing import Any

from flowsync_provider.operators.base import BuildStepOperator, CatalogStepOperator, ReportStepOperator
from flowsync_provider.operators.plan import SyncPlanOperator
from flowsync_provider.syncs import flows as flow_sync


class FlowPlanOperator(SyncPlanOperator):
    """Plan of the flow sync (see :class:`SyncPlanOperator`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(sync="flows", **kwargs)


class FlowCatalogOperator(CatalogStepOperator):
    """The flow list: conversion metric, flows with actions and tags, caps; row budget before reports."""

    step = staticmethod(flow_sync.flow_catalog)


class FlowReportOperator(ReportStepOperator):
    """One flow-series (or flow-values) call for one chunk of the window (mapped, pool klaviyo_reporting)."""

    step = staticmethod(flow_sync.flow_report)


class FlowBuildOperator(BuildStepOperator):
    """Zero-fill, order and format the rows; write flows.csv/flows.json and summary.json."""

    step = staticmethod(flow_sync.write_flow_output)
