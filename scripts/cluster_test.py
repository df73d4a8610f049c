"""`make cluster-test`: flowsync on a real Celery cluster, proven from the Klaviyo sandbox's request log.

Starts, as separate processes: a throwaway PostgreSQL metadata database (``flowsync_cluster_<pid>`` on
127.0.0.1:5432), Redis as Celery broker (own db) and as the shared Klaviyo limiter (another db), the
Klaviyo sandbox (time scale 20, the spec's limits), api-server (the Task SDK's execution API),
scheduler, dag-processor, triggerer and TWO Celery workers (concurrency 2, distinct hostnames).
The ``klaviyo_reporting`` pool is raised to 4 slots so that only the shared Redis limiter keeps the
workers' combined rate within Klaviyo's limits, and ``FLOWSYNC_DEFER_AFTER_SECONDS`` is low so that a
report task facing a long wait defers to the triggerer.

Scenarios (all in one cluster, bounded): the flow sync over 90 days (two series chunks) and the flow
sync per day over a short window (several report tasks at once on both workers); the nightly snapshot
and a multi-chunk history run when those DAGs exist (``--scenarios``).

Checks (exit 1 if any fails): every run succeeded; zero 429s; no sliding window (burst, steady,
daily; scaled) of any bucket held more requests than the spec allows; flows.csv identical to a
``dag.test`` run of the same conf; at least one report task deferred and was resumed after the
triggerer fired; tasks ran on both workers. Every process started is stopped; the database and the
Redis keys are dropped. A short report with the numbers is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from flowsync_dev.airflow_procs import (
    AIRFLOW,
    ROOT,
    Airflow,
    HarnessError,
    LiveServices,
    ProcessGroup,
    Sandbox,
    admitted_by_bucket,
    max_in_window,
    run_dag_test,
    start_live_services,
    start_sandbox,
    wait_until,
    window_violations,
)

TIME_SCALE = 20
PG_ADMIN_DSN = os.environ.get("FLOWSYNC_CLUSTER_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST = os.environ.get("FLOWSYNC_CLUSTER_REDIS", "redis://127.0.0.1:6379")
BROKER_DB = int(os.environ.get("FLOWSYNC_CLUSTER_BROKER_DB", "11"))
LIMITER_DB = int(os.environ.get("FLOWSYNC_CLUSTER_LIMITER_DB", "12"))
WORKERS = ("flowsync-worker-1", "flowsync-worker-2")
DEFER_AFTER_SECONDS = "1.0"
DEFER_LINE = "deferring instead of holding a worker slot"
RESUME_LINE = "Rate-limit wait over for bucket"


@dataclass
class Scenario:
    """One DAG run to trigger on the cluster (and, with ``reference``, on dag.test for the CSV check)."""

    name: str
    dag_id: str
    conf: dict[str, Any]
    reference: bool = False
    run_id: str = ""

    def __post_init__(self) -> None:
        self.run_id = self.run_id or f"cluster__{self.name}__{secrets.token_hex(3)}"


@dataclass
class ClusterReport:
    seconds: dict[str, float] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)
    tasks_per_worker: Counter = field(default_factory=Counter)
    requests: int = 0
    by_bucket: dict[str, int] = field(default_factory=dict)
    peaks: dict[str, str] = field(default_factory=dict)
    http_429: int = 0
    deferred_resumed: list[str] = field(default_factory=list)
    csv_checks: dict[str, str] = field(default_factory=dict)
    leftovers: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        out = ["cluster test: " + ", ".join(f"{k} {v:.0f}s" for k, v in self.seconds.items())]
        out.append("runs: " + ", ".join(f"{k}={v}" for k, v in self.runs.items()))
        out.append("task instances per worker: " + (", ".join(f"{k}={v}" for k, v in
                                                             sorted(self.tasks_per_worker.items())) or "none"))
        out.append(f"Klaviyo requests: {self.requests} ({', '.join(f'{k}={v}' for k, v in self.by_bucket.items())})"
                   f"; 429s: {self.http_429}")
        out += [f"  {bucket}: {peak}" for bucket, peak in self.peaks.items()]
        out.append(f"deferred and resumed after the triggerer fired: {len(self.deferred_resumed)} "
                   f"{self.deferred_resumed[:8]}")
        out += [f"{name}: {verdict}" for name, verdict in self.csv_checks.items()]
        out.append(f"leftover processes: {self.leftovers or 'none'}")
        out += [f"FAIL: {f}" for f in self.failures]
        out.append("CLUSTER TEST " + ("PASSED" if self.ok else "FAILED"))
        return out


# --------------------------------------------------------------------------- scenarios
def default_scenarios(sandbox: Sandbox, names: list[str]) -> list[Scenario]:
    today = date.fromisoformat(sandbox.info["today"]) if sandbox.info.get("today") else date.today()
    end = today - timedelta(days=2)
    out: list[Scenario] = []
    if "flows90" in names:
        out.append(Scenario("flows90", "klaviyo_flow_sync", {
            "format": "csv", "start": (end - timedelta(days=89)).isoformat(), "end": end.isoformat(),
            "limitFlows": 10}, reference=True))
    if "perday" in names:
        out.append(Scenario("perday", "klaviyo_flow_sync", {
            "format": "csv", "start": (end - timedelta(days=5)).isoformat(), "end": end.isoformat(),
            "reportStrategy": "values-per-day"}, reference=True))
    if "nightly" in names and (ROOT / "dags" / "klaviyo_snapshot_nightly.py").exists():
        out.append(Scenario("nightly", "klaviyo_snapshot_nightly", {}))
    if "history" in names and (ROOT / "dags" / "klaviyo_snapshot_history.py").exists():
        out.append(Scenario("history", "klaviyo_snapshot_history", {
            "start": (end - timedelta(days=150)).isoformat(), "end": end.isoformat()}))
    return out


# --------------------------------------------------------------------------- infrastructure
def create_database(name: str) -> str:
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN_DSN, connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN_DSN, connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    conn.close()


def clear_redis(db: int, match: str = "*") -> int:
    """Delete the harness's keys (the broker db and the limiter keys of the sandbox account)."""
    import redis

    conn = redis.Redis.from_url(f"{REDIS_HOST}/{db}")
    try:
        keys = list(conn.scan_iter(match=match))
        for key in keys:
            conn.delete(key)
        return len(keys)
    finally:
        conn.close()


