"""Klaviyo campaign sync: sent email campaigns of a window → campaigns.csv (manual trigger, dry-run).

One campaign-values report per ≤ 1-year chunk of the window (Klaviyo has no campaign series report),
never one per day or per campaign. Thin on purpose: wiring and params only; no connection or Variable
lookups at parse time. Column meanings: README.md "Campaign sync and audience sync".
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from flowsync_provider.operators.campaigns import (
    CampaignBuildOperator,
    CampaignCatalogOperator,
    CampaignPlanOperator,
    CampaignReportOperator,
)
from flowsync_provider.operators.live import SyncUploadOperator
from flowsync_provider.params import campaign_params

with DAG(
    dag_id="klaviyo_campaign_sync",
    description="Klaviyo sent email campaigns → per-message metrics → campaigns.csv (dry-run by default)",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=campaign_params(),
    tags=["klaviyo", "flowsync"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True},
    doc_md=__doc__,
) as dag:
    plan = CampaignPlanOperator(task_id="plan", pool="klaviyo_api", retries=0)
    planned = plan.output["plan"]  # the plan task returns the chunks; the full plan is a keyed XCom
    catalog = CampaignCatalogOperator(task_id="catalog", plan=planned, pool="klaviyo_api")
    reports = CampaignReportOperator.partial(
        task_id="report", catalog=catalog.output, pool="klaviyo_reporting"
    ).expand(chunk=plan.output)
    build = CampaignBuildOperator(task_id="build", plan=planned, catalog=catalog.output, reports=reports.output)
    upload = SyncUploadOperator(task_id="upload", plan=planned, result=build.output, catalog=catalog.output)
    plan >> catalog >> reports >> build >> upload
