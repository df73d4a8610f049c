"""Process-harness helpers shared by the scale-out harnesses (cluster, backfill) and their tests.

Everything here starts real OS processes (Airflow components, the Klaviyo sandbox, the storage and
dashboard test servers) in their own process groups, with logs in files, and stops them by group so
no grandchild (task runners, Celery pool processes, gunicorn/uvicorn workers) outlives the harness.
It also holds the sliding-window check that proves, from the sandbox's request log alone, that the
combined request rate of every process stayed within Klaviyo's published limits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the checkout: dev/flowsync_dev/airflow_procs.py (make installs it -e)
BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")

# Settings that must never leak from the developer's shell into a throwaway Airflow.
_SCRUB_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "FLOWSYNC_", "KLAVIYO_", "SUPABASE_")
_SCRUB_NAMES = ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "PYTEST_CURRENT_TEST", "SHOPIFY_PLACED_ORDER_METRIC_ID")


class HarnessError(RuntimeError):
    """A harness step failed (a process did not start, a run did not finish in time...)."""


def free_port() -> int:
    """A free loopback TCP port (closed again; a tiny race is acceptable for test servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without Airflow/flowsync settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_SCRUB_PREFIXES) and k not in _SCRUB_NAMES}
    env.update(extra or {})
    return env


