"""Airflow Params (JSON schema) of the sync DAGs, built from the one definition in ``core.params.PARAM_SPECS``.

The schema refuses bad types at trigger time; cross-field rules live in ``core.params.validate_request``,
which reads its defaults from the same specs.
"""

from __future__ import annotations

import copy

from airflow.sdk import Param

from flowsync_provider.core.params import PARAM_SPECS, ParamSpec


def _param(spec: ParamSpec) -> Param:
    return Param(spec.default, description=spec.description, **copy.deepcopy(dict(spec.schema)))


def params_for(sync: str) -> dict[str, Param]:
    """Fresh ``Param`` objects for one DAG (flows, campaigns, audience, nightly, history), in form order."""
    return {name: _param(spec) for name, spec in PARAM_SPECS[sync].items()}


def flow_params() -> dict[str, Param]:
    return params_for("flows")


def campaign_params() -> dict[str, Param]:
    """Campaign sync: the common params with a 30-day default window (campaigns are sparse)."""
    return params_for("campaigns")


def audience_params() -> dict[str, Param]:
    """Audience sync: no window; export mode and the PII controls (see docs for the column meanings)."""
    return params_for("audience")


def nightly_params() -> dict[str, Param]:
    return params_for("nightly")


def history_params() -> dict[str, Param]:
    return params_for("history")
