"""Deferral on long rate-limit waits: the report task hands the wait to the triggerer and resumes.

``dag.test()`` runs a deferred task's trigger inline and then resumes the task through its
``next_method``; the run happens in a fresh interpreter (flowsync_dev.airflow_procs) with
``FLOWSYNC_DEFER_AFTER_SECONDS=0.5``. The reporting bucket (2/min steady → 6 s at time scale 10)
is filled before the run and the per-day strategy makes three report calls, so at least one report
task must wait far longer than 0.5 s: it defers instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flowsync_dev.airflow_procs import run_dag_test, window_violations
from flowsync_provider.klaviyo import KlaviyoClient
from flowsync_provider.triggers.ratelimit import KlaviyoRateLimitTrigger

TIME_SCALE = 10


def _env(srv, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KLAVIYO_", "FLOWSYNC_", "AIRFLOW_CONN_")) and k != "PYTEST_CURRENT_TEST"}
    env.update({
        "AIRFLOW_CONN_KLAVIYO_DEFAULT": json.dumps({"conn_type": "klaviyo", "host": srv.url,
                                                    "password": srv.api_key,
                                                    "extra": {"time_scale": TIME_SCALE}}),
        "KLAVIYO_ENABLE": "true",
        "FLOWSYNC_HOME": str(tmp_path / "flowsync"),
        "FLOWSYNC_LIMITER_URL": f"sqlite:///{tmp_path / 'limiter.db'}",
        **extra,
    })
    return env


def _fill_reporting_bucket(srv, tmp_path: Path) -> None:
    """Two report calls through the DAG's limiter: the steady window (2 per 6 s) is now full."""
    tz = ZoneInfo(srv.info()["timezone"])
    day = srv.account.yesterday
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    with KlaviyoClient(srv.api_key, base_url=srv.url, time_scale=TIME_SCALE,
                       limiter_url=f"sqlite:///{tmp_path / 'limiter.db'}") as client:
        for _ in range(2):
            client.query_flow_values(statistics=["delivered"], start=start, end=start + timedelta(days=1),
                                     conversion_metric_id=srv.account.placed_order_metric.id)


def _csv(home: Path, run_id: str) -> str:
    found = [p for p in home.rglob("summary.json") if run_id.replace(":", "_") in str(p) or run_id in str(p)]
    found = found or sorted(home.rglob("summary.json"), key=lambda p: p.stat().st_mtime)[-1:]
    summary = json.loads(found[-1].read_text())
    return Path(summary["files"]["data"]).read_text()


def _deferred_task(out: str) -> str:
    """The mapped report task whose section of the dag.test output shows the whole deferral cycle."""
    marks = ["deferring instead of holding a worker slot", "running trigger in line", "Trigger completed",
             "Rate-limit wait over for bucket reporting; resuming.", "end task task_id=report"]
    at = out.index(marks[0])
    start = out.rfind("starting task_id=report map_index=", 0, at)
    assert start >= 0, "the deferral did not happen inside a report task"
    positions = [out.index(mark, at) for mark in marks]
    assert positions == sorted(positions), positions
    map_index = out[start:].split("map_index=", 1)[1].split()[0]
    return f"report[{map_index}]"


