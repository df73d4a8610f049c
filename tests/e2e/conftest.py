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
            {"conn_type": "klaviyo", "host": srv.url, "password": srv.api_key}))
        monkeypatch.setenv("KLAVIYO_ENABLE", "true")
        monkeypatch.setenv("FLOWSYNC_TIME_SCALE", str(srv.time_scale))
        monkeypatch.setenv("FLOWSYNC_HOME", str(home))
        monkeypatch.setenv("FLOWSYNC_LIMITER_URL", f"sqlite:///{tmp_path / 'limiter.db'}")
        for key in ("KLAVIYO_API_KEY", "KLAVIYO_API_KEY_PRIVATE", "KLAVIYO_API_REVISION",
                    "SHOPIFY_PLACED_ORDER_METRIC_ID", "KLAVIYO_LIMIT_GLOBAL_BURST", "KLAVIYO_LIMIT_GLOBAL_PER_MINUTE"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return home

    return configure


@pytest.fixture
def run_dag(dagbag, capfd: pytest.CaptureFixture[str]) -> Iterator[Callable[..., DagResult]]:
    """Run a DAG with dag.test(run_conf=...) and return states, XComs and the captured task output."""

    def run(dag_id: str, conf: dict[str, Any] | None = None) -> DagResult:
        from airflow.dag_processing.dagbag import DagBag

        # A fresh parse per run: dag.test() folds run_conf into the DAG object's params.
        dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag(dag_id)
        capfd.readouterr()
        dr = dag.test(run_conf=conf or {})
        out, err = capfd.readouterr()
        tasks: dict[str, str] = {}
        for ti in dr.get_task_instances():
            key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            tasks[key] = str(ti.state)
        return DagResult(state=str(dr.state), tasks=tasks, xcoms=_xcoms(dag_id, dr.run_id), output=out + err)

    yield run
