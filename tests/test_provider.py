"""The provider registers with Airflow through its entry point and its metadata passes Airflow's schema."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import jsonschema


def test_provider_info_matches_airflow_schema():
    import airflow

    from flowsync_provider import get_provider_info

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    for entry in info["connection-types"]:
        module, _, cls = entry["hook-class-name"].rpartition(".")
        assert getattr(importlib.import_module(module), cls).conn_type == entry["connection-type"]
    for group in ("hooks", "operators", "triggers"):
        for item in info[group]:
            for module in item["python-modules"]:
                importlib.import_module(module)


def test_entry_point_is_declared():
    eps = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("flowsync_provider")]
    assert [ep.value for ep in eps] == ["flowsync_provider:get_provider_info"]


def test_airflow_providers_list_shows_flowsync():
    airflow_bin = Path(sys.executable).parent / "airflow"
    out = subprocess.run([str(airflow_bin), "providers", "list", "-o", "json"], capture_output=True, text=True,
                         env={**os.environ}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("[{"))
    names = {p["package_name"] for p in json.loads(line)}
    assert "airflow-provider-flowsync" in names
