"""Audience sync operators: plan → export (lists walk + profiles stream) → summary; subscribers.csv.

Thin shells over ``flowsync_provider.syncs.audience`` (streaming, bounded memory, PII controls: see its
docstring). Only counts, paths, diagnostics and masked previews cross XCom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator

from flowsync_provider.core.params import SyncRequest, validate_request
from flowsync_provider.core.summary import run_folder
from flowsync_provider.core.workdir import sweep_dead_workdirs
from flowsync_provider.errors import fail_fast
from flowsync_provider.klaviyo import KlaviyoClient
from flowsync_provider.operators.base import KlaviyoBaseOperator
from flowsync_provider.operators.plan import run_instant
from flowsync_provider.syncs import audience as audience_sync


def resolve_hash_key(conn_id: str | None = None) -> bytes | None:
    """The HMAC key: the password of connection ``conn_id`` when given and set, else env FLOWSYNC_HASH_KEY."""
    if conn_id:
        from airflow.sdk import BaseHook

        secret = (BaseHook.get_connection(conn_id).password or "").strip()
        if secret:
            return secret.encode("utf-8")
    return audience_sync.hash_key_from_env()


class AudiencePlanOperator(KlaviyoBaseOperator):
    """Validate params (no window), check gating, read the account, fix the incremental cut-off."""

    def __init__(self, *, live_supported: bool = True, hash_key_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.live_supported = live_supported
        self.hash_key_conn_id = hash_key_conn_id

    def prepare(self, context: Mapping[str, Any]) -> None:
        dag_run = context.get("dag_run")
        conf = getattr(dag_run, "conf", None) or {}
        with fail_fast():
            self._request = validate_request(context["params"], conf, sync="audience",
                                             live_supported=self.live_supported)
            if self._request.mode == "live":
                from flowsync_provider.operators.upload import check_live_ready

                check_live_ready(needs_admin_secret=False)

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        request: SyncRequest = self._request
        keyed = bool(resolve_hash_key(self.hash_key_conn_id)) if request.hashEmails else None
        return audience_sync.audience_plan(client, request, now=run_instant(context), hash_key_set=keyed)


class AudienceExportOperator(KlaviyoBaseOperator):
    """Sweep dead runs' work dirs, then stream the audience to ``subscribers.csv`` in the run folder."""

    template_fields: Sequence[str] = ("plan",)

    def __init__(self, *, plan: Any, chunk_rows: int = audience_sync.DEFAULT_CHUNK_ROWS,
                 hash_key_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.chunk_rows = chunk_rows
        self.hash_key_conn_id = hash_key_conn_id

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        sweep_dead_workdirs()  # PII left by killed runs (their work dirs are no longer locked)
        folder = run_folder(context["dag"].dag_id, context["run_id"], self.plan["account"].get("id"))
        with fail_fast():
            return audience_sync.export_audience(client, self.plan, folder,
                                                 hash_key=resolve_hash_key(self.hash_key_conn_id),
                                                 chunk_rows=self.chunk_rows)


class AudienceBuildOperator(BaseOperator):
    """summary.json (diagnostics, masked sample) next to subscribers.csv; returns the same document."""

    template_fields: Sequence[str] = ("plan", "export")

    def __init__(self, *, plan: Any, export: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.export = export

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        output = audience_sync.write_audience_summary(self.plan, self.export)
        self.log.info("Audience: %d profiles in %s; %s", output["rows"], output["files"]["data"],
                      output["diagnostics"]["export"])
        return output
