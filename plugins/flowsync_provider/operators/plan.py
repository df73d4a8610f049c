"""The first task of every sync: validate params, read the account timezone, plan the report calls."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flowsync_provider.core.params import validate_request
from flowsync_provider.klaviyo import KlaviyoClient
from flowsync_provider.operators.base import KlaviyoBaseOperator
from flowsync_provider.syncs.plan import make_plan


def run_instant(context: Mapping[str, Any]) -> datetime:
    """Manual runs have no logical date: anchor 'today' on run_after (stable across retries)."""
    dag_run = context.get("dag_run")
    instant = getattr(dag_run, "run_after", None) or context.get("logical_date")
    if instant is None:
        import pendulum

        instant = pendulum.now("UTC")
    return instant


class SyncPlanOperator(KlaviyoBaseOperator):
    """Validate, resolve the window in the account timezone, split it into report chunks.

    Returns the list of chunks (what the report map expands over); the whole plan is pushed as the
    XCom key ``plan`` (Airflow maps only over return values).
    """

    def __init__(self, *, sync: str, live_supported: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sync = sync
        self.live_supported = live_supported

    def prepare(self, context: Mapping[str, Any]) -> None:
        dag_run = context.get("dag_run")
        conf = getattr(dag_run, "conf", None) or {}
        self._request = validate_request(context["params"], conf, sync=self.sync, live_supported=self.live_supported)
        if self._request.mode == "live":
            from flowsync_provider.operators.upload import check_live_ready

            check_live_ready(needs_admin_secret=False)

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        return make_plan(client, self._request, sync=self.sync, now=run_instant(context))

    def finish(self, context: Mapping[str, Any], result: dict[str, Any]) -> list[dict[str, Any]]:
        context["ti"].xcom_push(key="plan", value=result)
        return result["chunks"]