@pytest.mark.timeout(180)
def test_report_task_defers_and_resumes(sandbox_factory, airflow_db, tmp_path):
    srv = sandbox_factory(seed=7, time_scale=TIME_SCALE)
    end = srv.account.yesterday - timedelta(days=1)
    window = {"format": "csv", "start": (end - timedelta(days=2)).isoformat(), "end": end.isoformat()}

    _fill_reporting_bucket(srv, tmp_path)
    env = _env(srv, tmp_path, FLOWSYNC_DEFER_AFTER_SECONDS="0.5")
    deferred = run_dag_test("klaviyo_flow_sync", {**window, "reportStrategy": "values-per-day"}, env)
    assert deferred.ok, deferred.output[-4000:]
    out = deferred.output
    assert "deferring instead of holding a worker slot" in out, out[-4000:]
    assert "running trigger in line" in out and "Trigger completed" in out
    assert "Rate-limit wait over for bucket reporting; resuming." in out
    reports = {k: v for k, v in deferred.tasks.items() if k.startswith("report[")}
    assert len(reports) == 3 and all(v["state"] == "success" for v in reports.values())
    # Order in the task output: defer → trigger inline → execute_complete → success, all in one report
    # task instance (Airflow clears next_method once the resumed task succeeds, so the log is the record).
    deferred_task = _deferred_task(out)
    assert deferred_task in reports and reports[deferred_task]["try_number"] == 1, (deferred_task, reports)
    log = srv.requests()
    assert [r for r in log if r["status"] == 429] == []
    assert window_violations(log, TIME_SCALE) == []
    assert len([r for r in log if r["bucket"] == "reporting"]) == 2 + 3  # no call was lost or repeated
    assert srv.api_key not in out

    # The resumed run's CSV equals a run without any deferral (one series call, default threshold).
    resumed_csv = _csv(Path(env["FLOWSYNC_HOME"]), deferred.run_id)
    plain = run_dag_test("klaviyo_flow_sync", window, _env(srv, tmp_path / "plain"))
    assert plain.ok, plain.output[-4000:]
    assert "deferring instead" not in plain.output
    assert _csv(tmp_path / "plain" / "flowsync", plain.run_id) == resumed_csv


# ----------------------------------------------------------------------------- the trigger itself
def test_trigger_serializes_to_classpath_and_primitives():
    trigger = KlaviyoRateLimitTrigger(retry_at=1_700_000_000.5, bucket="reporting", poll_interval=2)
    classpath, kwargs = trigger.serialize()
    assert classpath == "flowsync_provider.triggers.ratelimit.KlaviyoRateLimitTrigger"
    assert kwargs == {"retry_at": 1_700_000_000.5, "bucket": "reporting", "poll_interval": 2.0}
    assert all(isinstance(v, (str, int, float)) for v in kwargs.values())
    assert json.loads(json.dumps(kwargs)) == kwargs  # storable as the trigger row's kwargs
    from airflow.sdk._shared.module_loading import import_string

    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert not any(word in json.dumps(kwargs).lower() for word in ("key", "secret", "password", "pk_"))


def _events(trigger: KlaviyoRateLimitTrigger, timeout: float) -> list:
    async def collect() -> list:
        return [event async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout))


def test_trigger_fires_once_after_retry_at():
    retry_at = time.time() + 0.3
    trigger = KlaviyoRateLimitTrigger(retry_at=retry_at, bucket="reporting", poll_interval=0.05)
    events = _events(trigger, timeout=30)
    assert time.time() >= retry_at
    assert len(events) == 1
    assert events[0].payload == {"status": "ready", "bucket": "reporting", "retry_at": retry_at}


def test_trigger_with_past_retry_at_fires_without_sleeping(monkeypatch):
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def spy(delay: float, *args, **kwargs):
        slept.append(delay)
        return await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", spy)
    trigger = KlaviyoRateLimitTrigger(retry_at=time.time() - 5, bucket="get_flows")
    events = _events(trigger, timeout=5)
    assert slept == []
    assert [e.payload["bucket"] for e in events] == ["get_flows"]


def test_trigger_sleeps_in_poll_slices(monkeypatch):
    """A long wait is slept in poll_interval slices (a restarted triggerer notices promptly)."""
    clock = [1000.0]
    slept: list[float] = []

    async def fake_sleep(delay: float, *args, **kwargs):
        slept.append(delay)
        clock[0] += delay

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    monkeypatch.setattr(time, "time", lambda: clock[0])
    trigger = KlaviyoRateLimitTrigger(retry_at=1095.0, bucket="reporting", poll_interval=30)
    events = _events(trigger, timeout=5)
    assert slept == [30.0, 30.0, 30.0, 5.0]
    assert len(events) == 1
