"""Nightly snapshot: flows, campaigns and subscribers per account → ingest bucket → snapshot → process.

The window is yesterday ±1 day in the account timezone ([T-1-extraLookbackDays, T+1], T = the day
before the run's data interval end), so backfilled runs cover their own dates. Accounts come from the
Variable ``flowsync_accounts`` (read at run time); without it, the ``klaviyo_default`` connection.
Thin on purpose: wiring and params only.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task_group

from flowsync_provider import settings
from flowsync_provider.notifications import failure_alert
from flowsync_provider.operators.snapshot_runs import (
    ResolveAccountsOperator,
    SnapshotCampaignsOperator,
    SnapshotCreateOperator,
    SnapshotFlowsOperator,
    SnapshotPlanOperator,
    SnapshotProcessOperator,
    SnapshotSubscribersOperator,
    SnapshotUploadOperator,
)
from flowsync_provider.params import nightly_params

with DAG(
    dag_id="klaviyo_snapshot_nightly",
    description="Nightly ±1 day Klaviyo snapshot: flows.csv, campaigns.csv, subscribers.csv → snapshot process",
    schedule=settings.nightly_schedule(),  # provider config / FLOWSYNC_NIGHTLY_SCHEDULE: no lookup of Airflow state
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=nightly_params(),
    tags=["klaviyo", "flowsync", "snapshot"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True,
                  "on_failure_callback": failure_alert()},
    doc_md=__doc__,
) as dag:
    accounts = ResolveAccountsOperator(task_id="accounts")

    @task_group(group_id="account")
    def per_account(account):
        plan = SnapshotPlanOperator(task_id="plan", account=account, kind="nightly", pool="klaviyo_api")
        flows = SnapshotFlowsOperator(task_id="flows", plan=plan.output, pool="klaviyo_reporting")
        campaigns = SnapshotCampaignsOperator(task_id="campaigns", plan=plan.output, pool="klaviyo_reporting")
        subscribers = SnapshotSubscribersOperator(task_id="subscribers", plan=plan.output, pool="klaviyo_api")
        upload = SnapshotUploadOperator(task_id="upload", plan=plan.output,
                                        outputs=[flows.output, campaigns.output, subscribers.output])
        snapshot = SnapshotCreateOperator(task_id="snapshot", plan=plan.output)
        process = SnapshotProcessOperator(task_id="process", plan=plan.output, snapshot=snapshot.output)
        plan >> [flows, campaigns, subscribers] >> upload >> snapshot >> process

    per_account.expand(account=accounts.output)