@dataclass
class Proc:
    """One started process (own session = own process group) with its log file."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class ProcessGroup:
    """Starts processes in new sessions and stops every one of them (and their descendants)."""

    log_dir: Path
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> Proc:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        handle = open(log_path, "ab")  # noqa: SIM115 - the child owns the descriptor after Popen
        try:
            popen = subprocess.Popen(list(argv), env=dict(env), cwd=str(cwd or ROOT), stdout=handle,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            handle.close()
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        return proc

    def wait_for_line(self, proc: Proc, prefix: str, timeout: float = 60.0) -> str:
        """The value of the first ``PREFIX=value`` line the process writes to its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in proc.log_tail(200_000).splitlines():
                if line.startswith(prefix + "="):
                    return line.split("=", 1)[1].strip()
            if not proc.alive():
                raise HarnessError(f"{proc.name} exited ({proc.popen.returncode}) before printing {prefix}:\n"
                                   f"{proc.log_tail()}")
            time.sleep(0.1)
        raise HarnessError(f"{proc.name} did not print {prefix} within {timeout:.0f}s:\n{proc.log_tail()}")

    def check_alive(self) -> None:
        for proc in self.procs:
            if not proc.alive():
                raise HarnessError(f"{proc.name} died (exit {proc.popen.returncode}):\n{proc.log_tail()}")

    def _descendants(self) -> set[int]:
        import psutil

        pids: set[int] = set()
        for proc in self.procs:
            try:
                parent = psutil.Process(proc.pid)
                pids.add(parent.pid)
                pids.update(child.pid for child in parent.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        # Daemonized grandchildren leave the tree but stay in the session/process group.
        pgids = {proc.pid for proc in self.procs}
        for other in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(other.pid) in pgids:
                    pids.add(other.pid)
            except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
                continue
        return pids

    def stop(self, grace: float = 20.0) -> list[int]:
        """SIGTERM every group (in reverse start order), then SIGKILL; returns pids still alive (should be [])."""
        import psutil

        tracked = self._descendants()
        for proc in reversed(self.procs):
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in reversed(self.procs):
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
        # Grandchildren (task runners, pool workers) get the rest of the grace, then SIGKILL.
        alive = [p for p in tracked if psutil.pid_exists(p) and not _is_zombie(p)]
        _, still = psutil.wait_procs([psutil.Process(p) for p in alive if psutil.pid_exists(p)],
                                     timeout=max(0.5, deadline - time.monotonic()))
        for leftover in still:
            try:
                leftover.kill()
            except psutil.NoSuchProcess:
                continue
        for proc in self.procs:
            _signal_group(proc.pid, signal.SIGKILL)
            try:
                proc.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                continue
        time.sleep(0.2)
        return sorted(p for p in tracked if psutil.pid_exists(p) and not _is_zombie(p))


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return


def _is_zombie(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 1.0,
               check: Callable[[], None] | None = None) -> Any:
    """Poll ``predicate`` until truthy (returned) or raise HarnessError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=3).status_code < 500
    except httpx.HTTPError:
        return False


# --------------------------------------------------------------------------- test servers
@dataclass
class Sandbox:
    url: str
    info: dict[str, Any]

    @property
    def api_key(self) -> str:
        return str(self.info["api_key"])

    def requests(self) -> list[dict[str, Any]]:
        import httpx

        return list(httpx.get(f"{self.url}/__sandbox__/requests", timeout=30).json()["requests"])

    def connection_json(self) -> str:
        """AIRFLOW_CONN_KLAVIYO_DEFAULT for this sandbox; the client's time scale travels in the extra."""
        return json.dumps({"conn_type": "klaviyo", "host": self.url, "password": self.api_key,
                           "extra": {"time_scale": self.info["time_scale"]}})


def start_sandbox(group: ProcessGroup, *, seed: int = 7, time_scale: float = 20, name: str = "sandbox",
                  extra_args: Sequence[str] = ()) -> Sandbox:
    """The Klaviyo sandbox as a separate process (``python -m flowsync_dev.sandbox``)."""
    import httpx

    proc = group.start(name, [sys.executable, "-u", "-m", "flowsync_dev.sandbox", "--port", "0",
                              "--seed", str(seed), "--time-scale", str(time_scale), *extra_args], clean_env())
    url = group.wait_for_line(proc, "FLOWSYNC_SANDBOX_URL")
    return Sandbox(url, httpx.get(f"{url}/__sandbox__/info", timeout=10).json())


def start_storage_server(group: ProcessGroup, service_key: str, buckets: Iterable[str]) -> str:
    """The Supabase-Storage-compatible test server; returns its URL."""
    argv = [sys.executable, "-u", "-m", "flowsync_dev.storage_server", "--port", "0",
            "--service-key", service_key]
    for bucket in buckets:
        argv += ["--bucket", bucket]
    proc = group.start("storage", argv, clean_env())
    return group.wait_for_line(proc, "FLOWSYNC_STORAGE_URL")


def start_dashboard_server(group: ProcessGroup, argv_tail: Sequence[str],
                           marker: str = "FLOWSYNC_DASHBOARD_URL") -> str:
    """The dashboard snapshot-processor test server; returns the URL it prints."""
    proc = group.start("dashboard", [sys.executable, "-u", "-m", "flowsync_dev.dashboard_server",
                                     *argv_tail], clean_env())
    return group.wait_for_line(proc, marker)


@dataclass
class LiveServices:
    """Storage + dashboard test servers and a throwaway Postgres schema for live (upload/snapshot) runs."""

    storage_url: str
    service_key: str
    dashboard_url: str
    admin_secret: str
    pg_dsn: str
    pg_schema: str
    bucket: str = "data-ingest"

    def pg_conn_json(self) -> str:
        import psycopg2.extensions

        parts = psycopg2.extensions.parse_dsn(self.pg_dsn)
        fields: dict[str, Any] = {"conn_type": "postgres", "host": parts.get("host", "127.0.0.1"),
                                  "port": int(parts.get("port", 5432)), "login": parts.get("user", "postgres"),
                                  "schema": parts.get("dbname", "test"),
                                  "extra": {"options": f"-c search_path={self.pg_schema}"}}
        if parts.get("password"):
            fields["password"] = parts["password"]
        return json.dumps(fields)

    def values(self) -> dict[str, str]:
        """Placeholders for harness ``--env`` values."""
        return {"storage_url": self.storage_url, "service_key": self.service_key,
                "dashboard_url": self.dashboard_url, "admin_secret": self.admin_secret,
                "pg_conn_json": self.pg_conn_json(), "pg_schema": self.pg_schema}

    def env(self) -> dict[str, str]:
        """The connections/env the live steps read (names as in docs and tests/operators)."""
        return {
            "AIRFLOW_CONN_SUPABASE_DEFAULT": json.dumps({"conn_type": "supabase", "host": self.storage_url,
                                                         "password": self.service_key}),
            "AIRFLOW_CONN_FLOWSYNC_DASHBOARD": json.dumps({"conn_type": "http", "host": self.dashboard_url,
                                                           "password": self.admin_secret}),
            "AIRFLOW_CONN_FLOWSYNC_SNAPSHOTS_DB": self.pg_conn_json(),
            "DATA_INGEST_BUCKET": self.bucket,
        }

    def cleanup(self) -> None:
        import psycopg2

        conn = psycopg2.connect(self.pg_dsn, connect_timeout=5)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{self.pg_schema}" CASCADE')
        conn.close()


def start_live_services(group: ProcessGroup, tag: str,
                        pg_dsn: str = "postgresql://postgres@127.0.0.1:5432/test") -> LiveServices:
    """Storage server (bucket data-ingest), dashboard server on it, snapshots table in a new schema."""
    import secrets

    import psycopg2

    from flowsync_provider.snapshots import SnapshotStore

    schema = f"flowsync_{tag}_{secrets.token_hex(4)}"
    conn = psycopg2.connect(pg_dsn, connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
    conn.close()
    schema_dsn = f"{pg_dsn}?options=-csearch_path%3D{schema}"
    SnapshotStore(lambda: psycopg2.connect(schema_dsn)).ensure_schema()
    service_key, admin_secret = "sk_" + secrets.token_hex(16), "adm_" + secrets.token_hex(16)
    storage_url = start_storage_server(group, service_key, ["data-ingest"])
    dashboard_url = start_dashboard_server(group, ["--port", "0", "--admin-secret", admin_secret, "--bucket",
                                                   "data-ingest", "--storage-url", storage_url, "--service-key",
                                                   service_key, "--pg-dsn", schema_dsn])
    return LiveServices(storage_url, service_key, dashboard_url, admin_secret, pg_dsn, schema)


# --------------------------------------------------------------------------- rate checks
@dataclass(frozen=True)
class WindowViolation:
    bucket: str
    window_seconds: float
    limit: int
    count: int
    at: float

    def __str__(self) -> str:
        return (f"bucket {self.bucket}: {self.count} requests within {self.window_seconds:.3f}s "
                f"(limit {self.limit}) ending at t={self.at:.3f}")


def admitted_by_bucket(requests: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Arrival times (sandbox monotonic ``t``) of requests the server counted, per bucket.

    A 429 consumes nothing on the server, so only non-429 responses count against the limits.
    """
    out: dict[str, list[float]] = defaultdict(list)
    for req in requests:
        if req.get("bucket") and req.get("status") != 429:
            out[str(req["bucket"])].append(float(req["t"]))
    for times in out.values():
        times.sort()
    return dict(out)


def bucket_limits(requests: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The spec's RateLimit of every bucket seen in the log (from a method/path of that bucket)."""
    from flowsync_provider.core.limits import limits_for

    out: dict[str, Any] = {}
    for req in requests:
        bucket = req.get("bucket")
        if bucket and bucket not in out:
            out[str(bucket)] = limits_for(str(req["method"]), str(req["path"]))[1]
    return out


def window_violations(requests: Sequence[Mapping[str, Any]], time_scale: float,
                      tolerance: float = 0.002) -> list[WindowViolation]:
    """Every sliding window (burst, steady, daily; scaled) in which more requests arrived than allowed.

    A window of real length W ending at request i holds the requests with ``t > t_i - W``; the server
    uses the same rule. ``tolerance`` shortens W slightly for clock granularity.
    """
    limits = bucket_limits(requests)
    found: list[WindowViolation] = []
    for bucket, times in admitted_by_bucket(requests).items():
        for limit, seconds in limits[bucket].windows():
            real = seconds / time_scale - tolerance
            lo = 0
            for hi, t in enumerate(times):
                while times[lo] <= t - real:
                    lo += 1
                count = hi - lo + 1
                if count > limit:
                    found.append(WindowViolation(bucket, real, limit, count, t))
                    break
    return found


def max_in_window(times: Sequence[float], window: float) -> int:
    """The largest number of sorted timestamps inside any half-open window of length ``window``."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# --------------------------------------------------------------------------- a throwaway Airflow
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


@dataclass
class Airflow:
    """A throwaway Airflow 3.3 deployment: its env, CLI, components and metadata DB.

    Airflow 3 tasks talk to the execution API of the api-server (Task SDK), so every deployment here
    runs an api-server; all components share one JWT secret and API secret key.
    """

    home: Path
    group: ProcessGroup
    sql_alchemy_conn: str
    executor: str = "LocalExecutor"
    dags_folder: Path = ROOT / "dags"
    parallelism: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)
    log_ports: tuple[int, int] = field(default_factory=lambda: (free_port(), free_port()))

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self, **more: str) -> dict[str, str]:
        import secrets

        if "_secret" not in self.__dict__:
            self.__dict__["_secret"] = secrets.token_hex(32)
        secret = self.__dict__["_secret"]
        base = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.home / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secret,
            "AIRFLOW__API_AUTH__JWT_SECRET": secret,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
            "AIRFLOW__TRIGGERER__CAPACITY": "50",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            # Log servers on free ports: several harnesses (or a developer's Airflow) may run at once.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_ports[0]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_ports[1]),
        }
        return clean_env({**base, **self.extra_env, **more})

    def cli(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([AIRFLOW, *args], env=self.env(), capture_output=True, text=True, timeout=timeout,
                              cwd=str(ROOT))
        if check and proc.returncode != 0:
            raise HarnessError(f"airflow {' '.join(args[:3])} failed ({proc.returncode}):\n"
                               f"{(proc.stdout + proc.stderr)[-4000:]}")
        return proc

    def setup(self, pools: Path | None = ROOT / "pools.json") -> None:
        """Migrate the metadata DB and import the pools (the README's set-up)."""
        (self.home / "plugins").mkdir(parents=True, exist_ok=True)
        self.cli("db", "migrate", timeout=600)
        if pools is not None:
            self.cli("pools", "import", str(pools))

    def start(self, name: str, *args: str, **env: str) -> Proc:
        return self.group.start(name, [AIRFLOW, *args], self.env(**env))

    def start_components(self, components: Sequence[str] = COMPONENTS) -> None:
        for component in components:
            self.start(component, component)
        wait_until(lambda: http_ok(f"{self.api_url}/api/v2/monitor/health"), 120, "the api-server",
                   check=self.group.check_alive)

    def engine(self):  # noqa: ANN201 - sqlalchemy is imported lazily
        if "_engine" not in self.__dict__:
            from sqlalchemy import create_engine

            self.__dict__["_engine"] = create_engine(self.sql_alchemy_conn)
        return self.__dict__["_engine"]

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        from sqlalchemy import text

        with self.engine().connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(sql), params)]

    def dag_runs(self, dag_id: str, run_type: str | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT id, run_id, run_type, state, logical_date, data_interval_start, data_interval_end, "
               "backfill_id, conf FROM dag_run WHERE dag_id = :dag_id")
        if run_type:
            sql += " AND run_type = :run_type"
        return self.query(sql + " ORDER BY logical_date", dag_id=dag_id, run_type=run_type or "")

    def task_instances(self, dag_id: str, run_id: str | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT task_id, map_index, run_id, state, hostname, try_number, next_method, start_date, end_date "
               "FROM task_instance WHERE dag_id = :dag_id")
        if run_id:
            sql += " AND run_id = :run_id"
        return self.query(sql, dag_id=dag_id, run_id=run_id or "")

    def xcoms(self, dag_id: str, run_id: str, key: str = "return_value") -> list[dict[str, Any]]:
        rows = self.query("SELECT task_id, map_index, value FROM xcom WHERE dag_id = :dag_id AND run_id = :run_id "
                          "AND key = :key", dag_id=dag_id, run_id=run_id, key=key)
        for row in rows:
            value = row["value"]
            if isinstance(value, (bytes, memoryview)):
                value = bytes(value).decode()
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            row["value"] = value
        return rows

    def dispose(self) -> None:
        if "_engine" in self.__dict__:
            self.__dict__.pop("_engine").dispose()


def worker_hostname() -> str:
    """``[core] hostname_callable`` for harness workers: two workers on one machine get distinct names."""
    return os.environ.get("FLOWSYNC_WORKER_NAME") or socket.getfqdn()


# --------------------------------------------------------------------------- dag.test in a fresh process
DAG_RESULT_MARKER = "FLOWSYNC_DAG_RESULT="


def _dag_test_main(dag_id: str, conf_json: str) -> int:
    """Run ``dag.test(run_conf=...)`` here and print the outcome as one JSON line (see run_dag_test)."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag(dag_id)
    if dag is None:
        print("\n" + DAG_RESULT_MARKER + json.dumps({"error": f"DAG {dag_id} not found"}), flush=True)
        return 0
    try:
        dr = dag.test(run_conf=json.loads(conf_json))
    except Exception as exc:  # e.g. the params' JSON schema refused the conf
        print("\n" + DAG_RESULT_MARKER + json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 0
    tasks: dict[str, dict[str, Any]] = {}
    for ti in dr.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        tasks[key] = {"state": str(ti.state), "next_method": ti.next_method, "try_number": ti.try_number}
    print("\n" + DAG_RESULT_MARKER + json.dumps({"state": str(dr.state), "run_id": dr.run_id, "tasks": tasks}),
          flush=True)
    return 0


@dataclass
class DagTestResult:
    state: str
    run_id: str
    tasks: dict[str, dict[str, Any]]
    output: str

    @property
    def ok(self) -> bool:
        return self.state == "success"


def run_dag_test(dag_id: str, conf: Mapping[str, Any], env: Mapping[str, str], timeout: float = 600) -> DagTestResult:
    """``dag.test()`` in a fresh interpreter (no state shared with the caller); raises on a refused run."""
    argv = [sys.executable, "-m", "flowsync_dev.airflow_procs", "dag-test", dag_id, json.dumps(dict(conf))]
    proc = subprocess.run(argv,
                          capture_output=True, text=True, timeout=timeout, env=dict(env), cwd=str(ROOT))
    output = proc.stdout + proc.stderr
    line = next((x for x in reversed(proc.stdout.splitlines()) if x.startswith(DAG_RESULT_MARKER)), None)
    if line is None:
        raise HarnessError(f"dag.test of {dag_id} crashed (exit {proc.returncode}):\n{output[-4000:]}")
    result = json.loads(line[len(DAG_RESULT_MARKER):])
    if "error" in result:
        raise HarnessError(f"dag.test of {dag_id} refused: {result['error']}")
    return DagTestResult(result["state"], result["run_id"], result["tasks"], output)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "dag-test":
        os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        sys.exit(_dag_test_main(sys.argv[2], sys.argv[3]))
    print("usage: python -m flowsync_dev.airflow_procs dag-test DAG_ID CONF_JSON", file=sys.stderr)
    sys.exit(2)
