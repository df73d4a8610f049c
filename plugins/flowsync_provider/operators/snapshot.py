"""Snapshot operators: create the snapshot row, trigger processing, optionally wait (deferred).

- :class:`CreateSnapshotOperator`: one row per ``(account, uploadId)`` through :class:`SnapshotStore`
  on a Postgres connection; re-runs find the same row (idempotent).
- :class:`ProcessSnapshotOperator`: ``POST /api/snapshots/process`` through :class:`DashboardHook`
  (the admin secret is the connection password, added by the hook at call time, never templated);
  with ``wait_for_completion=True`` it defers until the processor reports the snapshot done.
- :class:`WaitSnapshotProcessedOperator`: only the wait, for a snapshot processed elsewhere.

Waiting happens in the triggerer (:class:`SnapshotProcessedTrigger`), so no worker slot is held.
"""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from airflow.sdk import BaseOperator

from flowsync_provider.core.errors import FlowsyncError, ParamError
from flowsync_provider.snapshots import SnapshotError, SnapshotStore
from flowsync_provider.triggers.snapshot import SnapshotProcessedTrigger, is_processed

__all__ = [
    "CreateSnapshotOperator",
    "ProcessSnapshotOperator",
    "SnapshotNotProcessed",
    "WaitSnapshotProcessedOperator",
    "snapshot_id_of",
    "window_of",
]


class SnapshotNotProcessed(FlowsyncError):
    """The processor reported failure, or did not finish before the deadline."""


def window_of(value: Any) -> dict[str, str]:
    """``{"start","end"}`` from a dict, a ``Window``-like object, or its JSON / repr string (templated)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise ParamError(f"window must be {{'start': 'YYYY-MM-DD', 'end': 'YYYY-MM-DD'}}, got {text!r}.") \
                    from None
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, Mapping) and "window" in value and "start" not in value:
        value = value["window"]  # a whole plan was passed
    if not isinstance(value, Mapping) or not value.get("start") or not value.get("end"):
        raise ParamError(f"window must have a start and an end (YYYY-MM-DD), got {value!r}.")
    out = {}
    for key in ("start", "end"):
        raw = value[key]
        text = raw.isoformat() if isinstance(raw, date) else str(raw)[:10]
        try:
            date.fromisoformat(text)
        except ValueError:
            raise ParamError(f"window.{key} must be a date (YYYY-MM-DD), got {raw!r}.") from None
        out[key] = text
    if out["start"] > out["end"]:
        raise ParamError(f"window.start {out['start']} is after window.end {out['end']}.")
    return out


def snapshot_id_of(value: Any) -> str:
    """The id from a ``CreateSnapshotOperator`` result (dict or its repr) or a plain id."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            pass
    if isinstance(value, Mapping):
        value = value.get("id")
    text = "" if value is None else str(value).strip()
    if not text or text == "None":
        raise ParamError("snapshot_id is required: pass the id returned by the create_snapshot task.")
    return text


def _text(value: Any, name: str) -> str:
    text = "" if value is None else str(value).strip()
    if not text or text == "None":
        raise ParamError(f"{name} is required (a non-empty string).")
    return text


class CreateSnapshotOperator(BaseOperator):
    """Create (or find) the snapshot row for ``(account_id, upload_id)``; returns ``{"id","created","status"}``.

    :param account_id: Klaviyo account id (templated).
    :param upload_id: the upload folder the CSVs were written to (templated).
    :param window: ``{"start","end"}`` of the data in the upload (templated).
    :param postgres_conn_id: Postgres connection of the dashboard database.
    :param ensure_schema: apply ``sql/snapshots.sql`` first (off: the dashboard owns the table).
    """

    template_fields: Sequence[str] = ("account_id", "upload_id", "window")
    ui_color = "#336791"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        account_id: Any,
        upload_id: Any,
        window: Any,
        postgres_conn_id: str = "flowsync_snapshots_db",
        ensure_schema: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.account_id = account_id
        self.upload_id = upload_id
        self.window = window
        self.postgres_conn_id = postgres_conn_id
        self.ensure_schema = ensure_schema

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        account = _text(self.account_id, "account_id")
        upload = _text(self.upload_id, "upload_id")
        window = window_of(self.window)
        hook = PostgresHook(postgres_conn_id=self.postgres_conn_id)
        store = SnapshotStore(hook.get_conn)
        try:
            if self.ensure_schema:
                store.ensure_schema()
            result = store.create_or_get(account, upload, window["start"], window["end"])
        except Exception as exc:
            # SQLSTATE 42P01 (undefined_table), psycopg 3 (.sqlstate) or psycopg2 (.pgcode)
            if (getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)) != "42P01":
                raise
            raise SnapshotError(
                f"No snapshots table on connection {self.postgres_conn_id!r} (search_path): point it at the "
                "dashboard database, or set ensure_schema=True to create the table from sql/snapshots.sql."
            ) from exc
        self.log.info(
            "Snapshot %s for account %s, upload %s (%s..%s): %s, status %s.",
            result["id"], account, upload, window["start"], window["end"],
            "created" if result["created"] else "already existed (re-run)", result["status"],
        )
        return result


