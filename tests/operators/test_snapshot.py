"""Snapshot operators over the wire: CreateSnapshotOperator on the real PostgreSQL (a throw-away
schema), ProcessSnapshotOperator / WaitSnapshotProcessedOperator against the dashboard test server
whose file check reads the files the UploadOperator wrote, and whose status lives in that schema.

DSN: ``FLOWSYNC_TEST_PG_DSN`` or ``postgresql://postgres@127.0.0.1:5432/test``. PostgreSQL must be
running (``make test`` starts it): these tests fail, not skip, without it.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest
from airflow.sdk.exceptions import TaskDeferred

from flowsync_dev.dashboard_server import DashboardTestServer
from flowsync_provider.core.csvio import write_csv
from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.schemas import CAMPAIGNS_COLUMNS, FLOWS_COLUMNS, SUBSCRIBERS_COLUMNS
from flowsync_provider.core.windows import Window
from flowsync_provider.hooks.dashboard import UNAUTHORIZED, DashboardAuthError, DashboardRequestError
from flowsync_provider.operators.snapshot import (
    CreateSnapshotOperator,
    ProcessSnapshotOperator,
    SnapshotNotProcessed,
    WaitSnapshotProcessedOperator,
    snapshot_id_of,
    window_of,
)
from flowsync_provider.operators.upload import UploadOperator
from flowsync_provider.snapshots import SnapshotError, SnapshotStore, schema_sql
from flowsync_provider.storage import LocalStorage
from flowsync_provider.triggers.snapshot import SnapshotProcessedTrigger

PG_DSN = os.environ.get("FLOWSYNC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "admin_job_secret_snapshot_4c7d1e9a"
WINDOW = {"start": "2025-09-15", "end": "2025-09-17"}
BUCKET = "data-ingest"
RUN_ID = "scheduled__2025-09-18T01:00:00+00:00"


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[str]:
    try:
        admin = psycopg2.connect(PG_DSN, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL not reachable at {PG_DSN} (start it, or set FLOWSYNC_TEST_PG_DSN): {exc}")
    admin.autocommit = True
    schema = f"flowsync_op_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture(scope="module")
def schema_dsn(pg_schema: str) -> str:
    dsn = psycopg2.extensions.make_dsn(PG_DSN, options=f"-c search_path={pg_schema}")
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute(schema_sql())  # the dashboard owns the table; the tests stand in for it
    conn.close()
    return dsn


def conn_json(schema: str) -> str:
    """The Airflow connection for ``PG_DSN`` with the throw-away schema as search_path."""
    parts = psycopg2.extensions.parse_dsn(PG_DSN)
    fields: dict[str, Any] = {"conn_type": "postgres", "host": parts.get("host", "127.0.0.1"),
                              "port": int(parts.get("port", 5432)), "login": parts.get("user", "postgres"),
                              "schema": parts.get("dbname", "test"),
                              "extra": {"options": f"-c search_path={schema}"}}
    if parts.get("password"):
        fields["password"] = parts["password"]
    return json.dumps(fields)


@pytest.fixture
def store(schema_dsn: str) -> SnapshotStore:
    return SnapshotStore(lambda: psycopg2.connect(schema_dsn))


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path, pg_schema) -> None:
    for name in ("ADMIN_JOB_SECRET", "FLOWSYNC_DASHBOARD_URL", "AIRFLOW_CONN_FLOWSYNC_DASHBOARD",
                 "AIRFLOW_CONN_SUPABASE_DEFAULT", "NEXT_PUBLIC_SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY",
                 "DATA_INGEST_BUCKET", "PREAUTH_BUCKET", "FLOWSYNC_STORAGE_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLOWSYNC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIRFLOW_CONN_FLOWSYNC_SNAPSHOTS_DB", conn_json(pg_schema))


def context() -> dict:
    return {"dag": SimpleNamespace(dag_id="klaviyo_snapshot_nightly"), "run_id": RUN_ID,
            "ti": SimpleNamespace(task_id="t", try_number=1)}


def dashboard_conn(monkeypatch, url: str, password: str | None = SECRET) -> None:
    fields = {"conn_type": "http", "host": url}
    if password is not None:
        fields["password"] = password
    monkeypatch.setenv("AIRFLOW_CONN_FLOWSYNC_DASHBOARD", json.dumps(fields))


def upload_snapshot_files(tmp_path: Path, account: str = "acc_1") -> dict[str, Any]:
    """Write the three CSVs and upload them with the real UploadOperator (local backend)."""
    folder = tmp_path / "run"
    write_csv(folder / "flows.csv", FLOWS_COLUMNS, [
        {"Day": d, "Flow ID": "F1", "Flow Message ID": "M1", "Delivered": 3} for d in ("2025-09-15", "2025-09-16")])
    write_csv(folder / "campaigns.csv", CAMPAIGNS_COLUMNS, [{"Campaign ID": "C1", "Delivered": 9}])
    write_csv(folder / "subscribers.csv", SUBSCRIBERS_COLUMNS, [{"Profile ID": "P1"}, {"Profile ID": "P2"}])
    files = {name: str(folder / name) for name in ("flows.csv", "campaigns.csv", "subscribers.csv")}
    return UploadOperator(task_id="upload", files=files, account_id=account).execute(context())


@pytest.fixture
def dashboard(tmp_path, schema_dsn) -> Iterator[DashboardTestServer]:
    storage = LocalStorage(tmp_path / "home" / "storage")
    storage.create_bucket(BUCKET)
    server = DashboardTestServer(SECRET, storage, BUCKET, schema_dsn).start()
    yield server
    server.stop()


class AsyncProcessorDashboard(DashboardTestServer):
    """A dashboard whose processor works in the background: the POST only marks 'processing'."""

    def _mark_processed(self, snapshot_id, account_id, upload_id, window, end):  # noqa: ANN001, ANN202
        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:
                cur.execute("UPDATE snapshots SET status = 'processing' WHERE id::text = %s RETURNING status",
                            (snapshot_id,))
                row = cur.fetchone()
        finally:
            conn.close()
        return {"status": row[0]}


def logged(caplog, capsys) -> str:
    captured = capsys.readouterr()
    return caplog.text + captured.out + captured.err


def run_trigger(trigger: SnapshotProcessedTrigger) -> list[dict]:
    async def collect() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


# ---------------------------------------------------------------- create

def test_create_is_idempotent_per_account_and_upload(store) -> None:
    op = CreateSnapshotOperator(task_id="create", account_id="acc_1", upload_id="u-create", window=WINDOW)
    first = op.execute(context())
    second = op.execute(context())
    assert first["created"] is True and second["created"] is False
    assert first["id"] == second["id"] and uuid.UUID(first["id"])
    assert first["status"] == second["status"] == "created"
    row = store.get(first["id"])
    assert (row["account_id"], row["upload_id"], row["window_start"], row["window_end"]) == (
        "acc_1", "u-create", "2025-09-15", "2025-09-17")
    other = CreateSnapshotOperator(task_id="create", account_id="acc_2", upload_id="u-create",
                                   window=WINDOW).execute(context())
    assert other["id"] != first["id"] and other["created"] is True


def test_create_accepts_templated_window_shapes(store) -> None:
    for i, window in enumerate((json.dumps(WINDOW), str(WINDOW), Window(date(2025, 9, 15), date(2025, 9, 17)),
                                {"window": WINDOW, "chunks": []})):
        result = CreateSnapshotOperator(task_id="c", account_id="acc_w", upload_id=f"u-w{i}",
                                        window=window).execute(context())
        assert store.get(result["id"])["window_end"] == "2025-09-17"
    with pytest.raises(ParamError, match="window must have a start and an end"):
        CreateSnapshotOperator(task_id="c", account_id="a", upload_id="u", window={"start": "2025-09-01"}
                               ).execute(context())
    with pytest.raises(ParamError, match="is after window.end"):
        window_of({"start": "2025-09-20", "end": "2025-09-01"})
    with pytest.raises(ParamError, match="upload_id is required"):
        CreateSnapshotOperator(task_id="c", account_id="a", upload_id="None", window=WINDOW).execute(context())


def test_ensure_schema_creates_the_table_in_an_empty_schema(monkeypatch) -> None:
    admin = psycopg2.connect(PG_DSN)
    admin.autocommit = True
    schema = f"flowsync_op_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
    try:
        monkeypatch.setenv("AIRFLOW_CONN_FLOWSYNC_SNAPSHOTS_DB", conn_json(schema))
        plain = CreateSnapshotOperator(task_id="c", account_id="a", upload_id="u", window=WINDOW)
        with pytest.raises(SnapshotError, match="No snapshots table on connection 'flowsync_snapshots_db'"):
            plain.execute(context())
        made = CreateSnapshotOperator(task_id="c", account_id="a", upload_id="u", window=WINDOW,
                                      ensure_schema=True).execute(context())
        with admin.cursor() as cur:
            cur.execute(f'SELECT id::text, status FROM "{schema}".snapshots')
            assert cur.fetchall() == [(made["id"], "created")]
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


# ---------------------------------------------------------------- process

def test_upload_create_process_end_to_end(tmp_path, dashboard, store, monkeypatch, caplog, capsys) -> None:
    dashboard_conn(monkeypatch, dashboard.url)
    upload = upload_snapshot_files(tmp_path)
    created = CreateSnapshotOperator(task_id="create", account_id="acc_1", upload_id=upload["upload_id"],
                                     window=WINDOW).execute(context())
    op = ProcessSnapshotOperator(task_id="process", snapshot_id=created, upload_id=upload["upload_id"],
                                 account_id="acc_1", window=WINDOW, wait_for_completion=True)
    result = op.execute(context())  # the processor answered "processed": no deferral needed
    assert result["status"] == "processed" and result["snapshot_id"] == created["id"]
    assert result["last_email_date"] == "2025-09-17"
    assert result["rows"] == {"flows.csv": 2, "campaigns.csv": 1, "subscribers.csv": 2}
    row = store.get(created["id"])
    assert (row["status"], row["last_email_date"]) == ("processed", "2025-09-17") and row["processed_at"]
    (call,) = dashboard.calls()
    assert call["had_secret"] and call["body"]["uploadId"] == upload["upload_id"]
    assert call["body"]["window"] == WINDOW and call["body"]["snapshotId"] == created["id"]
    assert SECRET not in json.dumps(result) and SECRET not in logged(caplog, capsys)
    assert "x-admin-job-secret" not in ProcessSnapshotOperator.template_fields


def test_process_without_the_secret_is_the_runbook_401(tmp_path, dashboard, monkeypatch, caplog, capsys) -> None:
    dashboard_conn(monkeypatch, dashboard.url, password=None)
    op = ProcessSnapshotOperator(task_id="process", snapshot_id=str(uuid.uuid4()), upload_id="u1",
                                 account_id="acc_1", window=WINDOW)
    with pytest.raises(DashboardAuthError) as err:
        op.execute(context())
    assert str(err.value) == UNAUTHORIZED and dashboard.calls() == []  # refused before any request
    dashboard_conn(monkeypatch, dashboard.url, password="wrong-secret-value")
    with pytest.raises(DashboardAuthError, match="Unauthorized: admin secret missing/invalid"):
        op.execute(context())
    assert dashboard.calls()[-1]["status"] == 401
    assert "wrong-secret-value" not in logged(caplog, capsys)


def test_process_names_missing_files(tmp_path, dashboard, store, monkeypatch) -> None:
    dashboard_conn(monkeypatch, dashboard.url)
    created = store.create_or_get("acc_1", "u-missing", "2025-09-15", "2025-09-17")
    op = ProcessSnapshotOperator(task_id="process", snapshot_id=created["id"], upload_id="u-missing",
                                 account_id="acc_1", window=WINDOW)
    with pytest.raises(DashboardRequestError, match="u-missing/flows.csv"):
        op.execute(context())
    assert store.get(created["id"])["status"] == "created"


def test_wait_for_completion_defers_and_resumes_when_processed(tmp_path, schema_dsn, store, monkeypatch,
                                                               caplog, capsys) -> None:
    server = AsyncProcessorDashboard(SECRET, LocalStorage(tmp_path / "home" / "storage"), BUCKET, schema_dsn).start()
    try:
        dashboard_conn(monkeypatch, server.url)
        upload = upload_snapshot_files(tmp_path)
        created = store.create_or_get("acc_1", upload["upload_id"], "2025-09-15", "2025-09-17")
        store.mark(created["id"], "processed", last_email_date="2025-09-10")  # an earlier run's result
        op = ProcessSnapshotOperator(task_id="process", snapshot_id=created["id"], upload_id=upload["upload_id"],
                                     account_id="acc_1", window=WINDOW, wait_for_completion=True,
                                     poll_interval=0.05, timeout=60)
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context())
        trigger = deferred.value.trigger
        assert isinstance(trigger, SnapshotProcessedTrigger) and deferred.value.method_name == "execute_complete"
        classpath, kwargs = trigger.serialize()
        assert SECRET not in json.dumps(kwargs) and kwargs["base_url"] == server.url
        assert kwargs["processed_after"] is not None
        assert store.get(created["id"])["status"] == "processing"

        def processor() -> None:  # the background processor finishes once the trigger has looked once
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(c["method"] == "GET" for c in server.calls()):
                time.sleep(0.02)
            store.mark(created["id"], "processed", last_email_date="2025-09-17")

        worker = threading.Thread(target=processor)
        worker.start()
        (event,) = run_trigger(SnapshotProcessedTrigger(**kwargs))
        worker.join()
        assert event["status"] == "processed" and event["polls"] >= 2
        result = op.execute_complete(context(), event, **deferred.value.kwargs)
        assert result["status"] == "processed" and result["last_email_date"] == "2025-09-17"
        assert result["upload_id"] == upload["upload_id"]
        assert SECRET not in json.dumps(result) and SECRET not in logged(caplog, capsys)
    finally:
        server.stop()


def test_wait_operator_times_out_with_a_clear_message(dashboard, store, monkeypatch) -> None:
    dashboard_conn(monkeypatch, dashboard.url)
    created = store.create_or_get("acc_1", "u-never", "2025-09-15", "2025-09-17")
    op = WaitSnapshotProcessedOperator(task_id="wait", snapshot_id=created, poll_interval=0.05, timeout=0.3)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    assert deferred.value.timeout is not None
    (event,) = run_trigger(deferred.value.trigger)
    assert event["status"] == "timeout"
    with pytest.raises(SnapshotNotProcessed, match=f"Snapshot {created['id']} was not processed before the "
                                                   "deadline .*last seen: status 'created'"):
        op.execute_complete(context(), event, **deferred.value.kwargs)
    with pytest.raises(SnapshotNotProcessed, match="processing failed"):
        store.mark(created["id"], "failed")
        (failed,) = run_trigger(deferred.value.trigger)
        op.execute_complete(context(), failed, **deferred.value.kwargs)


def test_snapshot_id_shapes() -> None:
    sid = str(uuid.uuid4())
    assert snapshot_id_of(sid) == snapshot_id_of({"id": sid, "created": True}) == sid
    assert snapshot_id_of(str({"id": sid, "created": False, "status": "created"})) == sid
    with pytest.raises(ParamError, match="snapshot_id is required"):
        snapshot_id_of(None)
