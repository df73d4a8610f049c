"""The harnesses' evidence function: sliding-window limits checked from a sandbox request log."""

from __future__ import annotations

from flowsync_dev.airflow_procs import admitted_by_bucket, max_in_window, window_violations

REPORT = {"method": "POST", "path": "/api/flow-values-reports", "bucket": "reporting"}
ACCOUNTS = {"method": "GET", "path": "/api/accounts", "bucket": "get_accounts"}


def log(entries: list[tuple[dict, float, int]]) -> list[dict]:
    return [{**kind, "t": t, "status": status} for kind, t, status in entries]


def test_paced_log_has_no_violation():
    # time scale 20: burst window 0.05 s (1), steady window 3 s (2 reporting / 15 accounts)
    entries = [(REPORT, 0.0, 200), (REPORT, 0.06, 200), (REPORT, 3.01, 200), (REPORT, 3.2, 200)]
    entries += [(ACCOUNTS, i * 0.06, 200) for i in range(15)]
    assert window_violations(log(entries), 20) == []


def test_steady_and_burst_violations_are_found():
    steady = log([(REPORT, 0.0, 200), (REPORT, 1.0, 200), (REPORT, 2.9, 200)])
    found = window_violations(steady, 20)
    assert [(v.bucket, v.limit, v.count) for v in found] == [("reporting", 2, 3)]
    burst = log([(ACCOUNTS, 0.0, 200), (ACCOUNTS, 0.01, 200)])
    found = window_violations(burst, 20)
    assert [(v.bucket, v.limit, v.count) for v in found] == [("get_accounts", 1, 2)]
    assert "2 requests within" in str(found[0])


def test_refused_requests_do_not_count():
    entries = log([(REPORT, 0.0, 200), (REPORT, 0.01, 429), (REPORT, 1.0, 200), (REPORT, 1.5, 429)])
    assert admitted_by_bucket(entries) == {"reporting": [0.0, 1.0]}
    assert window_violations(entries, 20) == []


def test_window_edges_follow_the_server_rule():
    # the server counts t > now - window: a request exactly one window later is admitted
    assert max_in_window([0.0, 3.0, 6.0], 3.0) == 1
    assert max_in_window([0.0, 2.999, 5.998], 3.0) == 2
    assert max_in_window([], 3.0) == 0
