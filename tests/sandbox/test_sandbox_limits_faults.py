"""Rate-limit enforcement (429, Retry-After, RateLimit-* headers, daily quota) and seeded faults."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from sandbox_helpers import Api, error_of, report_body

from flowsync_dev.sandbox.faults import FaultInjector
from flowsync_dev.sandbox.ratelimit import RateLimiter
from flowsync_provider.core.limits import limits_for

REPORT = "/api/flow-series-reports"
THROTTLED = re.compile(r"^Request was throttled\. Expected available in (\d+) seconds\.$")


# ---- the limiter itself, with an injected clock (exact, no timing) ----------------------------
def test_limiter_burst_steady_and_nominal_retry_after():
    lim = RateLimiter(time_scale=20)
    t0 = 1000.0
    assert lim.check("k", "POST", REPORT, now=t0).allowed
    burst = lim.check("k", "POST", REPORT, now=t0 + 0.01)  # burst 1/s → 0.05 s real at scale 20
    assert not burst.allowed and burst.retry_after == 1  # nominal seconds, ceil
    assert lim.check("k", "POST", REPORT, now=t0 + 0.06).allowed  # second of 2/min
    steady = lim.check("k", "POST", REPORT, now=t0 + 0.12)
    assert not steady.allowed
    # the first hit leaves the 60 s (3 s real) window at t0+3: (3 - 0.12) s real = 57.6 s nominal
    assert steady.retry_after == 58 and steady.bucket == "reporting"
    assert lim.check("k", "POST", REPORT, now=t0 + 3.01).allowed
    # buckets are per key and per bucket
    assert lim.check("other-key", "POST", REPORT, now=t0 + 0.12).allowed
    assert lim.check("k", "GET", "/api/flows", now=t0 + 0.12).allowed


def test_limiter_rejections_consume_nothing_and_daily_quota():
    lim = RateLimiter(time_scale=20)
    bucket, rate = limits_for("POST", "/api/flow-values-reports")
    assert bucket == "reporting" and rate.daily == 225
    t = 0.0
    for _ in range(225):
        assert lim.check("k", "POST", "/api/flow-values-reports", now=t).allowed
        assert not lim.check("k", "POST", "/api/campaign-values-reports", now=t + 0.001).allowed  # shared bucket
        t += 1.6  # 2 per 3 s real keeps under the steady limit
    assert lim.usage("k", "reporting", now=t) == 225
    daily = lim.check("k", "POST", REPORT, now=t)
    assert not daily.allowed
    # frees when the first hit (t=0) leaves the 86400/20 s window: (4320 - t) real s x 20
    assert daily.retry_after == pytest.approx((4320 - t) * 20, abs=1)
    assert lim.usage("k", "reporting", now=t) == 225
    assert lim.check("k", "POST", REPORT, now=4320.01).allowed


def test_limiter_headers_values():
    lim = RateLimiter(time_scale=1)
    first = lim.check("k", "GET", "/api/accounts", now=10.0)  # 1/s, 15/m
    assert (first.limit, first.remaining, first.reset_seconds) == (1, 0, 1)
    lim2 = RateLimiter(time_scale=1)
    d = lim2.check("k", "GET", "/api/lists", now=10.0)  # 75/s, 750/m
    assert (d.limit, d.remaining) == (75, 74)


# ---- over HTTP ---------------------------------------------------------------------------------
def test_reporting_429_retry_after_and_headers(sandbox_factory):
    srv = sandbox_factory(time_scale=1)
    api = Api(srv, retry_429=False)
    try:
        metric = srv.account.placed_order_metric.id
        body = report_body("flow-values-report", ["recipients"], metric, key="last_7_days")
        ok = api.post("/api/flow-values-reports", body)
        assert ok.status_code == 200
        assert {h: ok.headers[h].isdigit() for h in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")} \
            == {"RateLimit-Limit": True, "RateLimit-Remaining": True, "RateLimit-Reset": True}
        statuses = [ok.status_code]
        throttled = None
        for _ in range(6):  # whatever the machine speed, at most 2 fit in the 60 s steady window
            resp = api.post("/api/flow-values-reports", body)
            statuses.append(resp.status_code)
            if resp.status_code == 429:
                throttled = resp
                break
            time.sleep(1.05)
        assert throttled is not None and statuses.count(200) <= 2
        err = error_of(throttled)
        m = THROTTLED.match(err["detail"])
        assert m and int(m.group(1)) == int(throttled.headers["Retry-After"]) >= 1
        assert err["code"] == "throttled" and err["status"] == 429
        log = srv.requests()
        assert [e["status"] for e in log] == statuses
        assert {e["bucket"] for e in log} == {"reporting"}
    finally:
        api.close()


def test_burst_exceeded_then_reset_endpoint(sandbox_factory):
    srv = sandbox_factory(time_scale=1)
    api = Api(srv, retry_429=False)
    try:
        codes = [api.get("/api/accounts").status_code for _ in range(20)]  # burst 1/s, steady 15/m
        assert codes[0] == 200 and 429 in codes and codes.count(200) <= 15
        assert httpx.post(srv.url + "/__sandbox__/reset").json() == {"ok": True}
        assert srv.requests() == []
        assert api.get("/api/accounts").status_code == 200
    finally:
        api.close()


def test_daily_quota_over_http(sandbox_factory):
    srv = sandbox_factory(time_scale=20)
    now = time.monotonic()
    for i in range(225):  # 225 report calls spread over the last ~6 real minutes
        assert srv.app.limiter.check("full", "POST", REPORT, now=now - 400 + i * 1.6).allowed
    api = Api(srv, retry_429=False)
    try:
        metric = srv.account.placed_order_metric.id
        resp = api.post("/api/campaign-values-reports",
                        report_body("campaign-values-report", ["recipients"], metric, key="last_30_days"))
        assert resp.status_code == 429
        wait = int(resp.headers["Retry-After"])
        assert 3600 < wait <= 86400  # nominal: hours, not seconds
        assert THROTTLED.match(error_of(resp)["detail"])
        ro = Api(srv, key=srv.readonly_key, retry_429=False)  # quota is per key
        try:
            assert ro.post("/api/campaign-values-reports",
                           report_body("campaign-values-report", ["recipients"], metric,
                                       key="last_30_days")).status_code == 200
        finally:
            ro.close()
    finally:
        api.close()


def _run(srv, n: int) -> list[str]:
    outcomes = []
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Klaviyo-API-Key {srv.api_key}",
                                                 "revision": "2026-07-15"}, timeout=10) as client:
        for _ in range(n):
            try:
                outcomes.append(str(client.get("/api/lists").status_code))
            except httpx.TransportError:
                outcomes.append("dropped")
    return outcomes


def test_fault_injector_draws_every_kind():
    inj = FaultInjector(3, 0.4)
    draws = [inj.next() for _ in range(400)]
    faults = [f for f in draws if f]
    assert {f.kind for f in faults} == {"500", "502", "503", "slow", "drop"}
    assert 0.3 < len(faults) / 400 < 0.5
    assert all(0.3 <= f.delay <= 1.5 for f in faults if f.kind == "slow")
    inj.reset()
    assert [inj.next() for _ in range(400)] == draws
    assert FaultInjector(3, 0.0).next() is None
    with pytest.raises(ValueError):
        FaultInjector(3, 1.5)


def test_faults_reproducible_by_seed(sandbox_factory):
    a = sandbox_factory(seed=5, fault_rate=0.5)
    b = sandbox_factory(seed=5, fault_rate=0.5)
    c = sandbox_factory(seed=6, fault_rate=0.5)
    ra, rb, rc = _run(a, 24), _run(b, 24), _run(c, 24)
    assert ra == rb and ra != rc
    assert {"dropped", "200"} <= set(ra) and {"500", "502", "503"} & set(ra)
    fa = [e["fault"] for e in a.requests()]
    assert fa == [e["fault"] for e in b.requests()]
    inj = FaultInjector(5, 0.5)
    assert [f.kind if f else None for f in (inj.next() for _ in range(24))] == fa
    # faulted (5xx / dropped) requests consumed no quota; slow and normal ones did
    answered = sum(1 for e in a.requests() if e["fault"] in (None, "slow"))
    assert a.app.limiter.usage("full", "get_lists") == answered < 24
    for e in a.requests():
        if e["fault"] in ("500", "502", "503"):
            assert e["status"] == int(e["fault"]) and e["bucket"] is None
        if e["fault"] == "drop":
            assert e["status"] is None


def test_admin_routes_never_fault(sandbox_factory):
    srv = sandbox_factory(fault_rate=1.0)
    for _ in range(15):
        assert httpx.get(srv.url + "/__sandbox__/info").status_code == 200
    assert srv.requests() == []
