"""Live mode of the single syncs: upload the build's CSV to the staging bucket (dry-run: no-op)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from flowsync_provider.core.uploads import active_messages
from flowsync_provider.errors import fail_fast
from flowsync_provider.operators.upload import upload_sync_output
from flowsync_provider.syncs.audience import cleanup_run_folder


class SyncUploadOperator(BaseOperator):
    """``mode=live``: upload flows.csv / campaigns.csv / subscribers.csv to ``FLOW_STAGING_BUCKET``.

    Returns the object paths (the runbook's "JSON confirming object path"); in dry-run it returns
    ``{"mode": "dry-run", "uploaded": false}`` without touching storage.
    """

    template_fields: Sequence[str] = ("plan", "result", "catalog")
    ui_color = "#3ecf8e"

    def __init__(self, *, plan: Any, result: Any, catalog: Any = None, supabase_conn_id: str = "supabase_default",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.result = result
        self.catalog = catalog
        self.supabase_conn_id = supabase_conn_id

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        request = self.plan["request"]
        if request.get("mode") != "live":
            self.log.info("mode=dry-run: nothing uploaded; outputs stay in %s", self.result["files"]["data"])
            return {"mode": "dry-run", "uploaded": False}
        account_id = request.get("accountId") or (self.plan.get("account") or {}).get("id")
        expected = active_messages(self.catalog) if self.catalog else 0
        with fail_fast():
            result = upload_sync_output(
                self.result, context, account_id=account_id, upload_id=request.get("uploadId"),
                supabase_conn_id=self.supabase_conn_id, bucket_env="staging",
                catalog_active_messages=expected, allow_empty=bool(request.get("allowEmpty")), log=self.log,
            )
        data = Path(self.result["files"]["data"])
        if data.name == "subscribers.csv":
            cleanup_run_folder(data.parent)  # PII: drop the local copy once it is safely uploaded
        return {"mode": "live", "uploaded": True, **result}
