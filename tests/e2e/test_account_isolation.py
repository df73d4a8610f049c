"""Account isolation and the one uploadId rule, over the real wire.

Two accounts whose ids sanitise alike (``acme/eu`` and ``acme_eu``) once shared a local run folder: one
uploaded the other's subscribers.csv and the cleanup then broke the second. Each account's three files
in the bucket must be that account's own data, with or without an explicit uploadId. And an uploadId
that upload would refuse must fail the plan, before any Klaviyo call.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from test_campaign_sync import expected_csv as expected_campaigns
from test_flow_sync import expected_csv as expected_flows
from test_snapshot_dags import (  # noqa: F401 - fixtures
    FILES,
    bucket_objects,
    live,
    logical_for,
    pg_schema,
    snapshots,
)

from flowsync_dev.sandbox import data as truth
from flowsync_provider.core.ids import UPLOAD_ID_RULE, safe_segment

ACCOUNTS = ("acme/eu", "acme_eu")


def _profiles(acct: truth.SandboxAccount) -> set[tuple[str, str]]:
    return {(p["id"], p["attributes"]["email"]) for p in acct.profiles}


def _subscribers(body: bytes) -> set[tuple[str, str]]:
    return {(r["Profile ID"], r["Email"]) for r in csv.DictReader(io.StringIO(body.decode()))}


@pytest.fixture
def two_accounts(live, sandbox_factory, monkeypatch):  # noqa: F811 - the imported fixture
    """``acme/eu`` on klaviyo_default (seed 7), ``acme_eu`` on klaviyo_b (seed 11): different data."""
    other = sandbox_factory(seed=11, time_scale=20)
    monkeypatch.setenv("AIRFLOW_CONN_KLAVIYO_B", json.dumps(
        {"conn_type": "klaviyo", "host": other.url, "password": other.api_key}))
    monkeypatch.setenv("AIRFLOW_VAR_FLOWSYNC_ACCOUNTS", json.dumps(
        [{"accountId": "acme/eu", "klaviyoConnId": "klaviyo_default"},
         {"accountId": "acme_eu", "klaviyoConnId": "klaviyo_b"}]))
    sandboxes = {"acme/eu": live.sandbox, "acme_eu": other}
    a, b = (sandboxes[x].account for x in ACCOUNTS)
    assert _profiles(a).isdisjoint(_profiles(b))  # the seeds really differ
    return sandboxes


@pytest.mark.parametrize("conf", [{}, {"uploadId": "nightly-e2e"}], ids=["derived", "explicit-uploadId"])
def test_two_accounts_with_alike_ids_each_upload_their_own_data(live, two_accounts, run_dag, conf):  # noqa: F811
    anchor = live.sandbox.account.yesterday - timedelta(days=2)
    result = run_dag("klaviyo_snapshot_nightly", conf, logical_date=logical_for(anchor))
    assert result.ok, result.output[-4000:]
    assert [v for k, v in result.tasks.items() if k.startswith("account.")] == ["success"] * 14, result.tasks
    rows = {r["account_id"]: r for r in snapshots(live.dsn)}
    assert sorted(rows) == sorted(ACCOUNTS) and len(snapshots(live.dsn)) == 2
    stored = bucket_objects(live.storage)
    prefixes = {r["upload_id"] for r in rows.values()}
    assert len(prefixes) == 2 and {k.split("/")[0] for k in stored} == prefixes
    if conf:  # several accounts: <uploadId>-<account segment>, each distinct
        assert {rows[a]["upload_id"] for a in ACCOUNTS} == {f"nightly-e2e-{safe_segment(a)}" for a in ACCOUNTS}
    for account_id, sandbox in two_accounts.items():
        acct, snap = sandbox.account, rows[account_id]
        assert snap["status"] == "processed", snap
        files = {name: stored[f"{snap['upload_id']}/{name}"] for name in FILES}
        start, end = snap["window_start"], snap["window_end"]
        assert files["flows.csv"].decode() == expected_flows(acct, start, end, limit_flows=500, limit_messages=2000)
        assert files["campaigns.csv"].decode() == expected_campaigns(acct, start, end)
        assert _subscribers(files["subscribers.csv"]) == _profiles(acct), account_id
    assert not list(live.home.rglob("subscribers.csv"))  # both accounts' local PII is gone


@pytest.fixture
def sandbox(sandbox_factory):
    return sandbox_factory(seed=7, time_scale=20)


@pytest.mark.parametrize("upload_id", ["a..b", "abc\n"])
def test_a_bad_upload_id_fails_the_plan_before_any_klaviyo_call(sandbox, flowsync_env, run_dag, upload_id):
    home = flowsync_env(sandbox, FLOWSYNC_STORAGE_BACKEND="local")
    result = run_dag("klaviyo_flow_sync", {"mode": "live", "format": "csv", "accountId": "acc_canary_1",
                                           "uploadId": upload_id})
    assert not result.ok
    assert result.tasks["plan"] == "failed", result.tasks
    assert f"uploadId {upload_id!r} is not a valid object folder: use {UPLOAD_ID_RULE}." in result.output
    assert not [r for r in sandbox.requests() if r["bucket"] == "reporting"]
    assert sandbox.requests() == []  # nothing at all was fetched
    assert not [p for p in (home / "storage").rglob("*") if p.is_file()]  # and nothing uploaded
