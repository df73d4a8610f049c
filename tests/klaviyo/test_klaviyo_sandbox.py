"""The client over loopback against the Klaviyo sandbox server (real HTTP, real rate limits).

Rate-limit assertions read the sandbox's request log (status per request), never elapsed time.
Time compression 20: the reporting bucket allows 1 call per 50 ms and 2 per 3 s.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import uuid
from datetime import timedelta

import pytest

from flowsync_dev.sandbox import SandboxServer
from flowsync_dev.sandbox.faults import FaultInjector
from flowsync_provider.klaviyo import (
    KlaviyoAuthError,
    KlaviyoClient,
    KlaviyoRateLimitExceeded,
    KlaviyoRequestError,
    KlaviyoServerError,
)

SCALE = 20
STATS = ["delivered", "opens_unique", "conversion_value"]


@pytest.fixture()
def sandbox(klaviyo_sandbox):
    """The session sandbox (seed 7, time scale 20) with a clean request log and rate-limit state."""
    assert klaviyo_sandbox.time_scale == SCALE
    klaviyo_sandbox.reset()
    return klaviyo_sandbox


@pytest.fixture()
def client_for(tmp_path):
    made: list[KlaviyoClient] = []

    def factory(srv: SandboxServer, key: str | None = None, **kwargs) -> KlaviyoClient:
        kwargs.setdefault("limiter_url", f"sqlite:///{tmp_path / 'limiter.db'}")
        kwargs.setdefault("time_scale", SCALE)
        client = KlaviyoClient(key or srv.api_key, base_url=srv.url, **kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


def timeframe(srv: SandboxServer, days: int) -> tuple[str, str]:
    end = srv.account.yesterday
    start = end - timedelta(days=days - 1)
    return f"{start.isoformat()}T00:00:00", f"{(end + timedelta(days=1)).isoformat()}T00:00:00"


def report(client: KlaviyoClient, srv: SandboxServer, days: int = 7) -> dict:
    start, end = timeframe(srv, days)
    return client.query_flow_values(statistics=STATS, start=start, end=end,
                                    conversion_metric_id=srv.account.placed_order_metric.id)


def statuses(srv: SandboxServer, bucket: str | None = None) -> list[int]:
    return [e["status"] for e in srv.requests() if bucket is None or e["bucket"] == bucket]


# ---------------------------------------------------------------- catalog and pagination
def test_catalog_and_multi_page_collections(sandbox, client_for):
    client = client_for(sandbox)
    account = client.get_account()
    assert account["id"] == sandbox.account.account_id
    flows = client.get_flows()
    assert {f["id"] for f in flows["data"]} == {f.id for f in sandbox.account.flows if not f.archived}
    assert {i["type"] for i in flows["included"]} >= {"flow-action", "tag"}
    keys = [(i["type"], i["id"]) for i in flows["included"]]
    assert len(keys) == len(set(keys))
    assert {m["id"] for m in client.get_metrics()} == {m.id for m in sandbox.account.metrics}
    assert {x["id"] for x in client.get_lists()} == {x.id for x in sandbox.account.lists}
    assert {x["id"] for x in client.get_segments()} == {x.id for x in sandbox.account.segments}
    campaigns = client.get_campaigns()
    assert campaigns["data"] and all(c["type"] == "campaign" for c in campaigns["data"])

    n = sandbox.account.n_profiles
    pages = list(client.iter_profiles())
    assert n > 100 and [len(p) for p in pages] == [100] * (n // 100) + ([n % 100] if n % 100 else [])
    assert [p["id"] for page in pages for p in page] == [sandbox.account.profile_id(i) for i in range(n)]
    assert all("subscriptions" in p["attributes"] for p in pages[0])

    list_id = sandbox.account.lists[0].id
    ids = [i for page in client.iter_list_profile_ids(list_id) for i in page]
    assert ids and set(ids) == set(sandbox.account.list_members(list_id))
    diag = client.diagnostics.to_dict()
    assert diag["pages"]["GET /api/profiles"] == len(pages) and diag["http_429"] == 0
    assert set(statuses(sandbox)) == {200}


def test_profiles_updated_after_filter(sandbox, client_for):
    client = client_for(sandbox)
    n = sandbox.account.n_profiles
    cutoff = sorted(sandbox.account.profile_updated(i) for i in range(n))[n - 150]
    got = [p["id"] for page in client.iter_profiles(updated_after=cutoff) for p in page]
    expected = [sandbox.account.profile_id(i) for i in range(n) if sandbox.account.profile_updated(i) > cutoff]
    assert got == expected and 100 < len(got) < 150


def test_report_pagination_merges_pages(client_for, sandbox_factory):
    paged = sandbox_factory(seed=11, profiles=10, report_page_size=7)
    whole = sandbox_factory(seed=11, profiles=10)
    merged = report(client_for(paged, account_key="paged"), paged)
    single = report(client_for(whole, account_key="whole"), whole)
    assert len(single["results"]) > 7  # so the paged server really split it
    assert sorted(merged["results"], key=repr) == sorted(single["results"], key=repr)
    posts = [e for e in paged.requests() if e["bucket"] == "reporting"]
    assert len(posts) == -(-len(single["results"]) // 7)
    assert {e["status"] for e in posts} == {200}


# ---------------------------------------------------------------- failures
def test_5xx_and_dropped_connections_are_retried(client_for, sandbox_factory):
    flaky = sandbox_factory(seed=5, profiles=250, fault_rate=0.35)
    client = client_for(flaky, max_attempts=10, timeout=10)
    pages = list(client.iter_profiles())
    flows = client.get_flows()
    assert sum(len(p) for p in pages) == 250 and flows["data"]
    log = flaky.requests()
    faulted = [e for e in log if e["fault"] in ("500", "502", "503", "drop")]
    assert faulted, "fault_rate 0.35 over this many requests must inject some faults"
    assert client.diagnostics.to_dict()["retries"] == len(faulted)


def _all_5xx_seed(n: int) -> int:
    """A seed whose first n injected faults (at fault_rate 1) are all HTTP 5xx (not slow/dropped)."""
    for seed in range(1, 1000):
        injector = FaultInjector(seed, 1.0)
        if all(injector.next().status for _ in range(n)):
            return seed
    raise AssertionError("no such seed")


def test_server_error_exhaustion_raises(client_for, sandbox_factory):
    broken = sandbox_factory(seed=_all_5xx_seed(3), profiles=10, fault_rate=1.0)
    client = client_for(broken, max_attempts=3, timeout=5)
    with pytest.raises(KlaviyoServerError) as err:
        client.get_account()
    assert err.value.attempts == 3 and err.value.status in (500, 502, 503)
    assert len(broken.requests()) == 3 and all(e["status"] >= 500 for e in broken.requests())


def test_auth_errors_are_not_retried(sandbox, client_for):
    with pytest.raises(KlaviyoAuthError) as err:
        client_for(sandbox, key="pk_wrong_key_0123456789").get_account()
    assert err.value.status == 401
    assert statuses(sandbox) == [401]
    sandbox.reset()
    with pytest.raises(KlaviyoAuthError) as err403:
        client_for(sandbox, key=sandbox.readonly_key).get_lists()
    assert err403.value.status == 403 and err403.value.missing_scope == "lists:read"
    assert "lists:read" in str(err403.value)
    assert statuses(sandbox) == [403]


def test_400_detail_is_surfaced(sandbox, client_for):
    client = client_for(sandbox)
    start, end = timeframe(sandbox, 61)
    with pytest.raises(KlaviyoRequestError) as err:
        client.query_flow_series(statistics=STATS, start=start, end=end,
                                 conversion_metric_id=sandbox.account.placed_order_metric.id)
    assert err.value.status == 400 and "60" in (err.value.detail or "")
    assert err.value.detail in str(err.value)
    assert statuses(sandbox) == [400]


def test_check_scopes(sandbox, client_for):
    assert client_for(sandbox).check_scopes() == []
    assert client_for(sandbox, key=sandbox.readonly_key).check_scopes() == ["lists:read", "profiles:read"]


# ---------------------------------------------------------------- rate limits
def test_pacing_gives_zero_429s_at_spec_limits(sandbox, client_for):
    client = client_for(sandbox)
    for _ in range(6):
        assert report(client, sandbox)["results"]
    assert statuses(sandbox, "reporting") == [200] * 6
    diag = client.diagnostics.to_dict()
    assert diag["reporting_calls"] == 6 and diag["http_429"] == 0 and diag["seconds_waited"] > 0


def test_429_is_honoured_without_failures(sandbox, client_for):
    """Two clients that share no limiter state: the second is throttled, waits, and succeeds."""
    first = client_for(sandbox, account_key=f"a{uuid.uuid4().hex[:6]}")
    second = client_for(sandbox, account_key=f"b{uuid.uuid4().hex[:6]}", max_attempts=1)
    report(first, sandbox)
    report(first, sandbox)  # the sandbox's steady window (2 per 3 s) is now full for this API key
    assert report(second, sandbox)["results"]
    log = statuses(sandbox, "reporting")
    assert log[:2] == [200, 200] and log[-1] == 200 and 429 in log[2:]
    diag = second.diagnostics.to_dict()
    assert diag["http_429"] == log.count(429) and diag["retries"] == 0 and diag["seconds_waited"] > 0


def test_concurrent_unshared_clients_all_succeed(sandbox, client_for):
    clients = [client_for(sandbox, account_key=f"c{i}{uuid.uuid4().hex[:6]}") for i in range(2)]
    errors: list[BaseException] = []

    def run(client: KlaviyoClient) -> None:
        try:
            for _ in range(2):
                report(client, sandbox)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert statuses(sandbox, "reporting").count(200) == 4
    assert sum(c.diagnostics.to_dict()["http_429"] for c in clients) == statuses(sandbox, "reporting").count(429)


def test_wait_beyond_max_wait_raises_before_sending(sandbox, client_for):
    client = client_for(sandbox, max_wait_seconds=0.5)
    report(client, sandbox)
    report(client, sandbox)
    with pytest.raises(KlaviyoRateLimitExceeded) as err:
        report(client, sandbox)
    assert err.value.bucket == "reporting" and err.value.wait_seconds > 0.5
    assert statuses(sandbox, "reporting") == [200, 200]


CHILD = textwrap.dedent(
    """
    import json, sys
    from datetime import timedelta
    from flowsync_provider.klaviyo import KlaviyoClient
    from flowsync_dev.sandbox.data import SandboxAccount
    url, key, limiter, n, metric, start, end = sys.argv[1:8]
    with KlaviyoClient(key, base_url=url, limiter_url=limiter, time_scale=20) as client:
        for _ in range(int(n)):
            client.query_flow_values(statistics=["delivered"], start=start, end=end, conversion_metric_id=metric)
        print(json.dumps(client.diagnostics.to_dict()))
    """
)


def test_limiter_state_is_shared_across_processes(sandbox, tmp_path):
    limiter = f"sqlite:///{tmp_path / 'shared.db'}"
    start, end = timeframe(sandbox, 7)
    args = [sandbox.url, sandbox.api_key, limiter, "2", sandbox.account.placed_order_metric.id, start, end]
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    log = [e for e in sandbox.requests() if e["bucket"] == "reporting"]
    assert [e["status"] for e in log] == [200] * 4  # zero 429s
    times = sorted(e["t"] for e in log)
    assert times[2] - times[0] >= 60 / SCALE  # the steady 2/min window, seen by the server


def test_redis_limiter_backend(sandbox, client_for):
    import redis

    conn = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    try:
        conn.ping()
    except redis.exceptions.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379: run `make services` (make test starts it)")
    account = f"rtest{uuid.uuid4().hex[:8]}"
    try:
        client = client_for(sandbox, limiter_url="redis://127.0.0.1:6379/15", account_key=account)
        for _ in range(3):
            report(client, sandbox)
        assert statuses(sandbox, "reporting") == [200] * 3
        assert conn.exists(f"flowsync:limiter:{account}_reporting")
    finally:
        for key in list(conn.scan_iter(match=f"flowsync:limiter:*{account}*")):
            conn.delete(key)
        conn.close()


# ---------------------------------------------------------------- secrets
def test_key_never_appears_in_logs_errors_diagnostics_or_repr(sandbox, client_for, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "flowsync_provider"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    client = client_for(sandbox)
    client.get_account()
    client.get_lists()
    texts = [repr(client), str(client)]
    start, end = timeframe(sandbox, 61)
    with pytest.raises(KlaviyoRequestError) as bad:
        client.query_flow_series(statistics=STATS, start=start, end=end, conversion_metric_id="x")
    readonly = client_for(sandbox, key=sandbox.readonly_key)
    with pytest.raises(KlaviyoAuthError) as denied:
        readonly.get_lists()
    wrong = "pk_wrong_but_secret_987654321"
    with pytest.raises(KlaviyoAuthError) as refused:
        client_for(sandbox, key=wrong).get_account()
    texts += [str(bad.value), repr(bad.value), str(denied.value), str(refused.value), repr(refused.value)]
    texts += [str(client.diagnostics.to_dict()), str(readonly.diagnostics.to_dict()), caplog.text]
    assert any("GET /api/accounts" in r.getMessage() for r in caplog.records)  # logs were captured
    for secret in (sandbox.api_key, sandbox.readonly_key, wrong):
        for text in texts:
            assert secret not in text
    for record in caplog.records:
        for secret in (sandbox.api_key, sandbox.readonly_key, wrong):
            assert secret not in str(record.args) and secret not in record.getMessage()
