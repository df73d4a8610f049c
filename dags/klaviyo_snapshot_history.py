"""History snapshot: rebuild a long range in few reporting calls (≤60-day series, ≤1-year campaign values).

730 nightly runs would spend 1,460 reporting calls (6½ days of Klaviyo's 225/day quota); this DAG plans
the range up front, prints the call budget and refuses plans above ``maxShare`` of the daily quota unless
``force``. Manual trigger with params start/end; one account (``accountId``/``klaviyo_default``).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from flowsync_provider.notifications import failure_alert
from flowsync_provider.operators.snapshot_runs import (
    HistoryBuildOperator,
    HistoryCatalogOperator,
    HistoryPlanChunks,
    HistoryReportOperator,
    SnapshotCreateOperator,
    SnapshotPlanOperator,
    SnapshotProcessOperator,
    SnapshotSubscribersOperator,
    SnapshotUploadOperator,
)
from flowsync_provider.params import history_params

with DAG(
    dag_id="klaviyo_snapshot_history",
    description="Klaviyo history snapshot over a date range, planned against the 225/day reporting quota",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=history_params(),
    tags=["klaviyo", "flowsync", "snapshot"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True,
                  "on_failure_callback": failure_alert()},
    doc_md=__doc__,
) as dag:
    plan = SnapshotPlanOperator(task_id="plan", account={"accountId": None, "klaviyoConnId": "klaviyo_default"},
                                kind="history", pool="klaviyo_api", retries=0)
    chunks = HistoryPlanChunks(task_id="chunks", plan=plan.output)
    catalogs = HistoryCatalogOperator(task_id="catalogs", plan=plan.output, pool="klaviyo_api")
    reports = HistoryReportOperator.partial(
        task_id="report", plan=plan.output, catalogs=catalogs.output, pool="klaviyo_reporting"
    ).expand(chunk=chunks.output)
    build = HistoryBuildOperator(task_id="build", plan=plan.output, catalogs=catalogs.output, reports=reports.output)
    subscribers = SnapshotSubscribersOperator(task_id="subscribers", plan=plan.output, pool="klaviyo_api")
    upload = SnapshotUploadOperator(task_id="upload", plan=plan.output, outputs=[build.output, subscribers.output])
    snapshot = SnapshotCreateOperator(task_id="snapshot", plan=plan.output)
    process = SnapshotProcessOperator(task_id="process", plan=plan.output, snapshot=snapshot.output)
    plan >> [chunks, catalogs, subscribers]
    reports >> build >> upload
    subscribers >> upload >> snapshot >> process
