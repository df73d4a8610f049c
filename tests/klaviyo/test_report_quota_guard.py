"""The reporting-quota guard: unanswered reporting calls are capped per try and per chunk, across tries.

Each "task try" below is a fresh client over the same SQLite limiter file and ledger key, which is
what an Airflow retry is (a new process, same task instance). Real-wire cases use a closed loopback
port; the rest use MockTransport so the unanswered call is exact.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import httpx
import pytest
from klaviyo_helpers import SECRET, Recorder, jsonapi

from flowsync_provider.klaviyo import (
    KlaviyoClient,
    KlaviyoConfigError,
    KlaviyoReportQuotaGuard,
    KlaviyoServerError,
)
from flowsync_provider.klaviyo.pacing import Pacer

REPORT = {"statistics": ["opens"], "start": "2025-03-01T00:00:00+00:00", "end": "2025-03-08T00:00:00+00:00",
          "conversion_metric_id": "M1"}
OK = {"data": {"type": "flow-values-report", "attributes": {"results": []}}, "links": {}}


def read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def ok(request: httpx.Request) -> httpx.Response:
    return jsonapi(OK)


def try_once(url: str, handler, key: str = "run-1/report/0", **kwargs) -> tuple[BaseException | None, Recorder]:
    """One task try: a fresh client, the task's ledger, one report call."""
    rec = Recorder(handler)
    kwargs.setdefault("timeout", 1)  # raised to the reporting floor: 60 s / time scale 20 = 3 s
    client = KlaviyoClient(SECRET, transport=httpx.MockTransport(rec), limiter_url=url, time_scale=20, **kwargs)
    try:
        with client.charging(client.task_ledger(key).chunk()):
            client.query_flow_values(**REPORT)
    except Exception as exc:  # noqa: BLE001 - returned for the assertions
        return exc, rec
    finally:
        client.close()
    return None, rec


def test_unanswered_report_retried_once_per_try_and_three_times_per_chunk(tmp_path):
    url = f"sqlite:///{tmp_path / 'limiter.db'}"
    first, rec1 = try_once(url, read_timeout)
    assert len(rec1.requests) == 2  # one retry in this try, not max_attempts (5)
    assert isinstance(first, KlaviyoServerError) and "2 of at most 3 for this chunk" in str(first)
    second, rec2 = try_once(url, read_timeout)
    assert len(rec2.requests) == 1
    assert isinstance(second, KlaviyoReportQuotaGuard) and second.spent == 3
    assert "spent 3 reporting quota calls on this chunk over all task tries" in str(second)
    assert "the klaviyo_default connection's extra.timeout (reporting calls now wait 3 s)" in str(second)
    third, rec3 = try_once(url, read_timeout)
    assert rec3.requests == []  # the chunk's allowance is spent: refused before sending
    assert isinstance(third, KlaviyoReportQuotaGuard) and "earlier tries" in str(third)
    # another chunk (another ledger key) is unaffected
    other, rec4 = try_once(url, ok, key="run-1/report/1")
    assert other is None and len(rec4.requests) == 1


