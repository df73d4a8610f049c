"""DashboardHook against the dashboard test server over loopback, whose file check reads a real
storage backend (the Supabase-compatible test server via supabase-py, or a local folder), and
whose snapshot status can live in the real PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import socket
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import psycopg2
import psycopg2.extensions
import pytest

from flowsync_dev.dashboard_server import DashboardTestServer
from flowsync_dev.storage_server import StorageTestServer
from flowsync_provider.hooks.dashboard import (
    SECRET_ENV,
    UNAUTHORIZED,
    URL_ENV,
    DashboardAuthError,
    DashboardConfigError,
    DashboardHook,
    DashboardRequestError,
    DashboardServerError,
)
from flowsync_provider.snapshots import SnapshotStore
from flowsync_provider.storage import LocalStorage, SupabaseStorage

SECRET = "admin_job_secret_7b1e93c0d2"
WRONG_SECRET = "admin_wrong_secret_55aa66bb"
SERVICE_KEY = "sb_dash_service_key_0e0e0e0e"
BUCKET = "ingest"
PG_DSN = os.environ.get("FLOWSYNC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
WINDOW = {"start": "2025-09-10", "end": "2025-09-16"}
FILES = ("flows.csv", "campaigns.csv", "subscribers.csv")


@pytest.fixture(scope="module")
def storage_server() -> Iterator[StorageTestServer]:
    server = StorageTestServer(SERVICE_KEY, [BUCKET]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def storage(storage_server) -> Iterator[SupabaseStorage]:
    backend = SupabaseStorage(storage_server.url, SERVICE_KEY, timeout=10)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def dashboard(storage) -> Iterator[DashboardTestServer]:
    server = DashboardTestServer(SECRET, storage, BUCKET).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean(monkeypatch, dashboard, storage_server) -> None:
    dashboard.reset()
    storage_server.reset()
    for name in (SECRET_ENV, URL_ENV, "AIRFLOW_CONN_FLOWSYNC_DASHBOARD"):
        monkeypatch.delenv(name, raising=False)


def _connect(monkeypatch, url: str, password: str | None = SECRET, **extra_fields) -> None:
    fields = {"conn_type": "http", "host": url, **extra_fields}
    if password is not None:
        fields["password"] = password
    monkeypatch.setenv("AIRFLOW_CONN_FLOWSYNC_DASHBOARD", json.dumps(fields))


def _upload_all(storage, upload_id: str, files=FILES) -> None:
    for name in files:
        storage.upload(BUCKET, f"{upload_id}/{name}", b"Header A,Header B\n1,2\n3,4\n")


def _hook(**kwargs) -> DashboardHook:
    return DashboardHook(retry_wait=0.01, timeout=10, **kwargs)


def _logged(caplog, capsys) -> str:
    captured = capsys.readouterr()
    return caplog.text + captured.out + captured.err


def test_process_succeeds_when_the_three_files_exist(monkeypatch, dashboard, storage) -> None:
    _connect(monkeypatch, dashboard.url)
    _upload_all(storage, "2025-09-17T01-00-00Z")
    result = _hook().process_snapshot("snap-1", "2025-09-17T01-00-00Z", "acc_canary_1", WINDOW)
    assert result["ok"] is True and result["snapshotId"] == "snap-1"
    assert result["rows"] == {"flows.csv": 2, "campaigns.csv": 2, "subscribers.csv": 2}
    assert result["lastEmailDate"] == "2025-09-16"
    [call] = dashboard.calls()
    assert call["had_secret"] is True and call["status"] == 200
    assert call["body"] == {"snapshotId": "snap-1", "uploadId": "2025-09-17T01-00-00Z",
                            "accountId": "acc_canary_1", "window": WINDOW}
    assert SECRET not in json.dumps(dashboard.calls())


def test_status_after_processing(monkeypatch, dashboard, storage) -> None:
    _connect(monkeypatch, dashboard.url)
    _upload_all(storage, "up-status")
    hook = _hook()
    hook.process_snapshot(7, "up-status", "acc_1", (date(2025, 9, 1), date(2025, 9, 2)))
    assert dashboard.calls()[0]["body"]["snapshotId"] == 7  # ints stay ints
    status = hook.snapshot_status(7)
    assert status["status"] == "processed" and status["last_email_date"] == "2025-09-02"
    with pytest.raises(DashboardRequestError) as info:
        hook.snapshot_status("never-processed")
    assert info.value.status == 404


def test_missing_files_is_422_naming_them_and_not_retried(monkeypatch, dashboard, storage) -> None:
    _connect(monkeypatch, dashboard.url)
    _upload_all(storage, "up-partial", files=("flows.csv", "campaigns.csv"))
    with pytest.raises(DashboardRequestError) as info:
        _hook().process_snapshot("snap-2", "up-partial", "acc_1", WINDOW)
    assert info.value.status == 422
    assert "up-partial/subscribers.csv" in str(info.value)
    assert "up-partial/flows.csv" not in str(info.value)
    assert len(dashboard.calls()) == 1


def test_wrong_secret_is_401_with_the_runbook_message_and_no_secret(monkeypatch, dashboard, caplog,
                                                                     capsys) -> None:
    caplog.set_level(logging.DEBUG)
    _connect(monkeypatch, dashboard.url, password=WRONG_SECRET)
    with pytest.raises(DashboardAuthError) as info:
        _hook().process_snapshot("snap-3", "up", "acc_1", WINDOW)
    assert str(info.value) == UNAUTHORIZED
    assert info.value.status == 401
    text = "".join(traceback.format_exception(info.value))
    logged = _logged(caplog, capsys)
    for secret in (WRONG_SECRET, SECRET):
        assert secret not in text and secret not in logged
    assert "Triggering snapshot processing" in logged  # the hook logged, so the absence above is real
    assert [c["status"] for c in dashboard.calls()] == [401]  # auth errors are not retried


def test_missing_secret_fails_before_any_request(monkeypatch, dashboard) -> None:
    _connect(monkeypatch, dashboard.url, password=None)
    with pytest.raises(DashboardAuthError, match="ADMIN_JOB_SECRET"):
        _hook().process_snapshot("snap-4", "up", "acc_1", WINDOW)
    assert dashboard.calls() == []


def test_admin_secret_env_fallback(monkeypatch, dashboard, storage) -> None:
    _connect(monkeypatch, dashboard.url, password=None)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    _upload_all(storage, "up-env")
    assert _hook().process_snapshot("snap-5", "up-env", "acc_1", WINDOW)["ok"] is True


def test_dashboard_url_env_when_connection_absent(monkeypatch, dashboard, storage) -> None:
    monkeypatch.setenv(URL_ENV, dashboard.url)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    _upload_all(storage, "up-url-env")
    assert _hook().process_snapshot("snap-6", "up-url-env", "acc_1", WINDOW)["ok"] is True


def test_nothing_configured_names_the_fix() -> None:
    with pytest.raises(DashboardConfigError, match=r"'flowsync_dashboard' connection.*FLOWSYNC_DASHBOARD_URL"):
        _hook().process_snapshot("snap", "up", "acc", WINDOW)


def test_login_on_the_connection_is_never_sent_as_basic_auth(monkeypatch, dashboard, storage) -> None:
    _connect(monkeypatch, dashboard.url, login="admin")
    _upload_all(storage, "up-login")
    hook = _hook()
    assert hook.get_conn().auth is None
    assert hook.process_snapshot("snap-7", "up-login", "acc_1", WINDOW)["ok"] is True


def test_5xx_is_retried(monkeypatch, dashboard, storage) -> None:
    _connect(monkeypatch, dashboard.url)
    _upload_all(storage, "up-retry")
    dashboard.fail_next(2, status=503)
    assert _hook(max_attempts=3).process_snapshot("snap-8", "up-retry", "acc_1", WINDOW)["ok"] is True
    assert [c["status"] for c in dashboard.calls()] == [503, 503, 200]


def test_persistent_5xx_gives_up(monkeypatch, dashboard) -> None:
    _connect(monkeypatch, dashboard.url)
    dashboard.fail_next(5, status=502)
    with pytest.raises(DashboardServerError, match=r"Dashboard error 502.*after 2 attempts"):
        _hook(max_attempts=2).process_snapshot("snap-9", "up", "acc_1", WINDOW)
    assert len(dashboard.calls()) == 2


def test_unreachable_dashboard(monkeypatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _connect(monkeypatch, f"http://127.0.0.1:{port}")
    with pytest.raises(DashboardServerError, match=r"unreachable.*after 2 attempts") as info:
        _hook(max_attempts=2).process_snapshot("snap", "up", "acc", WINDOW)
    assert SECRET not in "".join(traceback.format_exception(info.value))


@pytest.mark.parametrize("window", [None, {"start": "2025-09-01"}, ("2025-09-01",)])
def test_bad_window_is_refused_before_any_request(monkeypatch, dashboard, window) -> None:
    _connect(monkeypatch, dashboard.url)
    with pytest.raises(DashboardConfigError, match="window must have a start and an end"):
        _hook().process_snapshot("snap", "up", "acc", window)
    assert dashboard.calls() == []


def test_window_objects_with_to_dict_or_attributes(monkeypatch, dashboard, storage) -> None:
    @dataclass
    class Span:
        start: date
        end: date

    class WithToDict:
        def to_dict(self) -> dict:
            return {"start": "2025-08-01", "end": "2025-08-31"}

    _connect(monkeypatch, dashboard.url)
    _upload_all(storage, "up-w")
    hook = _hook()
    hook.process_snapshot("a", "up-w", "acc", Span(date(2025, 8, 1), date(2025, 8, 2)))
    hook.process_snapshot("b", "up-w", "acc", WithToDict())
    windows = [c["body"]["window"] for c in dashboard.calls()]
    assert windows == [{"start": "2025-08-01", "end": "2025-08-02"}, {"start": "2025-08-01", "end": "2025-08-31"}]


def test_test_connection(monkeypatch, dashboard) -> None:
    _connect(monkeypatch, dashboard.url)
    assert _hook().test_connection() == (True, "Dashboard reachable and the admin secret was accepted.")
    _connect(monkeypatch, dashboard.url, password=WRONG_SECRET)
    ok, message = _hook().test_connection()
    assert ok is False and message == UNAUTHORIZED


def test_dashboard_over_a_local_folder(monkeypatch, tmp_path) -> None:
    local = LocalStorage(tmp_path / "buckets")
    for name in FILES:
        local.upload(BUCKET, f"up-local/{name}", b"h\n1\n")
    with DashboardTestServer(SECRET, local, BUCKET) as server:
        _connect(monkeypatch, server.url)
        assert _hook().process_snapshot("s", "up-local", "acc", WINDOW)["rows"]["flows.csv"] == 1
        local.upload(BUCKET, "up-empty/flows.csv", b"h\n")
        with pytest.raises(DashboardRequestError, match="up-empty/campaigns.csv, up-empty/subscribers.csv"):
            _hook().process_snapshot("s", "up-empty", "acc", WINDOW)


@pytest.fixture
def pg_schema_dsn() -> Iterator[str]:
    try:
        admin = psycopg2.connect(PG_DSN, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL not reachable (run `make services` or set FLOWSYNC_TEST_PG_DSN): {exc}")
    admin.autocommit = True
    schema = f"flowsync_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield psycopg2.extensions.make_dsn(PG_DSN, options=f"-c search_path={schema}")
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def test_processing_marks_the_snapshot_in_postgres(monkeypatch, storage, pg_schema_dsn) -> None:
    store = SnapshotStore(lambda: psycopg2.connect(pg_schema_dsn))
    store.ensure_schema()
    snap = store.create_or_get("acc_pg", "up-pg", WINDOW["start"], WINDOW["end"])
    _upload_all(storage, "up-pg")
    with DashboardTestServer(SECRET, storage, BUCKET, pg_dsn=pg_schema_dsn) as server:
        _connect(monkeypatch, server.url)
        hook = _hook()
        assert hook.snapshot_status(snap["id"])["status"] == "created"
        result = hook.process_snapshot(snap["id"], "up-pg", "acc_pg", WINDOW)
        assert result["status"] == "processed"
        row = store.get(snap["id"])
        assert row["status"] == "processed" and row["last_email_date"] == "2025-09-16"
        assert row["processed_at"] is not None
        assert hook.snapshot_status(snap["id"]) == row
        with pytest.raises(DashboardRequestError) as info:
            hook.process_snapshot(str(uuid.uuid4()), "up-pg", "acc_pg", WINDOW)
        assert info.value.status == 404


@pytest.mark.timeout(60)
def test_dashboard_cli_over_a_local_folder(monkeypatch, tmp_path) -> None:
    import subprocess
    import sys

    root = tmp_path / "buckets"
    local = LocalStorage(root)
    for name in FILES:
        local.upload(BUCKET, f"up-cli/{name}", b"h\n1\n2\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowsync_dev.dashboard_server", "--port", "0",
         "--admin-secret", SECRET, "--bucket", BUCKET, "--storage-root", str(root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("FLOWSYNC_DASHBOARD_URL=http://127.0.0.1:"), line
        monkeypatch.setenv(URL_ENV, line.split("=", 1)[1])
        monkeypatch.setenv(SECRET_ENV, SECRET)
        assert _hook().process_snapshot("s-cli", "up-cli", "acc", WINDOW)["rows"]["subscribers.csv"] == 2
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        stderr = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert SECRET not in stderr
