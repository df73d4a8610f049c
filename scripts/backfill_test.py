"""`make backfill-test`: `airflow backfill create` on a real scheduler (SQLite, LocalExecutor), bounded.

A throwaway AIRFLOW_HOME (SQLite metadata DB, LocalExecutor, parallelism 4), `airflow db migrate`,
`airflow pools import pools.json`, the Klaviyo sandbox (plus the storage/dashboard test servers and a
Postgres schema with --live), then api-server (the Task SDK's execution API), scheduler, dag-processor
and triggerer as separate processes. The DAG is reserialized and unpaused, the scheduler's own cron
scheduling is switched off (only the backfill's runs exist), and

    airflow backfill create --dag-id D --from-date X --to-date Y

must produce one successful run per interval, each covering its own window: every ``window``
({"start", "end"}) found in a run's XComs sits at the same offset from that run's logical date, and
no two runs share a window. Every started process is stopped (process groups) and checked gone.

Usage:
    python scripts/backfill_test.py                      # klaviyo_snapshot_nightly (or the probe DAG if absent)
    python scripts/backfill_test.py --probe              # a tiny scheduled probe DAG (harness self-test)
    python scripts/backfill_test.py --dag-id D --from-date 2026-01-01 --to-date 2026-01-03 --env K=V ...
Exit status 0 only if every assertion held. Env values may use {sandbox_url}, {api_key}, {storage_url},
{service_key}, {dashboard_url}, {admin_secret}, {pg_conn_json}, {pg_schema}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from flowsync_dev.airflow_procs import (
    ROOT,
    Airflow,
    HarnessError,
    LiveServices,
    ProcessGroup,
    start_live_services,
    start_sandbox,
    wait_until,
)

NIGHTLY = "klaviyo_snapshot_nightly"
PROBE = "flowsync_backfill_probe"
TERMINAL = {"success", "failed"}

PROBE_DAG = '''"""Harness self-test: a daily DAG whose only task returns its own window (the run's data interval)."""
from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

with DAG(dag_id="flowsync_backfill_probe", schedule="@daily", catchup=False,
         start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), max_active_runs=2) as dag:

    @task
    def report_window(logical_date=None):
        day = logical_date.date()
        return {"window": {"start": (day - pendulum.duration(days=1)).isoformat(), "end": day.isoformat()},
                "logical_date": logical_date.isoformat()}

    report_window()
