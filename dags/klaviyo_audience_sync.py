"""Klaviyo audience sync: every profile (or those changed since a cut-off) → subscribers.csv (dry-run).

The heaviest export: profiles are streamed page by page to disk and sorted by Profile ID in bounded
memory; only counts and paths cross XCom. List names come from walking each list's members. Thin on
purpose: wiring and params only. Column meanings and privacy options: README.md.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from flowsync_provider.operators.audience import (
    AudienceBuildOperator,
    AudienceExportOperator,
    AudiencePlanOperator,
)
from flowsync_provider.operators.live import SyncUploadOperator
from flowsync_provider.params import audience_params

with DAG(
    dag_id="klaviyo_audience_sync",
    description="Klaviyo profiles + consent + list names → subscribers.csv (dry-run by default)",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=audience_params(),
    tags=["klaviyo", "flowsync", "pii"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True},
    doc_md=__doc__,
) as dag:
    plan = AudiencePlanOperator(task_id="plan", pool="klaviyo_api", retries=0)
    export = AudienceExportOperator(task_id="export", plan=plan.output, pool="klaviyo_api",
                                    execution_timeout=timedelta(hours=2))
    build = AudienceBuildOperator(task_id="build", plan=plan.output, export=export.output)
    upload = SyncUploadOperator(task_id="upload", plan=plan.output, result=build.output)
    plan >> export >> build >> upload