def test_5xx_counts_but_429_does_not(tmp_path):
    url = f"sqlite:///{tmp_path / 'limiter.db'}"
    throttled = Recorder(lambda r: jsonapi({"errors": []}, 429, {"Retry-After": "0"}), ok)
    client = KlaviyoClient(SECRET, transport=httpx.MockTransport(throttled), limiter_url=url, time_scale=20)
    ledger = client.task_ledger("run-2/report/0").chunk()
    with client.charging(ledger):
        client.query_flow_values(**REPORT)
    assert len(throttled.requests) == 2 and ledger.spent() == 0
    failing = Recorder(lambda r: jsonapi({"errors": []}, 503), ok)
    client2 = KlaviyoClient(SECRET, transport=httpx.MockTransport(failing), limiter_url=url, time_scale=20)
    ledger2 = client2.task_ledger("run-2/report/1").chunk()
    with client2.charging(ledger2):
        client2.query_flow_values(**REPORT)
    assert len(failing.requests) == 2 and ledger2.spent() == 1
    assert client2.diagnostics.to_dict()["reporting_unanswered"] == 1
    client.close()
    client2.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_closed_port_names_host_and_port_and_costs_no_quota(tmp_path):
    """Over the real wire: nothing listens, so nothing was sent and no quota was spent."""
    port = _closed_port()
    client = KlaviyoClient(SECRET, base_url=f"http://127.0.0.1:{port}", limiter_url=f"sqlite:///{tmp_path / 'l.db'}",
                           time_scale=20, max_attempts=3)
    ledger = client.task_ledger("run-3/report/0").chunk()
    with pytest.raises(KlaviyoServerError) as err, client.charging(ledger):
        client.query_flow_values(**REPORT)
    message = str(err.value)
    assert message == (f"Could not connect to 127.0.0.1:{port} (connection refused) after 3 attempts: "
                       "check the klaviyo_default connection's host")
    assert SECRET not in message and "degraded" not in message
    assert ledger.spent() == 0  # a connect error is retried up to max_attempts and never charged
    diag = client.diagnostics.to_dict()
    assert diag["reporting_calls"] == 0 and diag["reporting_unanswered"] == 0 and diag["retries"] == 2
    client.close()


def test_reporting_read_timeout_floor(make_client):
    seen: list[dict] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return jsonapi(OK if request.method == "POST" else {"data": [{"type": "account", "id": "A"}]})

    production = make_client(record, timeout=2, time_scale=1)
    production.get_account()
    production.query_flow_values(**REPORT)
    assert seen[0]["read"] == 2 and seen[1]["read"] == 60.0  # reports wait at least 60 s
    assert seen[1]["connect"] == 2  # connecting is not slower
    generous = make_client(record, timeout=90, time_scale=1)
    generous.query_flow_values(**REPORT)
    assert seen[2]["read"] == 90  # a floor only raises
    scaled = make_client(record, timeout=2, time_scale=20)
    scaled.query_flow_values(**REPORT)
    assert seen[3]["read"] == 3.0  # the sandbox's time scale divides it, like every wait


@pytest.mark.parametrize("value", [0, -1, 0.0, "abc", float("nan"), True])
def test_client_timeout_must_be_positive(value):
    with pytest.raises(KlaviyoConfigError, match=r"^KlaviyoClient timeout must be a number of seconds above 0, got "):
        KlaviyoClient(SECRET, timeout=value, limiter_url="memory://")


def test_ledger_survives_process_restart(tmp_path):
    url = f"sqlite:///{tmp_path / 'limiter.db'}"
    script = textwrap.dedent(
        f"""
        from flowsync_provider.klaviyo.pacing import Pacer
        ledger = Pacer({url!r}, "acct").ledger("task-key")
        print(ledger.chunk("flows:0").spend())
        ledger.record_try({{"try": 1, "client": {{"reporting_calls": 2}}}})
        """
    )
    for expected in ("1", "2"):  # two task tries, two processes
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split() == [expected]
    pacer = Pacer(url, "acct")
    ledger = pacer.ledger("task-key")
    assert ledger.chunk("flows:0").spent() == 2 and ledger.chunk("flows:1").spent() == 0
    assert ledger.earlier_tries() == [{"try": 1, "client": {"reporting_calls": 2}}] * 2
    assert pacer.ledger("other-task").earlier_tries() == []
    pacer.close()


def test_redis_ledger_is_shared(redis_url):
    url, account = redis_url
    a, b = Pacer(url, account), Pacer(url, account)
    key = f"{account}-task"
    assert a.ledger(key).chunk().spend() == 1 and b.ledger(key).chunk().spend() == 2
    b.ledger(key).record_try({"try": 1})
    assert a.ledger(key).chunk().spent() == 2 and a.ledger(key).earlier_tries() == [{"try": 1}]
    import redis

    conn = redis.Redis.from_url(url)
    for name in conn.scan_iter(match=f"flowsync:limiter:ledger*{key}*"):
        conn.delete(name)
    conn.close()
    a.close()
    b.close()
