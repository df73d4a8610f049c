"""Operators of the orchestrated snapshot DAGs (nightly and history): one account per mapped group.

Each operator takes the account's snapshot plan (``syncs.snapshot_plan``) as its templated input and
calls the same sync steps as the single-sync DAGs. Only counts, paths and ids cross XCom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from flowsync_provider.core.params import refuse_secrets
from flowsync_provider.core.summary import run_folder
from flowsync_provider.core.uploads import active_messages
from flowsync_provider.core.workdir import sweep_dead_workdirs
from flowsync_provider.errors import fail_fast
from flowsync_provider.klaviyo import KlaviyoClient
from flowsync_provider.operators.base import KlaviyoBaseOperator
from flowsync_provider.operators.plan import run_instant
from flowsync_provider.operators.snapshot import CreateSnapshotOperator, ProcessSnapshotOperator
from flowsync_provider.operators.upload import UploadOperator, check_live_ready
from flowsync_provider.syncs import audience as audience_sync
from flowsync_provider.syncs import campaigns as campaign_sync
from flowsync_provider.syncs import flows as flow_sync
from flowsync_provider.syncs import snapshot_plan


def _anchor(context: Mapping[str, Any]):
    """Scheduled and backfilled runs: the data interval end; manual runs: run_after."""
    return context.get("data_interval_end") or run_instant(context)


def _folder(context: Mapping[str, Any], plan: Mapping[str, Any], sync: str) -> Path:
    return run_folder(context["dag"].dag_id, context["run_id"], plan["account_id"]) / sync


class ResolveAccountsOperator(BaseOperator):
    """Read the accounts to snapshot from the Variable ``flowsync_accounts`` at run time (never at parse)."""

    def __init__(self, *, variable: str = snapshot_plan.ACCOUNTS_VARIABLE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.variable = variable

    def execute(self, context: Mapping[str, Any]) -> list[dict[str, Any]]:
        from airflow.sdk import Variable

        raw = Variable.get(self.variable, default=None)
        accounts = snapshot_plan.parse_accounts(raw)
        self.log.info("Snapshotting %d account(s)%s: %s", len(accounts),
                      "" if raw else f" (Variable {self.variable} not set: the default connection)",
                      ", ".join(a["accountId"] or a["klaviyoConnId"] for a in accounts))
        return accounts


class _AccountOperator(KlaviyoBaseOperator):
    """Klaviyo calls go through the account's own connection (``klaviyoConnId``)."""

    def _use_connection(self, conn_id: str) -> None:
        if conn_id != self.klaviyo_conn_id:
            self.klaviyo_conn_id = conn_id
            self.__dict__.pop("hook", None)


