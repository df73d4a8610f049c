"""SnapshotProcessedTrigger: its async run() polls the dashboard test server over loopback (status in
a throw-away PostgreSQL schema) and yields exactly one event; the secret stays out of its kwargs.

DSN: ``FLOWSYNC_TEST_PG_DSN`` or ``postgresql://postgres@127.0.0.1:5432/test`` (fails, not skips,
when PostgreSQL is down: ``make test`` starts it).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg2
import psycopg2.extensions
import pytest
from airflow.sdk.module_loading import import_string

from flowsync_dev.dashboard_server import DashboardTestServer
from flowsync_provider.snapshots import SnapshotStore, schema_sql
from flowsync_provider.storage import LocalStorage
from flowsync_provider.triggers.snapshot import UNAUTHORIZED, SnapshotProcessedTrigger, is_processed

PG_DSN = os.environ.get("FLOWSYNC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "admin_job_secret_trigger_91b2c3d4"


@pytest.fixture(scope="module")
def schema_dsn() -> Iterator[str]:
    try:
        admin = psycopg2.connect(PG_DSN, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL not reachable at {PG_DSN} (start it, or set FLOWSYNC_TEST_PG_DSN): {exc}")
    admin.autocommit = True
    schema = f"flowsync_trg_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
    dsn = psycopg2.extensions.make_dsn(PG_DSN, options=f"-c search_path={schema}")
    try:
        SnapshotStore(lambda: psycopg2.connect(dsn)).ensure_schema()
        assert "snapshots" in schema_sql()
        yield dsn
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture(scope="module")
def store(schema_dsn) -> SnapshotStore:
    return SnapshotStore(lambda: psycopg2.connect(schema_dsn))


@pytest.fixture(scope="module")
def server(tmp_path_factory, schema_dsn) -> Iterator[DashboardTestServer]:
    storage = LocalStorage(tmp_path_factory.mktemp("storage"))
    srv = DashboardTestServer(SECRET, storage, "ingest", schema_dsn).start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _env(monkeypatch, server) -> None:
    server.reset()
    monkeypatch.delenv("ADMIN_JOB_SECRET", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_FLOWSYNC_DASHBOARD",
                       json.dumps({"conn_type": "http", "host": server.url, "password": SECRET}))


def snapshot(store: SnapshotStore) -> str:
    return store.create_or_get("acc_1", f"u-{uuid.uuid4().hex[:8]}", "2025-09-15", "2025-09-17")["id"]


def trigger(
    server: DashboardTestServer, snapshot_id: str, *, timeout: float = 30.0, **kwargs
) -> SnapshotProcessedTrigger:
    return SnapshotProcessedTrigger(base_url=server.url, snapshot_id=snapshot_id, poll_interval=0.05,
                                    timeout_at=time.time() + timeout, **kwargs)


def run(trig: SnapshotProcessedTrigger) -> list[dict]:
    async def collect() -> list[dict]:
        return [event.payload async for event in trig.run()]

    return asyncio.run(collect())


def logged(caplog, capsys) -> str:
    captured = capsys.readouterr()
    return caplog.text + captured.out + captured.err


def test_serialize_is_primitive_importable_and_secret_free(server) -> None:
    trig = trigger(server, "abc", processed_after=123.5)
    classpath, kwargs = trig.serialize()
    assert classpath == "flowsync_provider.triggers.snapshot.SnapshotProcessedTrigger"
    assert import_string(classpath) is SnapshotProcessedTrigger
    assert json.loads(json.dumps(kwargs)) == kwargs  # primitives only
    assert set(kwargs) == {"base_url", "snapshot_id", "conn_id", "poll_interval", "timeout_at",
                           "processed_after", "request_timeout"}
    assert SECRET not in json.dumps(kwargs) and SECRET not in repr(vars(trig))
    assert SnapshotProcessedTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_already_processed_fires_on_the_first_poll(server, store, caplog, capsys) -> None:
    sid = snapshot(store)
    store.mark(sid, "processed", last_email_date="2025-09-17")
    events = run(trigger(server, sid))
    assert len(events) == 1
    (event,) = events
    assert event["status"] == "processed" and event["polls"] == 1 and event["snapshot_id"] == sid
    assert event["snapshot"]["last_email_date"] == "2025-09-17"
    gets = [c for c in server.calls() if c["method"] == "GET"]
    assert len(gets) == 1 and gets[0]["had_secret"] and gets[0]["path"] == f"/api/snapshots/{sid}"
    assert SECRET not in json.dumps(event) and SECRET not in logged(caplog, capsys)


def test_polls_until_the_processor_is_done(server, store) -> None:
    sid = snapshot(store)

    def processor() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len([c for c in server.calls() if c["method"] == "GET"]) < 3:
            time.sleep(0.02)
        store.mark(sid, "processing")
        store.mark(sid, "processed", last_email_date="2025-09-17")

    worker = threading.Thread(target=processor)
    worker.start()
    (event,) = run(trigger(server, sid))
    worker.join()
    assert event["status"] == "processed" and event["polls"] >= 4
    assert event["snapshot"]["status"] == "processed"


def test_an_earlier_runs_processed_at_does_not_count(server, store) -> None:
    sid = snapshot(store)
    store.mark(sid, "processed", last_email_date="2025-09-10")
    later = time.time() + 3600  # "processing started after this": the existing stamp is older
    (event,) = run(trigger(server, sid, timeout=0.3, processed_after=later))
    assert event["status"] == "timeout" and "last seen: status 'processed'" in event["message"]
    assert is_processed({"status": "processed", "processed_at": datetime.now(UTC).isoformat()}, time.time() - 60)
    assert not is_processed({"status": "processed", "processed_at": None}, time.time() - 60)
    assert is_processed({"status": "done", "last_email_date": "2025-09-17"})
    assert not is_processed({"status": "created", "last_email_date": "2025-09-17"})


def test_timeout_fires_one_event_with_the_last_status(server, store) -> None:
    sid = snapshot(store)
    events = run(trigger(server, sid, timeout=0.3))
    assert len(events) == 1 and events[0]["status"] == "timeout"
    assert events[0]["polls"] >= 1 and "not processed before the deadline" in events[0]["message"]
    assert "last seen: status 'created'" in events[0]["message"]


def test_failed_and_unknown_snapshots_fail_at_once(server, store) -> None:
    sid = snapshot(store)
    store.mark(sid, "failed")
    (failed,) = run(trigger(server, sid))
    assert failed["status"] == "failed" and "processing failed" in failed["message"] and failed["polls"] == 1
    missing = str(uuid.uuid4())
    (gone,) = run(trigger(server, missing))
    assert gone["status"] == "failed" and f"Snapshot {missing} not found" in gone["message"]


def test_wrong_or_missing_secret_is_the_runbook_401(server, store, monkeypatch, caplog, capsys) -> None:
    sid = snapshot(store)
    monkeypatch.setenv("AIRFLOW_CONN_FLOWSYNC_DASHBOARD",
                       json.dumps({"conn_type": "http", "host": server.url, "password": "not-the-secret-1"}))
    (wrong,) = run(trigger(server, sid))
    assert wrong["status"] == "failed" and wrong["message"] == UNAUTHORIZED and wrong["polls"] == 1
    assert server.calls()[-1]["status"] == 401
    monkeypatch.setenv("AIRFLOW_CONN_FLOWSYNC_DASHBOARD", json.dumps({"conn_type": "http", "host": server.url}))
    before = len(server.calls())
    (missing,) = run(trigger(server, sid))
    assert missing == {"status": "failed", "snapshot_id": sid, "message": UNAUTHORIZED, "polls": 0,
                       "snapshot": None}
    assert len(server.calls()) == before  # nothing sent without a secret
    assert "not-the-secret-1" not in logged(caplog, capsys)


def test_secret_from_env_when_the_connection_has_none(server, store, monkeypatch) -> None:
    sid = snapshot(store)
    store.mark(sid, "processed", last_email_date="2025-09-17")
    monkeypatch.delenv("AIRFLOW_CONN_FLOWSYNC_DASHBOARD")
    monkeypatch.setenv("ADMIN_JOB_SECRET", SECRET)
    (event,) = run(trigger(server, sid))
    assert event["status"] == "processed"


def test_transient_errors_are_polled_through(server, store) -> None:
    sid = snapshot(store)
    store.mark(sid, "processed", last_email_date="2025-09-17")
    server.fail_next(2, status=503)
    (event,) = run(trigger(server, sid))
    assert event["status"] == "processed" and event["polls"] == 3
    assert [c["status"] for c in server.calls()] == [503, 503, 200]


def test_unreachable_dashboard_times_out_naming_it(store) -> None:
    sid = snapshot(store)
    trig = SnapshotProcessedTrigger(base_url="http://127.0.0.1:9", snapshot_id=sid, poll_interval=0.05,
                                    timeout_at=time.time() + 0.3, request_timeout=2)
    (event,) = run(trig)
    assert event["status"] == "timeout" and "dashboard unreachable at http://127.0.0.1:9" in event["message"]
