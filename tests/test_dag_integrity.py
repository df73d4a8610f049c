"""The DAG folder parses cleanly, without connection or Variable lookups at parse time."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture()
def dagbag(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    calls: list[str] = []

    def forbidden(*args, **kwargs):
        calls.append(repr(args))
        raise AssertionError("connection/variable lookup at DAG parse time")

    import airflow.sdk.definitions.connection as sdk_conn
    import airflow.sdk.definitions.variable as sdk_var

    monkeypatch.setattr(sdk_conn.Connection, "get", classmethod(lambda cls, *a, **k: forbidden(*a)))
    monkeypatch.setattr(sdk_var.Variable, "get", staticmethod(forbidden))
    for name in list(__import__("os").environ):
        if name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")):
            monkeypatch.delenv(name)
    bag = DagBag(dag_folder=str(DAGS))
    bag.lookups = calls
    return bag


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.lookups == []


def test_flow_sync_shape(dagbag):
    dag = dagbag.get_dag("klaviyo_flow_sync")
    assert dag is not None
    assert dag.schedule is None if hasattr(dag, "schedule") else True
    assert {t.task_id for t in dag.tasks} >= {"plan", "catalog", "report", "build"}
    report = dag.get_task("report")
    assert report.pool == "klaviyo_reporting"
    assert set(dag.params.keys()) >= {
        "mode", "format", "days", "start", "end", "timeframeKey", "limitFlows", "limitMessages",
        "enrichMessageNames", "aggregation", "conversionMetricId", "includeDrafts", "rowBudget", "debug",
        "accountId", "uploadId",
    }
    assert "klaviyoApiKey" not in dag.params


def test_pools_file_declares_every_pool_used(dagbag):
    import json

    pools = json.loads((DAGS.parent / "pools.json").read_text())
    used = {t.pool for dag in dagbag.dags.values() for t in dag.tasks if t.pool != "default_pool"}
    assert used <= set(pools)
