"""Several OS processes, one Redis limiter, one sandbox: the combined rate stays within the limits.

Each process builds its own ``KlaviyoClient`` (own Redis connection, own pacer) exactly as parallel
Airflow tasks on different workers do. The evidence comes from the sandbox's request log, not from
the client: zero 429s, and no sliding window (burst, steady; time-compressed) ever holds more
admitted requests than the spec allows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flowsync_dev.airflow_procs import admitted_by_bucket, clean_env, max_in_window, window_violations
from flowsync_provider.core.limits import limits_for

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).resolve().parent
PROCESSES = 4
TIME_SCALE = 20


def run_workers(srv, limiter_url: str, account: str, kind: str, calls_each: int) -> list[dict]:
    """Start PROCESSES workers that begin at the same instant; return their JSON results."""
    tz = ZoneInfo(srv.info()["timezone"])
    day = srv.account.yesterday
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    env = clean_env({
        "CONTENTION_API_KEY": srv.api_key, "CONTENTION_BASE_URL": srv.url,
        "CONTENTION_TIME_SCALE": str(TIME_SCALE), "CONTENTION_LIMITER_URL": limiter_url,
        "CONTENTION_ACCOUNT_KEY": account, "CONTENTION_KIND": kind, "CONTENTION_CALLS": str(calls_each),
        "CONTENTION_START": start.isoformat(), "CONTENTION_END": (start + timedelta(days=1)).isoformat(),
        "CONTENTION_METRIC_ID": srv.account.placed_order_metric.id,
        "CONTENTION_START_AT": str(time.time() + 4.0),  # after every interpreter has imported the client
    })
    procs = [subprocess.Popen([sys.executable, str(HERE / "contention_worker.py")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(PROCESSES)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err[-3000:]
        assert srv.api_key not in out + err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.parametrize(("kind", "calls_each", "bucket"), [
    ("reporting", 2, "reporting"),   # 8 report calls: 1/s burst, 2/min steady shared by all processes
    ("accounts", 10, "get_accounts"),  # 40 calls: 1/s burst, 15/min steady
])
def test_processes_share_one_redis_budget(sandbox_factory, redis_limiter, kind, calls_each, bucket):
    srv = sandbox_factory(seed=7, time_scale=TIME_SCALE)
    limiter_url, account = redis_limiter
    results = run_workers(srv, limiter_url, account, kind, calls_each)

    assert all(r["ok"] for r in results), results
    log = srv.requests()
    assert [r for r in log if r["status"] == 429] == []
    assert [r for r in log if r["status"] >= 400] == []
    times = admitted_by_bucket(log)[bucket]
    assert len(times) == PROCESSES * calls_each
    assert window_violations(log, TIME_SCALE) == []
    # The processes really competed: the steady window was filled to its limit, never beyond.
    first = next(r for r in log if r["bucket"] == bucket)
    limit = limits_for(first["method"], first["path"])[1]
    assert max_in_window(times, 1.0 / TIME_SCALE - 0.002) <= limit.burst_per_s
    assert max_in_window(times, 60.0 / TIME_SCALE - 0.002) == min(limit.steady_per_min, len(times))
    # Every process waited for the others at least once: the budget was shared, not per process.
    assert sum(1 for r in results if r["diagnostics"]["seconds_waited"] > 0) >= PROCESSES - 1
    assert sum(r["diagnostics"]["http_429"] for r in results) == 0


def test_late_arriving_older_stamp_is_refused(redis_limiter) -> None:
    """Regression: a process that stamped its item first but reaches Redis second must not get a slot.

    Stock pyrate-limiter counts only entries up to the caller's own timestamp, so this order admitted
    both requests into a one-request window (see ``pacing._OrderSafeRedisBucket``).
    """
    from pyrate_limiter import Rate, RateItem

    from flowsync_provider.klaviyo.pacing import open_store

    url, account = redis_limiter
    store = open_store(url)
    bucket = store.bucket(f"{account}_reporting", [Rate(1, 1000)])
    now = int(time.time() * 1000)
    assert bucket.put(RateItem("b", now + 5)) is True   # the later stamp arrives first
    assert bucket.put(RateItem("a", now)) is False      # the earlier stamp must wait for the window
    assert 1000 <= bucket.waiting(RateItem("a", now)) <= 1010
    store.close()


def test_redis_unreachable_is_reported_not_skipped() -> None:
    """The fixture's contract: the limiter URL this suite uses answers (a missing Redis fails the run)."""
    import redis

    url = os.environ.get("FLOWSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
    assert redis.Redis.from_url(url).ping() is True