def reference_csvs(scenarios: list[Scenario], sandbox: Sandbox, work: Path) -> dict[str, str]:
    """flows.csv of each reference scenario from dag.test on a SQLite Airflow (one process, no Celery)."""
    ref = Airflow(home=work / "reference", group=ProcessGroup(work / "reference-logs"),
                  sql_alchemy_conn=f"sqlite:///{work / 'reference' / 'airflow.db'}", extra_env={
                      "AIRFLOW_CONN_KLAVIYO_DEFAULT": sandbox.connection_json(), "KLAVIYO_ENABLE": "true",
                      "FLOWSYNC_HOME": str(work / "reference-flowsync"),
                      "FLOWSYNC_LIMITER_URL": f"sqlite:///{work / 'reference-limiter.db'}"})
    ref.home.mkdir(parents=True, exist_ok=True)
    ref.setup()
    out: dict[str, str] = {}
    for sc in scenarios:
        if not sc.reference:
            continue
        before = set((work / "reference-flowsync").rglob("summary.json"))
        result = run_dag_test(sc.dag_id, sc.conf, ref.env(), timeout=300)
        if not result.ok:
            raise HarnessError(f"reference dag.test of {sc.name} failed:\n{result.output[-3000:]}")
        summaries = sorted(set((work / "reference-flowsync").rglob("summary.json")) - before)
        if len(summaries) != 1:
            raise HarnessError(f"reference run {sc.name}: expected one summary.json, found {summaries}")
        out[sc.name] = Path(json.loads(summaries[0].read_text())["files"]["data"]).read_text()
    ref.dispose()
    return out


def start_workers(airflow: Airflow, group: ProcessGroup) -> None:
    for name in WORKERS:
        airflow.group.start(name, [AIRFLOW, "celery", "worker", "--concurrency", "2", "--celery-hostname",
                                   f"{name}@%h", "--skip-serve-logs", "--pid", str(airflow.home / f"{name}.pid")],
                            airflow.env(FLOWSYNC_WORKER_NAME=name,
                                        AIRFLOW__CORE__HOSTNAME_CALLABLE="flowsync_dev.airflow_procs.worker_hostname"))
    for proc in group.procs:
        if proc.name in WORKERS:
            wait_until(lambda p=proc: " ready." in p.log_tail(100_000), 120, f"{proc.name} to be ready",
                       interval=1, check=group.check_alive)


# --------------------------------------------------------------------------- checks
def check_rates(report: ClusterReport, sandbox: Sandbox) -> None:
    log = sandbox.requests()
    report.requests = len(log)
    report.http_429 = sum(1 for r in log if r["status"] == 429)
    report.by_bucket = dict(Counter(str(r["bucket"]) for r in log))
    if report.http_429:
        report.failures.append(f"{report.http_429} requests were answered 429")
    faults = [r for r in log if r.get("fault")]
    if faults:
        report.failures.append(f"{len(faults)} injected faults (the sandbox should run without faults)")
    for violation in window_violations(log, TIME_SCALE):
        report.failures.append(f"rate above the limit: {violation}")
    for bucket, times in admitted_by_bucket(log).items():
        burst = max_in_window(times, 1.0 / TIME_SCALE - 0.002)
        steady = max_in_window(times, 60.0 / TIME_SCALE - 0.002)
        report.peaks[bucket] = f"{len(times)} requests, peak {burst}/burst window, {steady}/steady window"


