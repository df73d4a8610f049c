"""Nightly and history snapshot DAGs end to end over real wire: Klaviyo sandbox, Supabase-Storage-compatible
server through the real supabase client, the test dashboard, and the real PostgreSQL for snapshots."""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg2
import pytest
from test_flow_sync import expected_csv

from flowsync_dev.dashboard_server import DashboardTestServer
from flowsync_dev.sandbox import data as truth
from flowsync_dev.storage_server import StorageTestServer
from flowsync_provider.snapshots import schema_sql
from flowsync_provider.storage import SupabaseStorage

PG_DSN = os.environ.get("FLOWSYNC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SERVICE_KEY = "service-role-key-for-tests-0123456789"
ADMIN_SECRET = "admin-job-secret-for-tests-9876543210"
BUCKET = "data-ingest"
FILES = ("campaigns.csv", "flows.csv", "subscribers.csv")


@pytest.fixture(scope="module")
def pg_schema():
    try:
        admin = psycopg2.connect(PG_DSN)
    except psycopg2.OperationalError as exc:  # make test starts PostgreSQL first: never skip silently
        pytest.fail(f"PostgreSQL at {PG_DSN} is not reachable ({exc}); run `make services` or set FLOWSYNC_TEST_PG_DSN")
    admin.autocommit = True
    schema = f"flowsync_e2e_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
    dsn = psycopg2.extensions.make_dsn(PG_DSN, options=f"-c search_path={schema}")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(schema_sql())  # the dashboard owns the table; the test stands in for it
    try:
        yield schema, dsn
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture
def live(sandbox_factory, flowsync_env, monkeypatch, pg_schema):
    """A complete live set-up: sandbox, storage server, dashboard, snapshots DB; env/connections set."""
    schema, dsn = pg_schema
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM snapshots")
    sandbox = sandbox_factory(seed=7, time_scale=20)
    storage_server = StorageTestServer(SERVICE_KEY, buckets=[BUCKET]).start()
    dashboard = DashboardTestServer(ADMIN_SECRET, SupabaseStorage(storage_server.url, SERVICE_KEY), BUCKET,
                                    pg_dsn=dsn).start()
    home = flowsync_env(sandbox)
    pg = psycopg2.extensions.parse_dsn(PG_DSN)
    monkeypatch.setenv("AIRFLOW_CONN_SUPABASE_DEFAULT", json.dumps(
        {"conn_type": "supabase", "host": storage_server.url, "password": SERVICE_KEY}))
    monkeypatch.setenv("DATA_INGEST_BUCKET", BUCKET)
    monkeypatch.setenv("AIRFLOW_CONN_FLOWSYNC_DASHBOARD", json.dumps(
        {"conn_type": "http", "host": dashboard.url, "password": ADMIN_SECRET}))
    monkeypatch.setenv("AIRFLOW_CONN_FLOWSYNC_SNAPSHOTS_DB", json.dumps(
        {"conn_type": "postgres", "host": pg.get("host", "127.0.0.1"), "port": int(pg.get("port", 5432)),
         "login": pg.get("user", "postgres"), "schema": pg.get("dbname", "test"),
         "extra": {"options": f"-c search_path={schema}"}}))
    for name in ("AIRFLOW_VAR_FLOWSYNC_ACCOUNTS", "ADMIN_JOB_SECRET", "FLOWSYNC_STORAGE_BACKEND", "PREAUTH_BUCKET"):
        monkeypatch.delenv(name, raising=False)

    class Live:
        pass

    env = Live()
    env.sandbox, env.storage, env.dashboard, env.home, env.dsn = sandbox, storage_server, dashboard, home, dsn
    try:
        yield env
    finally:
        dashboard.stop()
        storage_server.stop()


def snapshots(dsn: str) -> list[dict]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT account_id, upload_id, window_start, window_end, status, last_email_date FROM snapshots")
        cols = [c.name for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def bucket_objects(server: StorageTestServer) -> dict[str, bytes]:
    return {k.split("/", 1)[1]: v for k, v in server.objects().items() if k.startswith(BUCKET + "/")}


def logical_for(anchor_local_day: date) -> str:
    """07:00 UTC of the day after the anchor day T (02:00/03:00 in New York): T = the day before."""
    return datetime.combine(anchor_local_day + timedelta(days=1), datetime.min.time()).replace(
        hour=7, tzinfo=ZoneInfo("UTC")).isoformat()


def test_nightly_uploads_three_files_creates_one_snapshot_and_reruns_idempotently(live, run_dag):
    acct = live.sandbox.account
    t_day = acct.yesterday - timedelta(days=3)
    logical = logical_for(t_day)
    results = [run_dag("klaviyo_snapshot_nightly", {"waitForProcessing": True}, logical_date=logical)
               for _ in range(2)]
    for result in results:
        assert result.ok, result.output[-4000:]
    stored = bucket_objects(live.storage)
    objects = sorted(stored)
    assert len(objects) == 3, objects  # the re-run overwrote the same three objects
    upload_id = objects[0].split("/")[0]
    assert [o.split("/", 1)[1] for o in objects] == list(FILES)
    rows = snapshots(live.dsn)
    assert len(rows) == 1  # the re-run reused the snapshot
    snap = rows[0]
    assert snap["upload_id"] == upload_id and snap["account_id"] == acct.account_id
    assert (snap["window_start"], snap["window_end"]) == (t_day - timedelta(days=1), t_day + timedelta(days=1))
    assert snap["status"] == "processed" and snap["last_email_date"] == t_day + timedelta(days=1)
    # flows.csv in the bucket is the seeded truth for the ±1 window (whole account: no caps)
    flows = stored[f"{upload_id}/flows.csv"].decode()
    assert flows == expected_csv(acct, t_day - timedelta(days=1), t_day + timedelta(days=1),
                                 limit_flows=500, limit_messages=2000)
    subscribers = list(csv.DictReader(io.StringIO(stored[f"{upload_id}/subscribers.csv"].decode())))
    assert len(subscribers) == acct.n_profiles
    # local PII is gone after the upload; the flows summary is kept
    assert not list(live.home.rglob("subscribers.csv"))
    # one series call + one campaign-values call per run, zero 429s, the secret nowhere
    reporting = [r["operation"] for r in live.sandbox.requests() if r["bucket"] == "reporting"]
    assert reporting.count("query_flow_series") == 2  # one series call per nightly run
    assert reporting.count("query_campaign_values") <= 2  # none when no campaign was sent in the window
    assert not [r for r in live.sandbox.requests() if r["status"] == 429]
    for result in results:
        for secret in (ADMIN_SECRET, SERVICE_KEY, live.sandbox.api_key):
            assert secret not in result.output
            assert secret not in json.dumps([x[3] for x in result.xcoms], default=str)
    processed = [c for c in live.dashboard.calls() if c["path"].endswith("/process")]
    assert [c["status"] for c in processed] == [200, 200]
    assert all(c["had_secret"] for c in processed)


def test_nightly_maps_over_accounts_from_the_variable(live, sandbox_factory, monkeypatch, run_dag):
    beta = sandbox_factory(seed=8, time_scale=20)
    monkeypatch.setenv("AIRFLOW_CONN_KLAVIYO_BETA", json.dumps(
        {"conn_type": "klaviyo", "host": beta.url, "password": beta.api_key}))
    monkeypatch.setenv("AIRFLOW_VAR_FLOWSYNC_ACCOUNTS", json.dumps(
        [{"accountId": "acme", "klaviyoConnId": "klaviyo_default"},
         {"accountId": "beta", "klaviyoConnId": "klaviyo_beta"}]))
    result = run_dag("klaviyo_snapshot_nightly", {}, logical_date=logical_for(live.sandbox.account.yesterday))
    assert result.ok, result.output[-4000:]
    rows = snapshots(live.dsn)
    assert sorted(r["account_id"] for r in rows) == ["acme", "beta"]
    prefixes = {o.split("/")[0] for o in bucket_objects(live.storage)}
    assert len(prefixes) == 2 and all(p.startswith(("acme-", "beta-")) for p in prefixes)
    assert [r for r in beta.requests() if r["bucket"] == "reporting"]  # beta's own connection was used
    assert [k for k in result.tasks if k.startswith("account.plan")] == ["account.plan[0]", "account.plan[1]"]


def test_nightly_live_gating_fails_before_any_klaviyo_call(live, monkeypatch, run_dag):
    monkeypatch.setenv("AIRFLOW_CONN_FLOWSYNC_DASHBOARD", json.dumps({"conn_type": "http", "host": live.dashboard.url}))
    result = run_dag("klaviyo_snapshot_nightly", {}, logical_date=logical_for(live.sandbox.account.yesterday))
    assert not result.ok
    assert "admin secret" in result.output.lower()
    assert live.sandbox.requests() == []
    assert bucket_objects(live.storage) == {}


def test_history_start_before_klaviyo_existed_costs_no_call(live, run_dag):
    result = run_dag("klaviyo_snapshot_history", {"start": "2009-01-01", "end": "2012-03-01", "force": True})
    assert not result.ok
    assert "start 2009-01-01 is before 2012-01-01, when Klaviyo began: nothing older exists; use a later start." \
        in result.output
    assert live.sandbox.requests() == []
    assert bucket_objects(live.storage) == {} and snapshots(live.dsn) == []


def test_history_plans_few_calls_and_refuses_over_quota(live, run_dag):
    acct = live.sandbox.account
    end = acct.yesterday - timedelta(days=1)
    start = end - timedelta(days=69)  # 70 days: 2 series chunks + 1 campaign-values chunk
    refused = run_dag("klaviyo_snapshot_history", {"start": start.isoformat(), "end": end.isoformat(),
                                                   "maxShare": 0.001})
    assert not refused.ok
    assert "force" in refused.output and "refused" in refused.output.lower()
    assert not [r for r in live.sandbox.requests() if r["bucket"] == "reporting"]

    result = run_dag("klaviyo_snapshot_history", {"start": start.isoformat(), "end": end.isoformat()})
    assert result.ok, result.output[-4000:]
    reporting = [r["operation"] for r in live.sandbox.requests() if r["bucket"] == "reporting"]
    assert sorted(reporting) == ["query_campaign_values", "query_flow_series", "query_flow_series"]
    objects = bucket_objects(live.storage)
    flows_key = next(k for k in objects if k.endswith("/flows.csv"))
    assert objects[flows_key].decode() == expected_csv(acct, start, end, limit_flows=500, limit_messages=2000)
    assert {k.split("/", 1)[1] for k in objects} == set(FILES)
    rows = snapshots(live.dsn)
    assert len(rows) == 1 and (rows[0]["window_start"], rows[0]["window_end"]) == (start, end)
    assert "reporting calls" in result.output
    assert truth.TIMEZONE
