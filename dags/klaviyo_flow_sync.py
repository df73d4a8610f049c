"""Klaviyo flow sync: the runbook's POST /api/klaviyo/flow-sync as an Airflow DAG (manual trigger).

Thin on purpose: wiring and params only; no connection or Variable lookups at parse time.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from flowsync_provider.operators.flows import (
    FlowBuildOperator,
    FlowCatalogOperator,
    FlowPlanOperator,
    FlowReportOperator,
)
from flowsync_provider.operators.live import SyncUploadOperator
from flowsync_provider.params import flow_params

with DAG(
    dag_id="klaviyo_flow_sync",
    description="Klaviyo flows → per-day message metrics → flows.csv (dry-run by default)",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=flow_params(),
    tags=["klaviyo", "flowsync"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True},
    doc_md=__doc__,
) as dag:
    plan = FlowPlanOperator(task_id="plan", pool="klaviyo_api", retries=0)
    planned = plan.output["plan"]  # the plan task returns the chunks; the full plan is a keyed XCom
    catalog = FlowCatalogOperator(task_id="catalog", plan=planned, pool="klaviyo_api")
    reports = FlowReportOperator.partial(
        task_id="report", catalog=catalog.output, pool="klaviyo_reporting"
    ).expand(chunk=plan.output)
    build = FlowBuildOperator(task_id="build", plan=planned, catalog=catalog.output, reports=reports.output)
    upload = SyncUploadOperator(task_id="upload", plan=planned, result=build.output, catalog=catalog.output)
    plan >> catalog >> reports >> build >> upload
