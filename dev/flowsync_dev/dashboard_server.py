"""A stand-in for the dashboard's snapshot processor API, for tests and the offline demo.

``POST /api/snapshots/process`` checks ``x-admin-job-secret`` (401 ``{"error":"Unauthorized"}``),
checks that ``<uploadId>/flows.csv``, ``campaigns.csv`` and ``subscribers.csv`` exist in the ingest
bucket of a real :class:`StorageBackend` (422 naming the missing ones), counts their data rows and,
given a Postgres DSN, marks the snapshot processed the way the real processor does
(``status='processed'``, ``last_email_date`` = window end, ``processed_at = now()``).
``GET /api/snapshots/{id}`` returns the snapshot's status (for a polling sensor).

CLI: ``python -m flowsync_dev.dashboard_server --port P --admin-secret S --bucket B
--storage-root DIR`` (local folder) or ``--storage-url URL --service-key K`` (Supabase-compatible),
prints ``FLOWSYNC_DASHBOARD_URL=http://127.0.0.1:P``.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import signal
import sys
import threading
import uuid
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from flowsync_dev.loopback import LoopbackServer
from flowsync_provider.storage.base import StorageBackend, StorageError

__all__ = ["DashboardTestServer", "REQUIRED_FILES", "main"]

REQUIRED_FILES = ("flows.csv", "campaigns.csv", "subscribers.csv")
_SNAPSHOT_COLUMNS = ("id", "account_id", "upload_id", "window_start", "window_end", "status",
                     "created_at", "processed_at", "last_email_date")


class _HttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error"))
        self.status, self.body = status, body


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "flowsync-dashboard-test/1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: avoid 40 ms ACK stalls
    app: DashboardTestServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        path = urlsplit(self.path).path
        secret = self.headers.get("x-admin-job-secret")
        call: dict[str, Any] = {"method": method, "path": path, "had_secret": bool(secret)}
        try:
            status, body = self.app._handle(method, path, raw, secret, call)
        except _HttpError as exc:
            status, body = exc.status, exc.body
        call["status"] = status
        call["response"] = body
        self.app._record(call)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")


class DashboardTestServer(LoopbackServer):
    """In-process dashboard look-alike on 127.0.0.1 (``port=0`` picks a free port).

    Without ``pg_dsn`` snapshot state is kept in memory (a processed snapshot is known from its
    first successful process call); with it, the ``snapshots`` table on that DSN's search_path
    is updated and read, so a sensor sees exactly what the database says.
    """

    def __init__(
        self,
        admin_secret: str,
        storage: StorageBackend,
        bucket: str,
        pg_dsn: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        required_files: tuple[str, ...] = REQUIRED_FILES,
    ) -> None:
        if not admin_secret:
            raise ValueError("admin_secret must be non-empty")
        self._secret = admin_secret
        self.storage = storage
        self.bucket = bucket
        self.pg_dsn = pg_dsn
        self.host, self.port = host, port
        self.required_files = tuple(required_files)
        self._lock = threading.Lock()
        self._calls: list[dict[str, Any]] = []
        self._faults: list[int] = []
        self._memory: dict[str, dict[str, Any]] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"DashboardTestServer(bucket={self.bucket!r}, storage={self.storage.describe()!r})"

    thread_name = "dashboard-test-server"

    def handler_class(self) -> type:
        return type("DashboardHandler", (_Handler,), {"app": self})

    # -- test helpers -------------------------------------------------------------------------
    def calls(self) -> list[dict[str, Any]]:
        """Every request: method, path, had_secret, body (parsed), status, response. Never the secret."""
        with self._lock:
            return [dict(c) for c in self._calls]

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        """Answer the next ``count`` authorized requests with ``status`` (to exercise retries)."""
        with self._lock:
            self._faults.extend([status] * count)

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._faults.clear()
            self._memory.clear()

    def _record(self, call: dict[str, Any]) -> None:
        with self._lock:
            self._calls.append(call)

    # -- request handling ---------------------------------------------------------------------
    def _handle(
        self, method: str, path: str, raw: bytes, secret: str | None, call: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        if not path.startswith("/api/snapshots"):
            raise _HttpError(404, {"error": "Not found"})
        if not secret or not hmac.compare_digest(secret.encode(), self._secret.encode()):
            raise _HttpError(401, {"error": "Unauthorized"})
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            raise _HttpError(fault, {"error": "Injected fault"})
        if method == "POST" and path == "/api/snapshots/process":
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise _HttpError(400, {"error": "Body must be JSON"}) from None
            call["body"] = body
            return 200, self._process(body)
        if method == "GET" and path.count("/") == 3 and path != "/api/snapshots/process":
            return 200, self._status(unquote(path.rsplit("/", 1)[1]))
        raise _HttpError(404, {"error": "Not found"})

    def _process(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _HttpError(400, {"error": "Body must be a JSON object"})
        snapshot_id, upload_id, account_id = body.get("snapshotId"), body.get("uploadId"), body.get("accountId")
        window = body.get("window") if isinstance(body.get("window"), dict) else {}
        missing_fields = [name for name, value in (("snapshotId", snapshot_id), ("uploadId", upload_id),
                                                   ("accountId", account_id), ("window.start", window.get("start")),
                                                   ("window.end", window.get("end"))) if not value]
        if missing_fields:
            raise _HttpError(400, {"error": f"Missing fields: {', '.join(missing_fields)}"})
        try:
            end = date.fromisoformat(str(window["end"])[:10])
            date.fromisoformat(str(window["start"])[:10])
        except ValueError:
            raise _HttpError(400, {"error": "window.start/window.end must be YYYY-MM-DD"}) from None
        keys = [f"{str(upload_id).strip('/')}/{name}" for name in self.required_files]
        rows: dict[str, int] = {}
        try:
            missing = [key for key in keys if not self.storage.exists(self.bucket, key)]
            if missing:
                raise _HttpError(422, {"error": f"Missing snapshot files in bucket '{self.bucket}'",
                                       "missing": missing})
            for key in keys:
                content = self.storage.download(self.bucket, key)
                lines = [line for line in content.decode("utf-8", "replace").splitlines() if line.strip()]
                if not lines:
                    raise _HttpError(422, {"error": f"Empty CSV (no header): {key}", "missing": []})
                rows[key.rsplit("/", 1)[1]] = len(lines) - 1
        except StorageError as exc:
            raise _HttpError(502, {"error": f"Storage error: {exc}"}) from None
        record = self._mark_processed(str(snapshot_id), str(account_id), str(upload_id), window, end)
        return {"ok": True, "snapshotId": snapshot_id, "rows": rows, "lastEmailDate": end.isoformat(),
                "status": record.get("status", "processed")}

    def _connect(self) -> Any:
        import psycopg2

        return psycopg2.connect(self.pg_dsn)

    def _mark_processed(
        self, snapshot_id: str, account_id: str, upload_id: str, window: dict[str, Any], end: date
    ) -> dict[str, Any]:
        if self.pg_dsn is None:
            record = {"id": snapshot_id, "account_id": account_id, "upload_id": upload_id,
                      "window_start": str(window["start"])[:10], "window_end": end.isoformat(),
                      "status": "processed", "processed_at": datetime.now(UTC).isoformat(),
                      "last_email_date": end.isoformat()}
            with self._lock:
                self._memory[snapshot_id] = record
            return record
        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:
                cur.execute(
                    "UPDATE snapshots SET status = 'processed', last_email_date = %s, processed_at = now() "
                    "WHERE id::text = %s RETURNING " + ", ".join(_SNAPSHOT_COLUMNS),
                    (end, snapshot_id),
                )
                row = cur.fetchone()
                names = [d[0] for d in cur.description]
        finally:
            conn.close()
        if row is None:
            raise _HttpError(404, {"error": f"Snapshot not found: {snapshot_id}"})
        return {k: _json_value(v) for k, v in zip(names, row, strict=True)}

    def _status(self, snapshot_id: str) -> dict[str, Any]:
        if self.pg_dsn is None:
            with self._lock:
                record = self._memory.get(snapshot_id)
        else:
            conn = self._connect()
            try:
                with conn, conn.cursor() as cur:
                    cur.execute("SELECT " + ", ".join(_SNAPSHOT_COLUMNS) + " FROM snapshots WHERE id::text = %s",
                                (snapshot_id,))
                    row = cur.fetchone()
                    names = [d[0] for d in cur.description]
            finally:
                conn.close()
            record = {k: _json_value(v) for k, v in zip(names, row, strict=True)} if row else None
        if record is None:
            raise _HttpError(404, {"error": f"Snapshot not found: {snapshot_id}"})
        return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Dashboard snapshot-processor test server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--admin-secret", default=os.environ.get("ADMIN_JOB_SECRET"))
    parser.add_argument("--bucket", default=os.environ.get("DATA_INGEST_BUCKET") or os.environ.get("PREAUTH_BUCKET"))
    parser.add_argument("--storage-root", help="LocalStorage root folder")
    parser.add_argument("--storage-url", help="Supabase-compatible URL (with --service-key)")
    parser.add_argument("--service-key", default=os.environ.get("SUPABASE_SERVICE_ROLE_KEY"))
    parser.add_argument("--pg-dsn", default=None, help="mark snapshots processed in this database")
    args = parser.parse_args(argv)
    if not args.admin_secret:
        parser.error("--admin-secret (or ADMIN_JOB_SECRET) is required")
    if not args.bucket:
        parser.error("--bucket (or DATA_INGEST_BUCKET / PREAUTH_BUCKET) is required")
    storage: StorageBackend
    if args.storage_url:
        if not args.service_key:
            parser.error("--service-key (or SUPABASE_SERVICE_ROLE_KEY) is required with --storage-url")
        from flowsync_provider.storage.supabase import SupabaseStorage

        storage = SupabaseStorage(args.storage_url, args.service_key)
    elif args.storage_root:
        from flowsync_provider.storage.local import LocalStorage

        storage = LocalStorage(args.storage_root)
    else:
        parser.error("give --storage-root or --storage-url")
    server = DashboardTestServer(args.admin_secret, storage, args.bucket, args.pg_dsn,
                                 host=args.host, port=args.port).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"FLOWSYNC_DASHBOARD_URL={server.url}", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
