"""Slow reports must not burn the 225/day reporting quota: the flow sync DAG over the real wire.

The sandbox serves (and counts) every reporting call, then holds the answer back longer than the
client's read timeout, as a slow Klaviyo report does. Airflow's own task retries run inside
``dag.test()`` (retry delay shortened by the test runner), so the cap is checked across task tries.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from test_flow_sync import expected_csv, summary_of

# 120 Klaviyo seconds = 6 real seconds at time scale 20, well past the reporting read-timeout floor
# (60 Klaviyo seconds = 3 real seconds at that scale): every held-back answer times out client-side.
SLOW_REPORT = 120
CHUNK_CAP = 3


def _served_reports(srv) -> list[dict]:
    return [r for r in srv.requests() if r.get("bucket") == "reporting" and r.get("status") == 200]


def _slow_env(srv, flowsync_env, monkeypatch) -> Path:
    home = flowsync_env(srv, FLOWSYNC_TEST_RETRY_DELAY_SECONDS="0")
    # A short connection timeout (the reported set-up); the client raises it to the reporting floor.
    monkeypatch.setenv("AIRFLOW_CONN_KLAVIYO_DEFAULT", json.dumps(
        {"conn_type": "klaviyo", "host": srv.url, "password": srv.api_key,
         "extra": {"timeout": 2, "time_scale": srv.time_scale}}))
    return home


def _conf(srv) -> dict:
    end = srv.account.yesterday - timedelta(days=1)
    return {"format": "csv", "start": (end - timedelta(days=4)).isoformat(), "end": end.isoformat()}


def test_slow_reports_spend_at_most_three_quota_calls_per_chunk(sandbox_factory, flowsync_env, run_dag,
                                                                   monkeypatch):
    srv = sandbox_factory(seed=7, time_scale=20, report_delay=SLOW_REPORT)
    _slow_env(srv, flowsync_env, monkeypatch)
    result = run_dag("klaviyo_flow_sync", _conf(srv))
    assert not result.ok
    assert result.tasks["report[0]"] == "failed", result.tasks
    served = _served_reports(srv)
    # one chunk (a 5-day series): at most 3 quota calls over all three task tries (today: 5 x 3 = 15)
    assert 0 < len(served) <= CHUNK_CAP, len(served)
    assert f"{len(served)} reporting quota calls on this chunk" in result.output, result.output[-4000:]
    assert "klaviyo_default connection's extra.timeout" in result.output
    assert srv.api_key not in result.output


def test_failed_try_diagnostics_reach_the_summary(sandbox_factory, flowsync_env, run_dag, monkeypatch):
    # Only the first two reporting answers are slow: try 1 times out twice (one retry per try), try 2 succeeds.
    srv = sandbox_factory(seed=7, time_scale=20, report_delay=SLOW_REPORT, report_delay_count=2)
    home = _slow_env(srv, flowsync_env, monkeypatch)
    conf = _conf(srv)
    result = run_dag("klaviyo_flow_sync", conf)
    assert result.ok, result.output[-4000:]
    summary = summary_of(home)
    start, end = (date_of(conf["start"]), date_of(conf["end"]))
    assert Path(summary["files"]["data"]).read_text() == expected_csv(srv.account, start, end)
    assert len(_served_reports(srv)) == 3
    diagnostics = summary["diagnostics"]
    # every quota call is in the summary, the failed try's included
    assert diagnostics["reporting_calls"] == 3
    failed = diagnostics["client"]["earlier_tries"]
    assert [(f["task"], f["map_index"], f["try"], f["outcome"]) for f in failed] == [("report", 0, 1, "failed")]
    assert failed[0]["client"]["reporting_calls"] == 2
    assert "ReadTimeout" in failed[0]["error"]
    assert srv.api_key not in json.dumps(summary)


def date_of(text: str):
    from datetime import date

    return date.fromisoformat(text)
