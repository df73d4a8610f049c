"""Pacing state shared across clients, processes and backends (SQLite file, Redis), no HTTP needed.

Assertions are on admissions and raised waits, not on elapsed time: a client that must wait longer
than ``max_wait_seconds`` raises ``KlaviyoRateLimitExceeded`` deterministically, which proves the
state it saw was written by someone else.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import httpx
import pytest
from klaviyo_helpers import SECRET

from flowsync_provider.core.limits import RateLimit, limits_for
from flowsync_provider.klaviyo import KlaviyoClient, KlaviyoRateLimitExceeded
from flowsync_provider.klaviyo.pacing import Pacer, pacing_rates

TWO_PER_MINUTE = RateLimit(1, 2)


def test_sqlite_state_survives_into_another_process(tmp_path):
    url = f"sqlite:///{tmp_path / 'limiter.db'}"
    first = Pacer(url, "acct1", time_scale=1)
    assert first.acquire("reporting", TWO_PER_MINUTE, max_wait_seconds=5) < 3
    assert first.acquire("reporting", TWO_PER_MINUTE, max_wait_seconds=5) < 3  # burst 1/s: waits ~1 s
    first.close()
    script = textwrap.dedent(
        f"""
        from flowsync_provider.core.limits import RateLimit
        from flowsync_provider.klaviyo import KlaviyoRateLimitExceeded
        from flowsync_provider.klaviyo.pacing import Pacer
        pacer = Pacer({url!r}, "acct1", time_scale=1)
        try:
            pacer.acquire("reporting", RateLimit(1, 2), max_wait_seconds=5)
        except KlaviyoRateLimitExceeded as exc:
            print("DEFER", round(exc.wait_seconds))
        else:
            print("ADMITTED")
        other = Pacer({url!r}, "acct2", time_scale=1)
        other.acquire("reporting", RateLimit(1, 2), max_wait_seconds=5)
        print("OTHER-ACCOUNT-ADMITTED")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split()
    assert lines[0] == "DEFER" and 50 <= int(lines[1]) <= 64  # the steady 2/min window is full
    assert lines[2] == "OTHER-ACCOUNT-ADMITTED"  # keys are per account


def _worker(url: str, n: int, queue) -> None:
    pacer = Pacer(url, "shared", time_scale=20)
    stamps = []
    for _ in range(n):
        pacer.acquire("get_things", RateLimit(2, 6), max_wait_seconds=30)
        stamps.append(time.time())
    queue.put(stamps)


def test_two_processes_share_one_sqlite_limiter(tmp_path):
    import multiprocessing as mp

    url = f"sqlite:///{tmp_path / 'limiter.db'}"
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, 4, queue)) for _ in range(2)]
    for proc in procs:
        proc.start()
    stamps = sorted(queue.get(timeout=60) + queue.get(timeout=60))
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert len(stamps) == 8
    # 6 per 3 s (60 s / 20): admissions 1 and 7 must be a full steady window apart
    assert all(stamps[i + 6] - stamps[i] >= 3.0 for i in range(len(stamps) - 6))
    # burst 2 per 50 ms: any three admissions span at least one burst window
    assert all(stamps[i + 2] - stamps[i] >= 0.05 for i in range(len(stamps) - 2))


def test_daily_quota_exhausted_raises_with_retry_at(tmp_path):
    """A day's 225 reporting calls already spent: the client raises instead of sleeping for hours."""
    from pyrate_limiter import Rate, RateItem, SQLiteBucket

    db = tmp_path / "limiter.db"
    url = f"sqlite:///{db}"
    pacer = Pacer(url, "acct-daily", time_scale=1)
    bucket, limit = limits_for("POST", "/api/flow-values-reports")
    daily = pacing_rates(limit, 1)[-1]
    assert daily.limit == 225
    pacer.pause("warmup", 0.001)  # creates the file and tables
    filler = SQLiteBucket.init_from_file([Rate(225, daily.interval)], table=f"rl_{pacer._name(bucket)}",
                                         db_path=str(db))
    oldest = int(time.time() * 1000) - 6 * 3600 * 1000
    for i in range(225):
        assert filler.put(RateItem("fill", oldest + i * 60_000))
    filler.close()
    pacer.close()

    sent: list[httpx.Request] = []
    client = KlaviyoClient(SECRET, base_url="https://a.klaviyo.com", limiter_url=url, account_key="acct-daily",
                           time_scale=1, transport=httpx.MockTransport(lambda r: sent.append(r)))
    with pytest.raises(KlaviyoRateLimitExceeded) as err:
        client.query_flow_values(statistics=["delivered"], start="a", end="b", conversion_metric_id="M")
    assert err.value.bucket == "reporting"
    expected = oldest / 1000 + daily.interval / 1000
    assert abs(err.value.retry_at - expected) < 5  # the oldest call leaves the 24 h window
    assert sent == []  # nothing was sent
    client.close()


def test_redis_backend_shares_state_between_pacers(redis_url):
    url, account = redis_url
    first = Pacer(url, account, time_scale=1)
    second = Pacer(url, account, time_scale=1)  # another process would hold its own connection
    assert first.acquire("reporting", TWO_PER_MINUTE, max_wait_seconds=5) < 3
    assert second.acquire("reporting", TWO_PER_MINUTE, max_wait_seconds=5) < 3
    with pytest.raises(KlaviyoRateLimitExceeded) as err:
        first.acquire("reporting", TWO_PER_MINUTE, max_wait_seconds=5)
    assert 50 <= err.value.wait_seconds <= 64
    second.pause("get_flows", 30)
    with pytest.raises(KlaviyoRateLimitExceeded) as err2:
        first.acquire("get_flows", RateLimit(3, 60), max_wait_seconds=5)
    assert 25 <= err2.value.wait_seconds <= 30
    first.close()
    second.close()


def test_server_pause_is_shared_through_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'limiter.db'}"
    a, b = Pacer(url, "acct", time_scale=1), Pacer(url, "acct", time_scale=1)
    a.pause("get_flows", 40)
    with pytest.raises(KlaviyoRateLimitExceeded) as err:
        b.acquire("get_flows", RateLimit(3, 60), max_wait_seconds=5)
    assert 35 <= err.value.wait_seconds <= 40 and err.value.bucket == "get_flows"
    assert b.acquire("get_metrics", RateLimit(10, 150), max_wait_seconds=5) == 0  # other buckets unaffected
    a.close()
    b.close()
