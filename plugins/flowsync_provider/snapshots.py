"""The snapshot row contract (``sql/snapshots.sql``) and an idempotent store over any DB-API connection.

No Airflow import: callers pass a connection factory, e.g.
``SnapshotStore(lambda: PostgresHook(postgres_conn_id="flowsync_db").get_conn())`` or
``SnapshotStore(lambda: psycopg2.connect(dsn))``. Each operation takes one connection from the
factory, commits (or rolls back) and closes it, so a store is safe to keep for a whole task.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from importlib import resources
from typing import Any

from flowsync_provider.core.errors import FlowsyncError

__all__ = ["STATUSES", "SnapshotError", "SnapshotNotFound", "SnapshotStore", "schema_sql"]

STATUSES = ("created", "processing", "processed", "failed")
COLUMNS = (
    "id", "account_id", "upload_id", "window_start", "window_end", "status",
    "created_at", "processed_at", "last_email_date",
)


class SnapshotError(FlowsyncError):
    """A snapshot operation failed (bad input or a database error), with what to fix."""


class SnapshotNotFound(SnapshotError, LookupError):
    """No snapshot with that id."""

    retryable = True  # as before: the row may not be visible yet


def schema_sql() -> str:
    """The DDL of the contract (``CREATE TABLE IF NOT EXISTS snapshots ...``)."""
    return resources.files("flowsync_provider").joinpath("sql/snapshots.sql").read_text(encoding="utf-8")


def _iso(value: Any) -> Any:
    """JSON-able values for XCom: ids and dates as strings."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _as_date(value: date | str | None, name: str) -> date | None:
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.date()
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise SnapshotError(f"{name} must be a date (YYYY-MM-DD), got {value!r}.") from None


def _require_text(value: Any, name: str) -> str:
    text = str(value).strip() if value is not None else ""
    if not text:
        raise SnapshotError(f"{name} is required (a non-empty string).")
    return text


class SnapshotStore:
    """Create-or-get, read and mark snapshot rows (table ``snapshots`` on the connection's search_path)."""

    def __init__(self, conn_factory: Callable[[], Any]) -> None:
        self._conn_factory = conn_factory

    def _run(self, sql: str, params: tuple[Any, ...] = (), *, fetch: bool = True) -> list[dict[str, Any]]:
        conn = self._conn_factory()
        try:
            cur = conn.cursor()
            try:
                if params:
                    cur.execute(sql, params)
                else:
                    cur.execute(sql)
                rows: list[dict[str, Any]] = []
                if fetch and cur.description is not None:
                    names = [d[0] for d in cur.description]
                    rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            finally:
                cur.close()
            conn.commit()
            return rows
        except Exception:
            conn.rollback()
            raise
        finally:
            conn.close()

    def ensure_schema(self) -> None:
        """Apply ``sql/snapshots.sql`` (idempotent)."""
        self._run(schema_sql(), fetch=False)

    def create_or_get(
        self,
        account_id: str,
        upload_id: str,
        window_start: date | str | None,
        window_end: date | str | None,
    ) -> dict[str, Any]:
        """The snapshot for ``(account_id, upload_id)``: inserted once, found on every re-run.

        A re-run updates the window (the latest plan wins) but never the status, and returns
        ``{"id": str, "created": bool, "status": str}``.
        """
        account = _require_text(account_id, "account_id")
        upload = _require_text(upload_id, "upload_id")
        start, end = _as_date(window_start, "window_start"), _as_date(window_end, "window_end")
        if start is not None and end is not None and start > end:
            raise SnapshotError(f"window_start {start} is after window_end {end}.")
        rows = self._run(
            "INSERT INTO snapshots (account_id, upload_id, window_start, window_end) "
            "VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (account_id, upload_id) DO UPDATE "
            "SET window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end "
            "RETURNING id, status, (xmax = 0) AS created",
            (account, upload, start, end),
        )
        row = rows[0]
        return {"id": str(row["id"]), "created": bool(row["created"]), "status": row["status"]}

    def get(self, snapshot_id: str) -> dict[str, Any] | None:
        """The row as a JSON-able dict, or ``None``."""
        try:
            key = self._id(snapshot_id)
        except SnapshotNotFound:
            return None
        rows = self._run(f"SELECT {', '.join(COLUMNS)} FROM snapshots WHERE id = %s", (key,))
        return {k: _iso(v) for k, v in rows[0].items()} if rows else None

    def mark(
        self, snapshot_id: str, status: str, *, last_email_date: date | str | None = None
    ) -> dict[str, Any]:
        """Set the status (``processed`` also stamps ``processed_at``); returns the updated row."""
        if status not in STATUSES:
            raise SnapshotError(f"status must be one of {', '.join(STATUSES)}, got {status!r}.")
        last = _as_date(last_email_date, "last_email_date")
        rows = self._run(
            "UPDATE snapshots SET status = %s, "
            "processed_at = CASE WHEN %s = 'processed' THEN now() ELSE processed_at END, "
            "last_email_date = COALESCE(%s, last_email_date) "
            f"WHERE id = %s RETURNING {', '.join(COLUMNS)}",
            (status, status, last, self._id(snapshot_id)),
        )
        if not rows:
            raise SnapshotNotFound(f"Snapshot {snapshot_id} not found.")
        return {k: _iso(v) for k, v in rows[0].items()}

    @staticmethod
    def _id(snapshot_id: Any) -> str:
        try:
            return str(uuid.UUID(str(snapshot_id)))
        except ValueError:
            raise SnapshotNotFound(f"Snapshot {snapshot_id!r} not found (ids are UUIDs).") from None
