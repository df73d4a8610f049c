"""End-to-end fixtures: run real DAGs with ``dag.test()`` on the SQLite metadata DB against the sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> None:
    """`make test` migrates the DB first; a direct pytest run gets it here."""
    home = Path(os.environ["AIRFLOW_HOME"])
    if not (home / "airflow.db").exists():
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                       capture_output=True)


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag


@dataclass
class DagResult:
    state: str
    tasks: dict[str, str]
    xcoms: list[Any] = field(default_factory=list)
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "success"


def _xcoms(dag_id: str, run_id: str) -> list[Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run_id).all()
        return [(r.task_id, r.map_index, r.key, r.value) for r in rows]


@pytest.fixture
def flowsync_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Path]:
    """Point the klaviyo_default connection at a sandbox; isolate outputs and limiter state per test."""

    def configure(srv: Any, **env: str) -> Path:
        home = tmp_path / "flowsync"
        monkeypatch.setenv("AIRFLOW_CONN_KLAVIYO_DEFAULT", json.dumps(
            {"conn_type": "klaviyo", "host": srv.url, "password": srv.api_key,
             "extra": {"time_scale": srv.time_scale}}))
        monkeypatch.setenv("KLAVIYO_ENABLE", "true")
        monkeypatch.setenv("FLOWSYNC_HOME", str(home))
        monkeypatch.setenv("FLOWSYNC_LIMITER_URL", f"sqlite:///{tmp_path / 'limiter.db'}")
        for key in ("KLAVIYO_API_KEY", "KLAVIYO_API_KEY_PRIVATE", "KLAVIYO_API_REVISION",
                    "SHOPIFY_PLACED_ORDER_METRIC_ID", "KLAVIYO_LIMIT_GLOBAL_BURST", "KLAVIYO_LIMIT_GLOBAL_PER_MINUTE"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return home

    return configure


class DagRefused(Exception):
    """dag.test() refused to create the run (e.g. the params' JSON schema rejected the conf)."""


@pytest.fixture
def run_dag() -> Iterator[Callable[..., DagResult]]:
    """Run a DAG with dag.test(run_conf=...) in a fresh process; states, XComs and the task output."""

    def run(dag_id: str, conf: dict[str, Any] | None = None, timeout: float = 600,
            logical_date: str | None = None) -> DagResult:
        args = [sys.executable, str(Path(__file__).with_name("dag_runner.py")), dag_id, json.dumps(conf or {})]
        proc = subprocess.run(
            args + ([logical_date] if logical_date else []),
            capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
        )
        output = proc.stdout + proc.stderr
        marker = "FLOWSYNC_DAG_RESULT="
        line = next((x for x in reversed(proc.stdout.splitlines()) if x.startswith(marker)), None)
        assert line is not None, f"the DAG runner crashed (exit {proc.returncode}):\n{output[-4000:]}"
        result = json.loads(line[len(marker):])
        if "error" in result:
            raise DagRefused(result["error"])
        return DagResult(state=result["state"], tasks=result["tasks"],
                         xcoms=_xcoms(dag_id, result["run_id"]), output=output)

    yield run
