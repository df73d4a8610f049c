"""Failure alerting through Airflow's own callback mechanism: a notifier posting to a webhook.

Use ``on_failure_callback=failure_alert()`` on a DAG or in ``default_args``. The webhook is the
HTTP connection ``flowsync_alerts`` (host = URL or hostname, schema = http/https, port, extra
``{"endpoint": "/path"}``; an optional password is sent as ``Authorization: Bearer``). Without that
connection the notifier logs one line and does nothing, so DAGs can always carry it.

The JSON is short and safe: dag_id, run_id, task_id, map_index, try_number and the first line of
the exception (passed through Airflow's secrets masker); never connection fields, params or logs.
A failing webhook is logged, not raised: an alert must never mask the failure it reports. The POST
uses the standard library on purpose: httpx logs every request URL at INFO, and webhook URLs (Slack,
Teams) carry their credential in the path.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook, BaseNotifier
from airflow.sdk.exceptions import AirflowNotFoundException

__all__ = ["ALERT_CONN_ID", "FlowsyncFailureNotifier", "alert_payload", "failure_alert"]

ALERT_CONN_ID = "flowsync_alerts"
MAX_ERROR_CHARS = 300


def _where(url: str) -> str:
    """Scheme and host only: webhook paths and queries often are the credential (Slack, Teams)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def _redact(text: str) -> str:
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # pragma: no cover - other task SDK layouts
        return text
    redacted = redact(text)
    return redacted if isinstance(redacted, str) else text


def _first_line(error: Any) -> str | None:
    if error is None:
        return None
    if isinstance(error, BaseException):
        text = str(error).strip() or type(error).__name__
        text = f"{type(error).__name__}: {text}" if text != type(error).__name__ else text
    else:
        text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    if len(line) > MAX_ERROR_CHARS:
        line = line[:MAX_ERROR_CHARS] + "..."
    return _redact(line) or None


def alert_payload(context: Mapping[str, Any]) -> dict[str, Any]:
    """The alert JSON for a task- or DAG-level failure callback context (only ids and one error line)."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    dag = context.get("dag")
    task_id = getattr(ti, "task_id", None)
    map_index = getattr(ti, "map_index", None)
    logical = context.get("logical_date") or getattr(dag_run, "logical_date", None)
    return {
        "source": "flowsync",
        "event": "task_failed" if task_id else "dag_failed",
        "dag_id": getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None) or getattr(dag, "dag_id", None),
        "run_id": context.get("run_id") or getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None),
        "task_id": task_id,
        "map_index": map_index if isinstance(map_index, int) and map_index >= 0 else None,
        "try_number": getattr(ti, "try_number", None),
        "logical_date": logical.isoformat() if hasattr(logical, "isoformat") else logical,
        "error": _first_line(context.get("exception") or context.get("reason")),
    }


class FlowsyncFailureNotifier(BaseNotifier):
    """Post :func:`alert_payload` to the ``conn_id`` webhook; a logged no-op when it isn't configured.

    :param conn_id: HTTP connection of the webhook (default ``flowsync_alerts``).
    :param timeout: HTTP timeout in seconds.
    """

    template_fields = ()

    def __init__(self, conn_id: str = ALERT_CONN_ID, *, timeout: float = 10.0) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.timeout = float(timeout)

    def _target(self, conn: Any) -> tuple[str, dict[str, str]] | None:
        host = (conn.host or "").strip()
        if not host:
            return None
        url = host if "://" in host else f"{conn.schema or 'https'}://{host}"
        if conn.port and "://" not in host:
            url = f"{url}:{conn.port}"
        endpoint = str((conn.extra_dejson or {}).get("endpoint") or "")
        if endpoint:
            url = url.rstrip("/") + "/" + endpoint.lstrip("/")
        headers = {"Content-Type": "application/json", "User-Agent": "flowsync-alerts"}
        if conn.password:
            headers["Authorization"] = f"Bearer {conn.password}"
        return url, headers

    def _webhook(self) -> tuple[str, dict[str, str]] | None:
        try:
            conn = BaseHook.get_connection(self.conn_id)
        except AirflowNotFoundException:
            return None
        return self._target(conn)

    async def _awebhook(self) -> tuple[str, dict[str, str]] | None:
        try:
            conn = await BaseHook.aget_connection(self.conn_id)
        except AirflowNotFoundException:
            return None
        return self._target(conn)

    def _skip(self, payload: Mapping[str, Any]) -> None:
        self.log.info("No alert webhook connection %r configured; not sending the failure alert for %s/%s.",
                      self.conn_id, payload["dag_id"], payload["task_id"] or payload["run_id"])

    def _report(self, url: str, status: int | None, error: str | None) -> bool:
        url = _where(url)
        if error is not None:
            self.log.warning("Failure alert to %s not delivered (%s).", url, error)
            return False
        if status is not None and status >= 400:
            self.log.warning("Failure alert to %s rejected with HTTP %d.", url, status)
            return False
        self.log.info("Failure alert sent to %s (HTTP %s).", url, status)
        return True

    def _post(self, url: str, headers: dict[str, str], payload: Mapping[str, Any]) -> bool:
        request = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"), headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) only
                return self._report(url, response.status, None)
        except urllib.error.HTTPError as exc:
            return self._report(url, exc.code, None)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return self._report(url, None, type(reason).__name__)

    def send(self, context: Mapping[str, Any]) -> bool:
        """Post the alert; True when the webhook accepted it (False when skipped or failed)."""
        payload = alert_payload(context)
        target = self._webhook()
        if target is None:
            self._skip(payload)
            return False
        url, headers = target
        if urlsplit(url).scheme not in ("http", "https"):
            return self._report(url, None, "only http(s) webhooks are supported")
        return self._post(url, headers, payload)

    def notify(self, context: Any) -> None:
        self.send(context)

    async def async_notify(self, context: Any) -> None:
        payload = alert_payload(context)
        target = await self._awebhook()
        if target is None:
            self._skip(payload)
            return
        url, headers = target
        if urlsplit(url).scheme not in ("http", "https"):
            self._report(url, None, "only http(s) webhooks are supported")
            return
        await asyncio.to_thread(self._post, url, headers, payload)


def failure_alert(conn_id: str = ALERT_CONN_ID, *, timeout: float = 10.0) -> FlowsyncFailureNotifier:
    """An ``on_failure_callback`` for DAGs and tasks: ``DAG(..., on_failure_callback=failure_alert())``."""
    return FlowsyncFailureNotifier(conn_id, timeout=timeout)
