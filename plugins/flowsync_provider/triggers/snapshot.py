"""Wait for the dashboard to finish processing a snapshot, in the triggerer, over HTTP.

Polls ``GET /api/snapshots/{id}`` with ``httpx.AsyncClient`` (no blocking database driver inside the
triggerer's event loop) until the snapshot is processed, failed, or the deadline passes, then fires
exactly one event. The admin secret is read from the connection (or ``ADMIN_JOB_SECRET``) inside
``run()``: trigger kwargs are stored in the metadata database, so the secret never goes there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from flowsync_provider import settings

__all__ = ["SnapshotProcessedTrigger", "is_processed"]

SECRET_ENV = "ADMIN_JOB_SECRET"
SECRET_HEADER = "x-admin-job-secret"
UNAUTHORIZED = (
    "Unauthorized: admin secret missing/invalid (set the flowsync_dashboard connection password / "
    "ADMIN_JOB_SECRET)."
)


def _instant(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def is_processed(record: dict[str, Any], processed_after: float | None = None) -> bool:
    """Done when the processor says so: ``status == "processed"`` or ``last_email_date`` set.

    With ``processed_after`` (epoch seconds) a ``processed_at`` older than that is an earlier run's
    result (the snapshot row is reused by re-runs), so it does not count yet.
    """
    done = record.get("status") == "processed" or (
        bool(record.get("last_email_date")) and record.get("status") not in ("failed", "processing", "created")
    )
    if not done:
        return False
    if processed_after is None:
        return True
    stamp = _instant(record.get("processed_at"))
    return stamp is not None and stamp >= processed_after


class SnapshotProcessedTrigger(BaseTrigger):
    """Fire once when snapshot ``snapshot_id`` is processed (or failed, or ``timeout_at`` passed).

    :param base_url: the dashboard's base URL (not secret; resolved by the operator from the connection).
    :param snapshot_id: the snapshot to watch.
    :param conn_id: connection whose password is the admin secret (read at run time).
    :param poll_interval: seconds between polls.
    :param timeout_at: epoch seconds after which a ``timeout`` event fires.
    :param processed_after: epoch seconds; an older ``processed_at`` does not count (see :func:`is_processed`).
    :param request_timeout: per-request HTTP timeout in seconds.

    Event payload: ``{"status": "processed"|"failed"|"timeout", "snapshot_id", "message", "polls",
    "snapshot": {...the last status record...} | None}``.
    """

    def __init__(
        self,
        base_url: str,
        snapshot_id: str,
        conn_id: str = "flowsync_dashboard",
        poll_interval: float = 30.0,
        timeout_at: float | None = None,
        processed_after: float | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        super().__init__()
        self.base_url = str(base_url).rstrip("/")
        self.snapshot_id = str(snapshot_id)
        self.conn_id = conn_id
        self.poll_interval = max(0.01, float(poll_interval))
        self.timeout_at = float(timeout_at) if timeout_at is not None else time.time() + 3600.0
        self.processed_after = None if processed_after is None else float(processed_after)
        self.request_timeout = float(request_timeout)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "base_url": self.base_url,
                "snapshot_id": self.snapshot_id,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "timeout_at": self.timeout_at,
                "processed_after": self.processed_after,
                "request_timeout": self.request_timeout,
            },
        )

    async def _secret(self) -> str:
        """The admin secret: connection password, else ``ADMIN_JOB_SECRET`` (never stored on self)."""
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        password = ""
        try:
            conn = await BaseHook.aget_connection(self.conn_id)
            password = (conn.password or "").strip()
        except AirflowNotFoundException:
            self.log.info("Connection %r not defined; using %s.", self.conn_id, SECRET_ENV)
        return password or (settings.admin_job_secret() or "").strip()

    def _event(self, status: str, message: str, polls: int, record: dict[str, Any] | None) -> TriggerEvent:
        return TriggerEvent({"status": status, "snapshot_id": self.snapshot_id, "message": message,
                             "polls": polls, "snapshot": record})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        secret = await self._secret()
        if not secret:
            yield self._event("failed", UNAUTHORIZED, 0, None)
            return
        headers = {SECRET_HEADER: secret, "Accept": "application/json"}
        path = f"/api/snapshots/{quote(self.snapshot_id, safe='')}"
        polls, last_problem, record = 0, "", None
        async with httpx.AsyncClient(base_url=self.base_url, timeout=self.request_timeout) as client:
            while True:
                polls += 1
                try:
                    response = await client.get(path, headers=headers)
                except httpx.HTTPError as exc:
                    last_problem = f"dashboard unreachable at {self.base_url} ({type(exc).__name__})"
                    self.log.warning("Snapshot %s poll %d: %s; retrying.", self.snapshot_id, polls, last_problem)
                else:
                    status = response.status_code
                    if status in (401, 403):
                        yield self._event("failed", UNAUTHORIZED, polls, None)
                        return
                    if status == 404:
                        yield self._event("failed", f"Snapshot {self.snapshot_id} not found on the dashboard "
                                          f"({self.base_url}).", polls, None)
                        return
                    if status >= 400:
                        last_problem = f"dashboard answered {status}"
                        self.log.warning("Snapshot %s poll %d: %s; retrying.", self.snapshot_id, polls, last_problem)
                    else:
                        try:
                            body = response.json()
                        except ValueError:
                            body = None
                        if not isinstance(body, dict):
                            last_problem = f"dashboard answered {status} without a JSON object"
                        else:
                            record = body
                            if record.get("status") == "failed":
                                yield self._event("failed", f"Snapshot {self.snapshot_id} processing failed on "
                                                  "the dashboard (status=failed).", polls, record)
                                return
                            if is_processed(record, self.processed_after):
                                yield self._event("processed", f"Snapshot {self.snapshot_id} processed "
                                                  f"(last_email_date {record.get('last_email_date')}).",
                                                  polls, record)
                                return
                            last_problem = f"status {record.get('status')!r}"
                            self.log.info("Snapshot %s poll %d: %s; waiting.", self.snapshot_id, polls,
                                          last_problem)
                remaining = self.timeout_at - time.time()
                if remaining <= 0:
                    yield self._event(
                        "timeout",
                        f"Snapshot {self.snapshot_id} was not processed before the deadline "
                        f"({polls} polls; last seen: {last_problem or 'nothing'}).",
                        polls, record,
                    )
                    return
                await asyncio.sleep(min(self.poll_interval, remaining))
