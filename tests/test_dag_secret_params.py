"""Every DAG declares the known secret names as null-only params, so Airflow refuses them at trigger time."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.params import SECRET_KEYS

DAGS = Path(__file__).resolve().parents[1] / "dags"
DAG_IDS = ("klaviyo_flow_sync", "klaviyo_campaign_sync", "klaviyo_audience_sync", "klaviyo_snapshot_nightly",
           "klaviyo_snapshot_history")
CANARY = "sk_canary_value_7e31b0aa"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag


def test_every_dag_is_covered(dagbag) -> None:
    assert set(dagbag.dag_ids) == set(DAG_IDS)


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_every_secret_name_is_a_null_only_param(dagbag, dag_id: str) -> None:
    dag = dagbag.get_dag(dag_id)
    for name in SECRET_KEYS:
        param = dag.params.get_param(name)
        assert param.value is None, (dag_id, name)
        assert param.schema["type"] == "null", (dag_id, name)
        assert param.description.startswith("Never pass secrets here:"), (dag_id, name)


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_the_params_schema_refuses_a_secret_value_and_accepts_null(dagbag, dag_id: str) -> None:
    """What create_dagrun runs before it writes the DagRun row (params deep-merged with the conf, validated)."""
    from airflow.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization

    dag = DagSerialization.from_dict(DagSerialization.to_dict(dagbag.get_dag(dag_id)))  # what the server holds
    dag.params.deep_merge({name: None for name in SECRET_KEYS}).validate()
    for name in SECRET_KEYS:
        with pytest.raises(ParamValidationError, match=f"param {name}:"):
            dag.params.deep_merge({name: CANARY}).validate()


def test_snapshot_plan_refuses_a_secret_in_conf_before_anything_else() -> None:
    """The nightly/history plan checks dag_run.conf first (keys the schema does not declare reach it)."""
    from flowsync_provider.operators.snapshot_runs import SnapshotPlanOperator

    op = SnapshotPlanOperator(task_id="plan", account={"accountId": None, "klaviyoConnId": "klaviyo_default"})
    with pytest.raises(ParamError) as info:
        op.prepare({"dag_run": SimpleNamespace(conf={"dashboardToken": CANARY}), "params": {}})
    assert str(info.value).startswith("dashboardToken must not be passed in the run's conf")
    assert CANARY not in str(info.value)