def check_tasks(report: ClusterReport, airflow: Airflow, scenarios: list[Scenario]) -> None:
    for sc in scenarios:
        for ti in airflow.task_instances(sc.dag_id, sc.run_id):
            if ti["hostname"]:
                report.tasks_per_worker[str(ti["hostname"])] += 1
            if ti["state"] not in ("success", "skipped"):
                report.failures.append(f"{sc.name}: {ti['task_id']}[{ti['map_index']}] ended {ti['state']}")
    unknown = set(report.tasks_per_worker) - set(WORKERS)
    if unknown:
        report.failures.append(f"task instances on unexpected hosts: {sorted(unknown)}")
    idle = [w for w in WORKERS if report.tasks_per_worker[w] == 0]
    if idle:
        report.failures.append(f"no task ran on {idle}")


def _events(path: Path) -> list[tuple[str, str]]:
    """(timestamp, event) of a task/trigger log file (Airflow 3 writes JSON lines)."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append((str(record.get("timestamp", "")), str(record.get("event", ""))))
    return out


def check_deferrals(report: ClusterReport, airflow: Airflow) -> None:
    """A task log with the whole cycle: deferred → the triggerer fired (its own log) → resumed → success."""
    for path in sorted((airflow.home / "logs").rglob("attempt=*.log")):
        events = _events(path)
        deferred = [t for t, e in events if DEFER_LINE in e]
        resumed = [t for t, e in events if RESUME_LINE in e]
        if not deferred or not resumed:
            continue
        fired = [t for trig in path.parent.glob(path.name + ".trigger.*.log")
                 for t, e in _events(trig) if e == "Trigger fired event"]
        if any(deferred[0] < f < resumed[-1] for f in fired):
            parts = {k: v for k, _, v in (p.partition("=") for p in path.relative_to(airflow.home / "logs").parts)}
            run = parts.get("run_id", "?").split("__")[1] if "__" in parts.get("run_id", "") else parts.get("run_id")
            report.deferred_resumed.append(f"{run}:{parts.get('task_id')}[{parts.get('map_index')}]")
    if not report.deferred_resumed:
        report.failures.append("no report task deferred, was fired by the triggerer and resumed")


def check_snapshot_runs(report: ClusterReport, airflow: Airflow, scenarios: list[Scenario],
                        live: LiveServices | None) -> None:
    """History: several report chunks; live runs: one snapshot each, the history one for exactly its range."""
    import psycopg2

    for sc in scenarios:
        if sc.name == "history":
            chunks = [t for t in airflow.task_instances(sc.dag_id, sc.run_id) if t["task_id"] == "report"]
            report.csv_checks["history"] = f"{len(chunks)} report chunks"
            if len(chunks) < 2:
                report.failures.append(f"history: expected several report chunks, found {len(chunks)}")
    if live is None:
        return
    conn = psycopg2.connect(live.pg_dsn, options=f"-c search_path={live.pg_schema}", connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT window_start, window_end FROM snapshots")
            stored = {(str(a)[:10], str(b)[:10]) for a, b in cur.fetchall()}
    finally:
        conn.close()
    live_runs = [sc for sc in scenarios if sc.name in ("nightly", "history")]
    if len(stored) != len(live_runs):
        report.failures.append(f"expected {len(live_runs)} snapshots, found {sorted(stored)}")
    for sc in live_runs:
        if sc.name == "history" and (sc.conf["start"], sc.conf["end"]) not in stored:
            report.failures.append(f"no snapshot for the history range {sc.conf['start']}..{sc.conf['end']}")
    report.csv_checks["snapshots"] = f"{len(stored)} in the dashboard DB {sorted(stored)}"


def check_csvs(report: ClusterReport, airflow: Airflow, scenarios: list[Scenario], refs: dict[str, str]) -> None:
    for sc in scenarios:
        if sc.name not in refs:
            continue
        built = [x["value"] for x in airflow.xcoms(sc.dag_id, sc.run_id) if isinstance(x["value"], dict)
                 and isinstance(x["value"].get("files"), dict) and x["value"]["files"].get("data")]
        if len(built) != 1:
            report.failures.append(f"{sc.name}: expected one build result with files.data, found {len(built)}")
            continue
        text = Path(built[0]["files"]["data"]).read_text()
        same = text == refs[sc.name]
        rows = len(text.splitlines()) - 1
        report.csv_checks[f"{sc.name} flows.csv"] = (f"identical to dag.test ({rows} rows)" if same
                                                     else "DIFFERS from dag.test")
        if not same:
            report.failures.append(f"{sc.name}: flows.csv differs from the dag.test run")


# --------------------------------------------------------------------------- main
def run_cluster(names: list[str], timeout: float, keep: bool = False) -> ClusterReport:
    started = time.monotonic()
    report = ClusterReport()
    work = Path(tempfile.mkdtemp(prefix="flowsync-cluster-"))
    group = ProcessGroup(work / "proc-logs")
    db_name = f"flowsync_cluster_{os.getpid()}"
    airflow: Airflow | None = None
    live: LiveServices | None = None
    db_created = False
    try:
        sandbox = start_sandbox(group, time_scale=TIME_SCALE)
        account_key_match = "flowsync:limiter:*"
        clear_redis(BROKER_DB)
        clear_redis(LIMITER_DB, account_key_match)
        scenarios = default_scenarios(sandbox, names)
        if any(sc.name in ("nightly", "history") for sc in scenarios):
            live = start_live_services(group, tag=f"cl{os.getpid()}")
        conn = create_database(db_name)
        db_created = True
        env = {
            "AIRFLOW__CELERY__BROKER_URL": f"{REDIS_HOST}/{BROKER_DB}",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + conn.replace("+psycopg2", ""),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW_CONN_KLAVIYO_DEFAULT": sandbox.connection_json(),
            "KLAVIYO_ENABLE": "true",
            "FLOWSYNC_HOME": str(work / "flowsync"),
            "FLOWSYNC_LIMITER_URL": f"{REDIS_HOST}/{LIMITER_DB}",
            "FLOWSYNC_DEFER_AFTER_SECONDS": DEFER_AFTER_SECONDS,
            **(live.env() if live else {}),
        }
        airflow = Airflow(home=work / "airflow", group=group, sql_alchemy_conn=conn, executor="CeleryExecutor",
                          parallelism=4, extra_env=env)
        airflow.home.mkdir(parents=True)
        # The reference runs (dag.test, SQLite) overlap the cluster's Postgres migration.
        with ThreadPoolExecutor(max_workers=1) as pool:
            refs_future = pool.submit(reference_csvs, scenarios, sandbox, work)
            airflow.setup()
            airflow.cli("pools", "set", "klaviyo_reporting", "4",
                        "Raised for the cluster test: only the shared limiter paces the workers")
            airflow.cli("dags", "reserialize")
            refs = refs_future.result()
        report.seconds["setup+reference"] = time.monotonic() - started
        airflow.start_components()
        start_workers(airflow, group)
        report.seconds["cluster up"] = time.monotonic() - started - report.seconds["setup+reference"]
        t0 = time.monotonic()
        for dag_id in sorted({sc.dag_id for sc in scenarios}):
            airflow.cli("dags", "unpause", dag_id)
        for sc in scenarios:
            airflow.cli("dags", "trigger", sc.dag_id, "--run-id", sc.run_id, "--conf", json.dumps(sc.conf))

        def finished() -> bool:
            states = {sc.name: next((r["state"] for r in airflow.dag_runs(sc.dag_id) if r["run_id"] == sc.run_id),
                                    "missing") for sc in scenarios}
            report.runs = states
            return all(s in ("success", "failed") for s in states.values())

        wait_until(finished, timeout, "the cluster runs", interval=3, check=group.check_alive)
        report.seconds["runs"] = time.monotonic() - t0
        for name, state in report.runs.items():
            if state != "success":
                report.failures.append(f"run {name} ended {state}")
        check_tasks(report, airflow, scenarios)
        check_rates(report, sandbox)
        check_deferrals(report, airflow)
        check_csvs(report, airflow, scenarios, refs)
        check_snapshot_runs(report, airflow, scenarios, live)
    except HarnessError as exc:
        report.failures.append(str(exc))
    finally:
        if airflow is not None:
            airflow.dispose()
        report.leftovers = group.stop()
        if report.leftovers:
            report.failures.append(f"processes left running: {report.leftovers}")
        if db_created:
            drop_database(db_name)
        if live is not None:
            live.cleanup()
        clear_redis(BROKER_DB)
        clear_redis(LIMITER_DB, "flowsync:limiter:*")
        report.seconds["total"] = time.monotonic() - started
        if report.failures:
            for proc in group.procs:
                tail = proc.log_tail(1500)
                if tail.strip():
                    print(f"----- {proc.name} (last lines) -----\n{tail}", file=sys.stderr)
        if keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--scenarios", default="flows90,perday,nightly,history",
                   help="comma-separated: flows90, perday, nightly, history (missing DAGs are skipped)")
    p.add_argument("--timeout", type=float, default=420, help="seconds allowed for the triggered runs")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, outputs)")
    args = p.parse_args(argv)
    report = run_cluster([s.strip() for s in args.scenarios.split(",") if s.strip()], args.timeout, args.keep)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
