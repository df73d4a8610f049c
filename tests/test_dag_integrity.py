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


MANUAL_DAGS = ("klaviyo_flow_sync", "klaviyo_campaign_sync", "klaviyo_audience_sync", "klaviyo_snapshot_history")


def test_every_dag_is_known(dagbag):
    assert set(dagbag.dag_ids) == {*MANUAL_DAGS, "klaviyo_snapshot_nightly"}


@pytest.mark.parametrize("dag_id", MANUAL_DAGS)
def test_manual_dags_have_no_schedule(dagbag, dag_id):
    """One-off syncs and backfills run on demand only: a schedule would spend reporting quota unasked."""
    from airflow.sdk.definitions.timetables.simple import NullTimetable

    dag = dagbag.get_dag(dag_id)
    assert dag.schedule is None
    assert isinstance(dag.timetable, NullTimetable)


def test_nightly_runs_on_its_cron(dagbag):
    dag = dagbag.get_dag("klaviyo_snapshot_nightly")
    assert dag.schedule == __import__("os").environ.get("FLOWSYNC_NIGHTLY_SCHEDULE", "0 7 * * *")


@pytest.mark.parametrize("dag_id", [*MANUAL_DAGS, "klaviyo_snapshot_nightly"])
def test_every_dag_offers_formula_escaping_off_by_default(dagbag, dag_id):
    params = dagbag.get_dag(dag_id).params
    assert params["escapeFormulas"] is False
    assert params.get_param("escapeFormulas").schema["type"] == "boolean"


def test_nightly_lookback_maximum_is_the_one_call_bound(dagbag):
    from flowsync_provider.core.plan import NIGHTLY_ONE_CALL_MAX_LOOKBACK, SERIES_MAX_DAYS

    param = dagbag.get_dag("klaviyo_snapshot_nightly").params.get_param("extraLookbackDays")
    assert param.schema["maximum"] == NIGHTLY_ONE_CALL_MAX_LOOKBACK
    assert f"Up to {NIGHTLY_ONE_CALL_MAX_LOOKBACK} " in param.description
    assert f"{SERIES_MAX_DAYS}-day flow series call" in param.description


def test_flow_sync_shape(dagbag):
    dag = dagbag.get_dag("klaviyo_flow_sync")
    assert dag is not None
    assert dag.schedule is None
    assert {t.task_id for t in dag.tasks} == {"plan", "catalog", "report", "build", "upload"}
    report = dag.get_task("report")
    assert report.pool == "klaviyo_reporting"
    assert set(dag.params.keys()) >= {
        "mode", "format", "days", "start", "end", "timeframeKey", "limitFlows", "limitMessages",
        "enrichMessageNames", "aggregation", "conversionMetricId", "includeDrafts", "rowBudget", "debug",
        "accountId", "uploadId",
    }
    assert dag.params.get_param("klaviyoApiKey").schema["type"] == "null"  # declared null-only: refused at trigger


def test_pools_file_declares_every_pool_used(dagbag):
    import json

    pools = json.loads((DAGS.parent / "pools.json").read_text())
    used = {t.pool for dag in dagbag.dags.values() for t in dag.tasks if t.pool != "default_pool"}
    assert used <= set(pools)
