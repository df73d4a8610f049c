"""Shared plumbing of every Klaviyo-calling operator: gating, client, diagnostics, deferral.

Operators orchestrate; they don't compute. Each subclass implements ``work(context, client)`` and
returns a JSON-able dict. When the client reports that the next allowed call is further away than
``defer_after_seconds`` (daily quota exhausted, a long Retry-After), the task defers to the triggerer
with a trigger that only waits, and resumes by running ``work`` again: report tasks are one call
each, so "again" is "where it stopped".

Every try gets the task's attempt ledger (``KlaviyoClient.task_ledger``), keyed by dag, run, task, map
index, account and clear generation: stable across Airflow's retries, fresh after a clear. The client
charges unanswered reporting calls to it; the base class stores each try that fails or defers, with
its client diagnostics, and merges those earlier tries into the result of the try that succeeds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from flowsync_provider import settings
from flowsync_provider.core.params import require_klaviyo_enabled
from flowsync_provider.errors import fail_fast
from flowsync_provider.klaviyo import (
    KlaviyoClient,
    KlaviyoRateLimitExceeded,
)
from flowsync_provider.klaviyo.diagnostics import Diagnostics
from flowsync_provider.klaviyo.pacing import TaskLedger
from flowsync_provider.triggers.ratelimit import KlaviyoRateLimitTrigger

ERROR_TEXT_LIMIT = 500

def default_defer_after() -> float:
    """``[flowsync] defer_after_seconds`` / FLOWSYNC_DEFER_AFTER_SECONDS, read when a task runs (not at import)."""
    return settings.defer_after_seconds()


class KlaviyoBaseOperator(BaseOperator):
    """Base for operators that talk to Klaviyo through :class:`KlaviyoHook`."""

    ui_color = "#232f3e"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        klaviyo_conn_id: str = "klaviyo_default",
        defer_after_seconds: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.klaviyo_conn_id = klaviyo_conn_id
        self.defer_after_seconds = defer_after_seconds  # None: the setting, read when the task runs

    @cached_property
    def hook(self):  # noqa: ANN201 - imported lazily to keep parse time light
        from flowsync_provider.hooks.klaviyo import KlaviyoHook

        return KlaviyoHook(klaviyo_conn_id=self.klaviyo_conn_id)

    def prepare(self, context: Mapping[str, Any]) -> None:
        """Checks that must pass before Klaviyo is called (param validation); default: none."""

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        raise NotImplementedError

    def finish(self, context: Mapping[str, Any], result: dict[str, Any]) -> Any:
        """Turn the work's result (diagnostics attached) into the task's return value."""
        return result

    def execute(self, context: Mapping[str, Any]) -> Any:
        with fail_fast():
            self.prepare(context)
            require_klaviyo_enabled()
            return self._run(context)

    def execute_complete(self, context: Mapping[str, Any], event: Mapping[str, Any] | None = None) -> Any:
        """Resume after a rate-limit deferral: the wait is over, do the work again."""
        self.log.info("Rate-limit wait over for bucket %s; resuming.", (event or {}).get("bucket"))
        with fail_fast():
            return self._run(context)

    @staticmethod
    def ledger_key(context: Mapping[str, Any], account_key: str) -> str:
        """Attempt-ledger key: the same for every try of this task instance, unique per account.

        ``max_tries`` grows when the task is cleared, so a clear (after fixing the cause) starts a
        fresh allowance while Airflow's automatic retries share one.
        """
        ti = context["ti"]
        parts = [ti.dag_id, ti.run_id, ti.task_id, ti.map_index, getattr(ti, "max_tries", 0), account_key]
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]

    def chunk_ledger(self, client: KlaviyoClient, label: str) -> AbstractContextManager[None]:
        """Charge the block's reporting calls to chunk ``label`` (tasks that run several chunks)."""
        ledger = self._task_ledger
        return client.charging(ledger.chunk(label) if ledger is not None else None)

    _task_ledger: TaskLedger | None = None

    def _run(self, context: Mapping[str, Any]) -> Any:
        wait = default_defer_after() if self.defer_after_seconds is None else self.defer_after_seconds
        client = self.hook.get_client(max_wait_seconds=wait)
        try:
            ledger = self._task_ledger = client.task_ledger(self.ledger_key(context, client.account_key))
            try:
                with client.charging(ledger.chunk()):
                    result = self.work(context, client)
            except KlaviyoRateLimitExceeded as exc:
                self._record_try(ledger, context, client, "deferred", exc)
                self.log.info(
                    "Klaviyo bucket %s is exhausted until %.0f; deferring instead of holding a worker slot.",
                    exc.bucket,
                    exc.retry_at,
                )
                self.defer(
                    trigger=KlaviyoRateLimitTrigger(retry_at=exc.retry_at, bucket=exc.bucket),
                    method_name="execute_complete",
                )
            except Exception as exc:
                self._record_try(ledger, context, client, "failed", exc)
                raise
            diagnostics = self.try_diagnostics(client)
        finally:
            client.close()
        result["diagnostics"] = {**result.get("diagnostics", {}), "client": diagnostics}
        return self.finish(context, result)

    def try_diagnostics(self, client: KlaviyoClient) -> dict[str, Any]:
        """This try's client diagnostics plus those of the task's earlier (failed/deferred) tries.

        Counters are summed, so the summary's reporting calls include quota spent by failed tries;
        the tries themselves are listed under ``earlier_tries``.
        """
        diagnostics = client.diagnostics.to_dict()
        earlier = self._task_ledger.earlier_tries() if self._task_ledger is not None else []
        if not earlier:
            return diagnostics
        return {**Diagnostics.merge(diagnostics, *(e["client"] for e in earlier)), "earlier_tries": earlier}

    def _record_try(self, ledger: TaskLedger, context: Mapping[str, Any], client: KlaviyoClient, outcome: str,
                    exc: BaseException) -> None:
        """Keep a try that did not finish (its calls may have cost quota) for the summary of the one that does."""
        ti = context["ti"]
        error = client.redact(f"{type(exc).__name__}: {exc}")[:ERROR_TEXT_LIMIT]
        try:
            ledger.record_try({"task": ti.task_id, "map_index": ti.map_index, "try": ti.try_number,
                               "outcome": outcome, "error": error, "client": client.diagnostics.to_dict()})
        except Exception:  # noqa: BLE001 - bookkeeping must never hide the task's real error
            self.log.warning("Could not store this try's diagnostics in the limiter store", exc_info=True)