class SnapshotPlanOperator(_AccountOperator):
    """Live gating, then the account's plan: window (nightly ±1 or a history range), chunks, uploadId."""

    template_fields: Sequence[str] = ("account",)

    def __init__(self, *, account: Any, kind: str = "nightly", dashboard_conn_id: str = "flowsync_dashboard",
                 supabase_conn_id: str = "supabase_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.account = account
        self.kind = kind
        self.dashboard_conn_id = dashboard_conn_id
        self.supabase_conn_id = supabase_conn_id

    def prepare(self, context: Mapping[str, Any]) -> None:
        refuse_secrets(getattr(context.get("dag_run"), "conf", None))  # first: names the key, never the value
        sweep_dead_workdirs()  # PII left by killed runs, before anything else (dry-run too)
        self._use_connection(self.account.get("klaviyoConnId") or "klaviyo_default")
        # Each missing piece fails with its own message before anything is fetched.
        check_live_ready(supabase_conn_id=self.supabase_conn_id, dashboard_conn_id=self.dashboard_conn_id,
                         needs_admin_secret=True)

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        # uploadId key: the logical date when the run has one (scheduled/backfilled runs, and re-triggers of the
        # same slot), else the run id. Retries and clears keep it, so re-runs overwrite the same objects.
        logical = context.get("logical_date")
        ids = {"dag_id": context["dag"].dag_id, "run_id": logical.isoformat() if logical else context["run_id"]}
        if self.kind == "history":
            return snapshot_plan.history_plan(client, self.account, context["params"], now=run_instant(context), **ids)
        return snapshot_plan.nightly_plan(client, self.account, context["params"], anchor=_anchor(context), **ids)


class _PlannedOperator(_AccountOperator):
    template_fields: Sequence[str] = ("plan",)

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def prepare(self, context: Mapping[str, Any]) -> None:
        self._use_connection(self.plan["klaviyo_conn_id"])


class SnapshotFlowsOperator(_PlannedOperator):
    """flows.csv for the plan's window: catalog + every series chunk in one task (nightly: one chunk)."""

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        catalog = flow_sync.flow_catalog(client, self.plan["flows"])
        reports = []
        for chunk in self.plan["flows"]["chunks"]:  # one ledger count per chunk (kept across task tries)
            with self.chunk_ledger(client, f"flows:{chunk['index']}"):
                reports.append(flow_sync.flow_report(client, catalog, chunk))
        catalog["diagnostics"] = {"client": self.try_diagnostics(client)}
        output = flow_sync.write_flow_output(self.plan["flows"], catalog, reports, _folder(context, self.plan, "flows"))
        return {**output, "active_messages": active_messages(catalog)}


class SnapshotCampaignsOperator(_PlannedOperator):
    """campaigns.csv: catalog + one campaign-values call per ≤1-year chunk."""

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        plan = self.plan["campaigns"]
        catalog = campaign_sync.campaign_catalog(client, plan)
        reports = []
        for chunk in plan["chunks"]:  # one ledger count per chunk (kept across task tries)
            with self.chunk_ledger(client, f"campaigns:{chunk['index']}"):
                reports.append(campaign_sync.campaign_report(client, catalog, chunk))
        catalog["diagnostics"] = {"client": self.try_diagnostics(client)}
        output = campaign_sync.write_campaign_output(plan, catalog, reports, _folder(context, self.plan, "campaigns"))
        return {**output, "active_messages": active_messages(catalog)}


class SnapshotSubscribersOperator(_PlannedOperator):
    """subscribers.csv: the audience export (full by default), streamed to disk."""

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        sweep_dead_workdirs()
        folder = _folder(context, self.plan, "subscribers")
        export = audience_sync.export_audience(client, self.plan["audience"], folder,
                                               hash_key=audience_sync.hash_key_from_env())
        output = audience_sync.write_audience_summary(self.plan["audience"], export)
        return {**output, "active_messages": 0}


class SnapshotUploadOperator(UploadOperator):
    """Upload the three CSVs under the plan's uploadId to the ingest bucket; then drop local PII."""

    template_fields: Sequence[str] = (*UploadOperator.template_fields, "plan", "outputs")

    def __init__(self, *, plan: Any, outputs: Any, **kwargs: Any) -> None:
        kwargs.setdefault("bucket_env", "ingest")
        super().__init__(files={}, **kwargs)
        self.plan = plan
        self.outputs = outputs

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        outputs = [o for item in self.outputs for o in (item if isinstance(item, list) else [item])]
        self.files = {Path(o["files"]["data"]).name: o["files"]["data"] for o in outputs}
        self.catalog_active_messages = {Path(o["files"]["data"]).name: o.get("active_messages", 0) for o in outputs}
        self.upload_id = self.plan["upload_id"]
        self.account_id = self.plan["account_id"]
        self.allow_empty = self.plan.get("allow_empty", False)
        result = super().execute(context)
        for o in outputs:
            if Path(o["files"]["data"]).name == "subscribers.csv":
                audience_sync.cleanup_run_folder(Path(o["files"]["data"]).parent)
        return result


class SnapshotCreateOperator(CreateSnapshotOperator):
    """The snapshot row for (account, uploadId), idempotent: a re-run reuses it."""

    template_fields: Sequence[str] = (*CreateSnapshotOperator.template_fields, "plan")

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(account_id=None, upload_id=None, window=None, **kwargs)
        self.plan = plan

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        self.account_id, self.upload_id = self.plan["account_id"], self.plan["upload_id"]
        self.window = self.plan["window"]
        return super().execute(context)


class SnapshotProcessOperator(ProcessSnapshotOperator):
    """POST /api/snapshots/process (delete the window's series, re-insert); optionally defer until done."""

    template_fields: Sequence[str] = (*ProcessSnapshotOperator.template_fields, "plan")

    def __init__(self, *, plan: Any, snapshot: Any, **kwargs: Any) -> None:
        super().__init__(snapshot_id=snapshot, upload_id=None, account_id=None, window=None, **kwargs)
        self.plan = plan

    def execute(self, context: Mapping[str, Any]) -> Any:
        self.account_id, self.upload_id = self.plan["account_id"], self.plan["upload_id"]
        self.window = self.plan["window"]
        if context["params"].get("waitForProcessing") is not None:
            self.wait_for_completion = bool(context["params"]["waitForProcessing"])
        return super().execute(context)


class HistoryPlanChunks(BaseOperator):
    """Every reporting call of a history plan as a list (what the pooled report map expands over)."""

    template_fields: Sequence[str] = ("plan",)

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def execute(self, context: Mapping[str, Any]) -> list[dict[str, Any]]:
        return snapshot_plan.all_chunks(self.plan)


class HistoryCatalogOperator(_PlannedOperator):
    """Flow and campaign catalogs for a history plan (before any report call)."""

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        return {"flows": flow_sync.flow_catalog(client, self.plan["flows"]),
                "campaigns": campaign_sync.campaign_catalog(client, self.plan["campaigns"])}


class HistoryReportOperator(_PlannedOperator):
    """One reporting call of a history plan (mapped over every flow and campaign chunk, pooled)."""

    template_fields: Sequence[str] = ("plan", "catalogs", "chunk")

    def __init__(self, *, catalogs: Any, chunk: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.catalogs = catalogs
        self.chunk = chunk

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        sync = self.chunk["sync"]
        step = flow_sync.flow_report if sync == "flows" else campaign_sync.campaign_report
        return {**step(client, self.catalogs[sync], self.chunk), "sync": sync}


class HistoryBuildOperator(BaseOperator):
    """flows.csv and campaigns.csv for the whole range from the mapped reports."""

    template_fields: Sequence[str] = ("plan", "catalogs", "reports")

    def __init__(self, *, plan: Any, catalogs: Any, reports: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.catalogs = catalogs
        self.reports = reports

    def execute(self, context: Mapping[str, Any]) -> list[dict[str, Any]]:
        with fail_fast():
            return self._build(context)

    def _build(self, context: Mapping[str, Any]) -> list[dict[str, Any]]:
        reports = list(self.reports or [])
        for_sync = {s: [r for r in reports if r["sync"] == s] for s in ("flows", "campaigns")}
        flows = flow_sync.write_flow_output(self.plan["flows"], self.catalogs["flows"], for_sync["flows"],
                                           _folder(context, self.plan, "flows"))
        campaigns = campaign_sync.write_campaign_output(self.plan["campaigns"], self.catalogs["campaigns"],
                                                        for_sync["campaigns"], _folder(context, self.plan, "campaigns"))
        return [{**flows, "active_messages": active_messages(self.catalogs["flows"])},
                {**campaigns, "active_messages": active_messages(self.catalogs["campaigns"])}]