class _WaitsForSnapshot(BaseOperator):
    """Shared deferral: hand the wait to :class:`SnapshotProcessedTrigger`, judge its event."""

    dashboard_conn_id: str
    poll_interval: float
    timeout: float

    def _defer_until_processed(
        self, snapshot_id: str, *, processed_after: float | None, result: dict[str, Any] | None
    ) -> None:
        from flowsync_provider.hooks.dashboard import DashboardHook

        base_url = DashboardHook(dashboard_conn_id=self.dashboard_conn_id).url_from_endpoint("").rstrip("/")
        deadline = time.time() + self.timeout
        self.log.info("Waiting (deferred) up to %.0fs for snapshot %s to be processed; polling every %.0fs.",
                      self.timeout, snapshot_id, self.poll_interval)
        self.defer(
            trigger=SnapshotProcessedTrigger(
                base_url=base_url, snapshot_id=snapshot_id, conn_id=self.dashboard_conn_id,
                poll_interval=self.poll_interval, timeout_at=deadline, processed_after=processed_after,
            ),
            method_name="execute_complete",
            kwargs={"result": result},
            # Airflow's own deadline is a safety net only: the trigger's timeout event says more.
            timeout=timedelta(seconds=self.timeout + 2 * self.poll_interval + 60),
        )

    def execute_complete(
        self, context: Mapping[str, Any], event: Mapping[str, Any] | None = None,
        result: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        event = dict(event or {})
        status = event.get("status")
        if status != "processed":
            message = event.get("message") or f"Snapshot wait ended with status {status!r}."
            raise SnapshotNotProcessed(message)
        record = event.get("snapshot") or {}
        out = dict(result or {"snapshot_id": event.get("snapshot_id")})
        out.update(status="processed", last_email_date=record.get("last_email_date"),
                   processed_at=record.get("processed_at"), polls=event.get("polls"))
        self.log.info("%s", event.get("message"))
        return out


class ProcessSnapshotOperator(_WaitsForSnapshot):
    """Trigger processing of a snapshot (``POST /api/snapshots/process``), optionally wait until done.

    :param snapshot_id: the id (or the create task's result dict) (templated).
    :param upload_id: the upload folder holding flows.csv, campaigns.csv, subscribers.csv (templated).
    :param account_id: Klaviyo account id (templated).
    :param window: ``{"start","end"}`` (templated).
    :param dashboard_conn_id: HTTP connection: host = dashboard URL, password = admin secret.
    :param wait_for_completion: when the answer is not already "processed", defer until it is.
    :param poll_interval: seconds between status polls while waiting.
    :param timeout: seconds to wait before failing with a timeout.

    Returns ``{"snapshot_id", "upload_id", "status", "last_email_date", "rows", ...}`` (never the secret).
    """

    template_fields: Sequence[str] = ("snapshot_id", "upload_id", "account_id", "window")
    ui_color = "#f5a623"

    def __init__(
        self,
        *,
        snapshot_id: Any,
        upload_id: Any,
        account_id: Any,
        window: Any,
        dashboard_conn_id: str = "flowsync_dashboard",
        wait_for_completion: bool = False,
        poll_interval: float = 30.0,
        timeout: float = 3600.0,
        clock_skew_seconds: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.snapshot_id = snapshot_id
        self.upload_id = upload_id
        self.account_id = account_id
        self.window = window
        self.dashboard_conn_id = dashboard_conn_id
        self.wait_for_completion = wait_for_completion
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self.clock_skew_seconds = float(clock_skew_seconds)

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any] | None:
        from flowsync_provider.hooks.dashboard import DashboardHook

        snapshot_id = snapshot_id_of(self.snapshot_id)
        upload_id = _text(self.upload_id, "upload_id")
        account_id = _text(self.account_id, "account_id")
        window = window_of(self.window)
        started = time.time()
        response = DashboardHook(dashboard_conn_id=self.dashboard_conn_id).process_snapshot(
            snapshot_id, upload_id, account_id, window
        )
        body = response if isinstance(response, dict) else {}
        result = {
            "snapshot_id": snapshot_id,
            "upload_id": upload_id,
            "account_id": account_id,
            "window": window,
            "status": body.get("status"),  # no status in the answer: wait and see (when waiting)
            "ok": body.get("ok"),
            "last_email_date": body.get("lastEmailDate") or body.get("last_email_date"),
            "rows": body.get("rows"),
        }
        self.log.info("Dashboard accepted snapshot %s: status %s, rows %s.", snapshot_id, result["status"],
                      result["rows"])
        if not self.wait_for_completion or is_processed(
            {"status": result["status"], "last_email_date": result["last_email_date"]}
        ):
            return result
        self._defer_until_processed(
            snapshot_id, processed_after=started - self.clock_skew_seconds, result=result
        )
        return None  # pragma: no cover - defer() raises


class WaitSnapshotProcessedOperator(_WaitsForSnapshot):
    """Defer until the dashboard reports snapshot ``snapshot_id`` processed (or fail on failed/timeout).

    :param processed_after: epoch seconds; an older ``processed_at`` is an earlier run's and doesn't count.
    """

    template_fields: Sequence[str] = ("snapshot_id",)
    ui_color = "#f5a623"

    def __init__(
        self,
        *,
        snapshot_id: Any,
        dashboard_conn_id: str = "flowsync_dashboard",
        poll_interval: float = 30.0,
        timeout: float = 3600.0,
        processed_after: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.snapshot_id = snapshot_id
        self.dashboard_conn_id = dashboard_conn_id
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self.processed_after = processed_after

    def execute(self, context: Mapping[str, Any]) -> None:
        snapshot_id = snapshot_id_of(self.snapshot_id)
        self._defer_until_processed(snapshot_id, processed_after=self.processed_after,
                                    result={"snapshot_id": snapshot_id})