class CatalogStepOperator(KlaviyoBaseOperator):
    """A sync's catalog step: ``step(client, plan) -> catalog`` (subclasses set ``step``)."""

    template_fields: Sequence[str] = ("plan",)
    step: Callable[[KlaviyoClient, Mapping[str, Any]], dict[str, Any]]

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        return type(self).step(client, self.plan)


class ReportStepOperator(KlaviyoBaseOperator):
    """One report call for one chunk, ``step(client, catalog, chunk)``; mapped over the plan's chunks."""

    template_fields: Sequence[str] = ("catalog", "chunk")
    step: Callable[[KlaviyoClient, Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]

    def __init__(self, *, catalog: Any, chunk: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.catalog = catalog
        self.chunk = chunk

    def work(self, context: Mapping[str, Any], client: KlaviyoClient) -> dict[str, Any]:
        return type(self).step(client, self.catalog, self.chunk)


class BuildStepOperator(BaseOperator):
    """Rows → files + summary.json in the run folder, ``step(plan, catalog, reports, folder)``; no Klaviyo call."""

    template_fields: Sequence[str] = ("plan", "catalog", "reports")
    step: Callable[..., dict[str, Any]]

    def __init__(self, *, plan: Any, catalog: Any, reports: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.catalog = catalog
        self.reports = reports

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        from flowsync_provider.core.summary import run_folder

        folder = run_folder(context["dag"].dag_id, context["run_id"], self.plan["account"].get("id"))
        with fail_fast():
            return type(self).step(self.plan, self.catalog, list(self.reports or []), folder)
