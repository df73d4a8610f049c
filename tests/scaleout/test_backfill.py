"""`airflow backfill create` on real Airflow processes (scheduler, dag-processor, triggerer, api-server).

Runs scripts/backfill_test.py's harness in-process: a throwaway SQLite/LocalExecutor Airflow, the
Klaviyo sandbox, three daily intervals. The nightly snapshot DAG is used when it exists (with the
storage/dashboard test servers and a Postgres schema); until then a probe DAG proves the harness.
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from backfill_test import NIGHTLY, PROBE, find_windows, run_backfill, write_probe_dag

ROOT = Path(__file__).resolve().parents[2]


def test_find_windows_walks_nested_xcoms():
    value = {"plan": {"window": {"start": "2026-01-01", "end": "2026-01-03T00:00:00"}},
             "chunks": [{"window": {"start": "2026-01-01", "end": "2026-01-02"}}], "window": "not a dict"}
    assert find_windows(value) == [{"start": "2026-01-01", "end": "2026-01-03"},
                                   {"start": "2026-01-01", "end": "2026-01-02"}]
    assert find_windows([1, "x", None]) == []


@pytest.mark.timeout(420)
def test_backfill_creates_one_successful_run_per_interval():
    nightly = (ROOT / "dags" / f"{NIGHTLY}.py").exists()
    to_date = date.today() - timedelta(days=3)
    from_date = to_date - timedelta(days=2)
    with tempfile.TemporaryDirectory(prefix="flowsync-probe-dags-") as probe:
        dags = ROOT / "dags" if nightly else write_probe_dag(Path(probe))
        report = run_backfill(NIGHTLY if nightly else PROBE, from_date, to_date, dags_folder=dags, live=nightly,
                              timeout=300)
    print("\n".join(report.lines()))
    assert report.ok, "\n".join(report.lines())
    assert report.expected_runs >= 2 and len(report.runs) == report.expected_runs
    assert {r["state"] for r in report.runs} == {"success"}
    assert report.leftovers == []
    days = [date.fromisoformat(str(r["logical_date"])[:10]) for r in report.runs]
    assert days == [days[0] + timedelta(days=i) for i in range(len(days))]  # one run per interval
    assert from_date <= days[0] and days[-1] <= to_date
    if nightly:
        assert report.snapshots == len(report.runs)
