"""One param source: every DAG's Params and validate_request's defaults come from core.params.PARAM_SPECS.

``tests/data/dag_params.json`` is ``{dag_id: [[name, Param.dump()], ...]}`` dumped from main before the
params moved to PARAM_SPECS: names, order, defaults, schemas and descriptions must stay identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowsync_provider import params as airflow_params
from flowsync_provider.core import params as core_params
from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.params import (
    PARAM_NAMES,
    PARAM_SPECS,
    SECRET_KEYS,
    SNAPSHOT_DEFAULTS,
    SyncRequest,
    validate_request,
)

BASELINE = Path(__file__).parent / "data" / "dag_params.json"
DAGS = Path(__file__).resolve().parents[1] / "dags"
BUILDERS = {"klaviyo_flow_sync": "flow_params", "klaviyo_campaign_sync": "campaign_params",
            "klaviyo_audience_sync": "audience_params", "klaviyo_snapshot_nightly": "nightly_params",
            "klaviyo_snapshot_history": "history_params"}
MAXIMA = {"limitFlows": 500, "limitMessages": 2000, "days": 366, "rowBudget": 1_000_000}


def _dump(params: dict) -> list:
    return json.loads(json.dumps([[name, p.dump()] for name, p in params.items()], default=str))


def test_every_dag_param_is_unchanged_from_main() -> None:
    """The DAGs as parsed (DagBag) carry exactly main's params: names, order, defaults, schemas, descriptions."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors
    baseline = json.loads(BASELINE.read_text())
    assert sorted(bag.dags) == sorted(baseline)
    for dag_id, expected in baseline.items():
        assert _dump(dict(bag.dags[dag_id].params.items())) == expected, dag_id
    assert sum(len(v) for v in baseline.values()) == 166  # 71 params + 19 null-only secret names on each of the 5 DAGs


@pytest.mark.parametrize(("dag_id", "sync"), [("klaviyo_flow_sync", "flows"), ("klaviyo_campaign_sync", "campaigns"),
                                              ("klaviyo_audience_sync", "audience"),
                                              ("klaviyo_snapshot_nightly", "nightly"),
                                              ("klaviyo_snapshot_history", "history")])
def test_params_are_built_from_the_specs(dag_id: str, sync: str) -> None:
    built = getattr(airflow_params, BUILDERS[dag_id])()
    assert list(built) == list(PARAM_SPECS[sync])
    assert {k: p.value for k, p in built.items()} == {k: s.default for k, s in PARAM_SPECS[sync].items()}


@pytest.mark.parametrize("sync", ["flows", "campaigns", "audience"])
def test_validate_request_defaults_are_the_dag_defaults(sync: str) -> None:
    """A run with no params gets what the DAG form would have filled in (one default, written once)."""
    request = validate_request({}, sync=sync, maxima=MAXIMA)
    fields = {name: spec for name, spec in PARAM_SPECS[sync].items() if name not in SECRET_KEYS}  # null-only
    assert set(PARAM_NAMES[sync]) == set(fields)
    for name, spec in fields.items():
        assert getattr(request, name) == spec.default, (sync, name)


def test_sync_request_and_snapshot_defaults_come_from_the_specs() -> None:
    assert SyncRequest().days == PARAM_SPECS["flows"]["days"].default == 7
    assert SyncRequest().rowBudget == PARAM_SPECS["flows"]["rowBudget"].default == 50_000
    assert SNAPSHOT_DEFAULTS == {"limitFlows": 500, "limitMessages": 2000, "rowBudget": 1_000_000}
    assert all(PARAM_SPECS["history"][k].default == v for k, v in SNAPSHOT_DEFAULTS.items())


def test_hard_maxima_come_in_as_values() -> None:
    """core reads no setting: the maxima passed are the ones applied, whatever the environment says."""
    with pytest.raises(ParamError, match=r"^days is 40, over the hard maximum of 30: lower it \(or raise "
                                         r"FLOWSYNC_MAX_DAYS if you really need more\)\.$"):
        validate_request({"days": 40}, sync="flows", maxima={**MAXIMA, "days": 30})
    assert validate_request({"days": 400}, sync="flows", maxima={**MAXIMA, "days": 400}).days == 400


def test_dead_names_are_gone() -> None:
    assert not hasattr(core_params, "FLOW_PARAM_NAMES")
    assert not hasattr(core_params, "validate_flow_request")