'''


@dataclass
class BackfillReport:
    dag_id: str
    expected_runs: int = 0
    snapshots: int | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    windows: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    leftovers: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        out = [f"backfill {self.dag_id}: {len(self.runs)} runs, "
               + ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())]
        for run in self.runs:
            wins = sorted({(w["start"], w["end"]) for w in self.windows.get(run["run_id"], [])})
            out.append(f"  {run['run_id']}: {run['state']}  logical_date={_day(run['logical_date'])}  windows={wins}")
        if self.snapshots is not None:
            out.append(f"snapshots in the dashboard DB: {self.snapshots} (one per run window)")
        out.append(f"leftover processes: {self.leftovers or 'none'}")
        out += [f"FAIL: {f}" for f in self.failures]
        out.append("BACKFILL TEST " + ("PASSED" if self.ok else "FAILED"))
        return out


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return datetime.fromisoformat(str(value).replace(" ", "T")).date()


def find_windows(value: Any) -> list[dict[str, str]]:
    """Every {"start": day, "end": day} found under a ``window`` key anywhere in an XCom value."""
    found: list[dict[str, str]] = []
    if isinstance(value, dict):
        win = value.get("window")
        if isinstance(win, dict) and isinstance(win.get("start"), str) and isinstance(win.get("end"), str):
            found.append({"start": win["start"][:10], "end": win["end"][:10]})
        for key, sub in value.items():
            if key != "window":
                found += find_windows(sub)
    elif isinstance(value, list):
        for sub in value:
            found += find_windows(sub)
    return found


def check_runs(report: BackfillReport, expected_runs: int) -> None:
    """One successful run per interval, each with its own window at one fixed offset from its logical date."""
    runs = report.runs
    if expected_runs < 1:
        report.failures.append("the backfill created no runs")
    if len(runs) != expected_runs:
        report.failures.append(f"expected {expected_runs} backfill runs, found {len(runs)}")
    offsets: set[tuple[int, int]] = set()
    seen: dict[tuple[str, str], str] = {}
    for run in runs:
        if run["state"] != "success":
            report.failures.append(f"run {run['run_id']} ended {run['state']}")
        wins = {(w["start"], w["end"]) for w in report.windows.get(run["run_id"], [])}
        if not wins:
            report.failures.append(f"run {run['run_id']} returned no window in its XComs")
            continue
        if len(wins) != 1:
            report.failures.append(f"run {run['run_id']} covers several windows: {sorted(wins)}")
        logical = _day(run["logical_date"])
        for start, end in wins:
            offsets.add(((date.fromisoformat(start) - logical).days, (date.fromisoformat(end) - logical).days))
            if (start, end) in seen and seen[(start, end)] != run["run_id"]:
                report.failures.append(f"runs {seen[(start, end)]} and {run['run_id']} share window {start}..{end}")
            seen[(start, end)] = run["run_id"]
    if len(offsets) > 1:
        report.failures.append(f"windows are not at one offset from the runs' logical dates: {sorted(offsets)}")


def check_snapshots(report: BackfillReport, live: LiveServices) -> None:
    """Live runs: the dashboard database holds one snapshot per run, for exactly that run's window."""
    import psycopg2

    conn = psycopg2.connect(live.pg_dsn, options=f"-c search_path={live.pg_schema}", connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT window_start, window_end FROM snapshots")
            stored = sorted((str(a)[:10], str(b)[:10]) for a, b in cur.fetchall())
    finally:
        conn.close()
    wanted = sorted({(w["start"], w["end"]) for wins in report.windows.values() for w in wins})
    report.snapshots = len(stored)
    if stored != wanted:
        report.failures.append(f"snapshots in the dashboard DB {stored} != the runs' windows {wanted}")


def run_backfill(dag_id: str, from_date: date, to_date: date, *, dags_folder: Path = ROOT / "dags",
                 env: dict[str, str] | None = None, live: bool = False, time_scale: float = 20,
                 timeout: float = 360, keep: bool = False, max_active_runs: int = 2,
                 dag_run_conf: dict[str, Any] | None = None) -> BackfillReport:
    """Set up a throwaway Airflow, run the backfill on real processes, check it, stop everything."""
    started = time.monotonic()
    report = BackfillReport(dag_id)
    home = Path(tempfile.mkdtemp(prefix="flowsync-backfill-"))
    group = ProcessGroup(home / "proc-logs")
    live_services: LiveServices | None = None
    airflow = None
    try:
        sandbox = start_sandbox(group, time_scale=time_scale)
        values = {"sandbox_url": sandbox.url, "api_key": sandbox.api_key}
        if live:
            live_services = start_live_services(group, tag=f"bf{os.getpid()}")
            values.update(live_services.values())
        flowsync_env = {
            "AIRFLOW_CONN_KLAVIYO_DEFAULT": sandbox.connection_json(),
            "KLAVIYO_ENABLE": "true",
            "FLOWSYNC_HOME": str(home / "flowsync"),
            "FLOWSYNC_LIMITER_URL": f"sqlite:///{home / 'limiter.db'}",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the backfill creates runs
            **(live_services.env() if live_services else {}),
        }
        flowsync_env.update({k: v.format(**values) for k, v in (env or {}).items()})
        airflow = Airflow(home=home, group=group, sql_alchemy_conn=f"sqlite:///{home / 'airflow.db'}",
                          dags_folder=dags_folder, parallelism=4, extra_env=flowsync_env)
        airflow.setup()
        airflow.cli("dags", "reserialize")
        report.seconds["setup"] = time.monotonic() - started
        airflow.start_components()
        airflow.cli("dags", "unpause", dag_id)
        t0 = time.monotonic()
        args = ["backfill", "create", "--dag-id", dag_id, "--from-date", from_date.isoformat(),
                "--to-date", to_date.isoformat(), "--max-active-runs", str(max_active_runs)]
        if dag_run_conf:
            args += ["--dag-run-conf", json.dumps(dag_run_conf)]
        airflow.cli(*args)
        backfill = airflow.query("SELECT id FROM backfill WHERE dag_id = :d", d=dag_id)
        if len(backfill) != 1:
            raise HarnessError(f"expected one backfill of {dag_id}, found {len(backfill)}")
        expected = len(airflow.query("SELECT dag_run_id FROM backfill_dag_run WHERE backfill_id = :b "
                                     "AND dag_run_id IS NOT NULL", b=backfill[0]["id"]))
        report.expected_runs = expected

        def finished() -> bool:
            done = airflow.query("SELECT completed_at FROM backfill WHERE id = :b", b=backfill[0]["id"])
            runs = airflow.dag_runs(dag_id, "backfill")
            return bool(done[0]["completed_at"]) and all(r["state"] in TERMINAL for r in runs)

        wait_until(finished, timeout, f"the {expected} backfill runs of {dag_id}", interval=2,
                   check=group.check_alive)
        report.seconds["backfill"] = time.monotonic() - t0
        report.runs = airflow.dag_runs(dag_id, "backfill")
        for run in report.runs:
            report.windows[run["run_id"]] = [w for x in airflow.xcoms(dag_id, run["run_id"])
                                             for w in find_windows(x["value"])]
            if run["state"] != "success":
                bad = [t for t in airflow.task_instances(dag_id, run["run_id"]) if t["state"] != "success"]
                report.failures.append(f"{run['run_id']} task states: "
                                       + ", ".join(f"{t['task_id']}[{t['map_index']}]={t['state']}" for t in bad))
        check_runs(report, expected)
        if live_services is not None:
            check_snapshots(report, live_services)
    except HarnessError as exc:
        report.failures.append(str(exc))
    finally:
        if airflow is not None:
            airflow.dispose()
        if live_services is not None:
            live_services.cleanup()
        report.leftovers = group.stop()
        if report.leftovers:
            report.failures.append(f"processes left running: {report.leftovers}")
        report.seconds["total"] = time.monotonic() - started
        if report.failures and not keep:
            for proc in group.procs:
                tail = proc.log_tail(1500)
                if tail.strip():
                    print(f"----- {proc.name} (last lines) -----\n{tail}", file=sys.stderr)
        if keep:
            print(f"kept {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    return report


def write_probe_dag(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "flowsync_backfill_probe.py").write_text(PROBE_DAG)
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--dag-id", default=None, help=f"default {NIGHTLY} when it exists, else the probe DAG")
    p.add_argument("--probe", action="store_true", help="run the throwaway probe DAG (harness self-test)")
    p.add_argument("--from-date", type=date.fromisoformat, default=None)
    p.add_argument("--to-date", type=date.fromisoformat, default=None)
    p.add_argument("--days", type=int, default=3, help="runs when no dates are given (ending 3 days ago)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--conf", default=None, help="--dag-run-conf JSON for every backfill run")
    p.add_argument("--live", action="store_true", help="start storage + dashboard test servers and a Postgres schema")
    p.add_argument("--timeout", type=float, default=360, help="seconds allowed for the backfill runs")
    p.add_argument("--time-scale", type=float, default=20)
    p.add_argument("--keep", action="store_true", help="keep the throwaway AIRFLOW_HOME")
    args = p.parse_args(argv)

    dags_folder = ROOT / "dags"
    dag_id = args.dag_id or (NIGHTLY if (ROOT / "dags" / f"{NIGHTLY}.py").exists() and not args.probe else PROBE)
    probe_dir = None
    if args.probe or dag_id == PROBE:
        probe_dir = Path(tempfile.mkdtemp(prefix="flowsync-probe-dags-"))
        dags_folder = write_probe_dag(probe_dir)
        dag_id = PROBE
    live = args.live or (dag_id == NIGHTLY and not args.probe)
    to_date = args.to_date or (date.today() - timedelta(days=3))
    from_date = args.from_date or (to_date - timedelta(days=args.days - 1))
    env = dict(item.split("=", 1) for item in args.env)
    try:
        report = run_backfill(dag_id, from_date, to_date, dags_folder=dags_folder, env=env, live=live,
                              time_scale=args.time_scale, timeout=args.timeout, keep=args.keep,
                              dag_run_conf=json.loads(args.conf) if args.conf else None)
    finally:
        if probe_dir is not None:
            shutil.rmtree(probe_dir, ignore_errors=True)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
