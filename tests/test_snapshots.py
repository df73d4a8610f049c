"""SnapshotStore against the real PostgreSQL (a throw-away schema per module, dropped afterwards).

DSN: ``FLOWSYNC_TEST_PG_DSN`` or ``postgresql://postgres@127.0.0.1:5432/test``.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import date

import psycopg2
import psycopg2.extensions
import pytest

from flowsync_provider.snapshots import SnapshotError, SnapshotNotFound, SnapshotStore, schema_sql

PG_DSN = os.environ.get("FLOWSYNC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[str]:
    try:
        admin = psycopg2.connect(PG_DSN, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL not reachable (run `make services` or set FLOWSYNC_TEST_PG_DSN): {exc}")
    admin.autocommit = True
    schema = f"flowsync_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


class _Factory:
    """A connection factory that remembers what it handed out (to check the store closes them)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.handed: list[psycopg2.extensions.connection] = []

    def __call__(self) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(self.dsn)
        self.handed.append(conn)
        return conn


@pytest.fixture(scope="module")
def schema_dsn(pg_schema: str) -> str:
    return psycopg2.extensions.make_dsn(PG_DSN, options=f"-c search_path={pg_schema}")


@pytest.fixture
def factory(schema_dsn: str) -> _Factory:
    return _Factory(schema_dsn)


@pytest.fixture
def store(factory: _Factory) -> SnapshotStore:
    snapshots = SnapshotStore(factory)
    snapshots.ensure_schema()
    return snapshots


def test_schema_is_idempotent_and_lands_in_the_given_schema(store, pg_schema, factory) -> None:
    store.ensure_schema()
    conn = factory()
    with conn.cursor() as cur:
        cur.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'snapshots' "
                    "AND table_schema = %s", (pg_schema,))
        assert cur.fetchall() == [(pg_schema,)]
        cur.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = "
                    "'snapshots_account_upload_key' AND connamespace = %s::regnamespace", (pg_schema,))
        assert cur.fetchone()[0] == "UNIQUE (account_id, upload_id)"
    conn.close()
    assert "CREATE TABLE IF NOT EXISTS snapshots" in schema_sql()


def test_create_or_get_is_idempotent(store) -> None:
    first = store.create_or_get("acc_canary_1", "2025-09-17T01-00-00Z", date(2025, 9, 10), date(2025, 9, 16))
    again = store.create_or_get("acc_canary_1", "2025-09-17T01-00-00Z", "2025-09-10", "2025-09-16")
    assert first["created"] is True and again["created"] is False
    assert first["id"] == again["id"] and uuid.UUID(first["id"])
    assert first["status"] == again["status"] == "created"
    json.dumps(first)  # crosses XCom


def test_rerun_updates_the_window_but_keeps_status(store) -> None:
    snap = store.create_or_get("acc_w", "up-1", "2025-09-01", "2025-09-05")
    store.mark(snap["id"], "processed", last_email_date="2025-09-05")
    rerun = store.create_or_get("acc_w", "up-1", "2025-09-02", "2025-09-06")
    assert rerun == {"id": snap["id"], "created": False, "status": "processed"}
    row = store.get(snap["id"])
    assert (row["window_start"], row["window_end"]) == ("2025-09-02", "2025-09-06")


def test_distinct_per_account_and_per_upload(store) -> None:
    a = store.create_or_get("acc_a", "up-x", None, None)
    b = store.create_or_get("acc_b", "up-x", None, None)
    c = store.create_or_get("acc_a", "up-y", None, None)
    assert len({a["id"], b["id"], c["id"]}) == 3
    assert a["created"] and b["created"] and c["created"]


def test_concurrent_reruns_create_exactly_one_snapshot(store) -> None:
    barrier = threading.Barrier(6)
    results: list[dict] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait(timeout=30)
        result = store.create_or_get("acc_race", "up-race", "2025-01-01", "2025-01-02")
        with lock:
            results.append(result)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 6
    assert len({r["id"] for r in results}) == 1
    assert sum(r["created"] for r in results) == 1


def test_get_and_mark(store) -> None:
    snap = store.create_or_get("acc_m", "up-m", "2025-09-01", "2025-09-03")
    row = store.get(snap["id"])
    assert row["account_id"] == "acc_m" and row["status"] == "created"
    assert row["processed_at"] is None and row["last_email_date"] is None
    processing = store.mark(snap["id"], "processing")
    assert processing["status"] == "processing" and processing["processed_at"] is None
    done = store.mark(snap["id"], "processed", last_email_date=date(2025, 9, 3))
    assert done["status"] == "processed" and done["processed_at"] is not None
    assert done["last_email_date"] == "2025-09-03"
    assert store.get(snap["id"]) == done
    json.dumps(done)


def test_missing_and_invalid_ids(store) -> None:
    assert store.get(str(uuid.uuid4())) is None
    assert store.get("not-a-uuid") is None
    with pytest.raises(SnapshotNotFound, match="not found"):
        store.mark(str(uuid.uuid4()), "failed")
    with pytest.raises(SnapshotNotFound):
        store.mark("42", "failed")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", "up", None, None), "account_id is required"),
        (("acc", "  ", None, None), "upload_id is required"),
        (("acc", "up", "2025-09-05", "2025-09-01"), "after window_end"),
        (("acc", "up", "09/01/2025", None), "window_start must be a date"),
    ],
)
def test_bad_input_is_refused_before_the_database(store, factory, args, match) -> None:
    before = len(factory.handed)
    with pytest.raises(SnapshotError, match=match):
        store.create_or_get(*args)
    assert len(factory.handed) == before


def test_bad_status_is_refused(store) -> None:
    snap = store.create_or_get("acc_s", "up-s", None, None)
    with pytest.raises(SnapshotError, match="status must be one of created, processing, processed, failed"):
        store.mark(snap["id"], "done")


def test_every_connection_is_closed_even_on_errors(schema_dsn, factory) -> None:
    store = SnapshotStore(factory)
    store.ensure_schema()
    store.create_or_get("acc_c", "up-c", None, None)
    other = _Factory(psycopg2.extensions.make_dsn(schema_dsn, options="-c search_path=pg_temp"))
    with pytest.raises(psycopg2.errors.UndefinedTable):
        SnapshotStore(other).create_or_get("acc_c", "up-c", None, None)
    assert all(conn.closed for conn in factory.handed + other.handed)


def test_works_with_a_postgres_hook_connection(monkeypatch, pg_schema) -> None:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    params = psycopg2.extensions.parse_dsn(PG_DSN)
    monkeypatch.setenv("AIRFLOW_CONN_FLOWSYNC_TEST_DB", json.dumps({
        "conn_type": "postgres", "host": params.get("host", "127.0.0.1"), "port": int(params.get("port", 5432)),
        "login": params.get("user", "postgres"), "password": params.get("password"),
        "schema": params.get("dbname", "test"), "extra": {"options": f"-c search_path={pg_schema}"},
    }))
    store = SnapshotStore(lambda: PostgresHook(postgres_conn_id="flowsync_test_db").get_conn())
    store.ensure_schema()
    first = store.create_or_get("acc_hook", "up-hook", "2025-09-01", "2025-09-02")
    assert store.create_or_get("acc_hook", "up-hook", "2025-09-01", "2025-09-02")["id"] == first["id"]
    assert store.get(first["id"])["upload_id"] == "up-hook"
