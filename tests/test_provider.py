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


PLACEHOLDER_HOSTS = {"example.com", "example.org", "example.net", "localhost", "127.0.0.1", "github.com", "gitlab.com"}


def _github_slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes."""
    kept = "".join(c for c in heading.strip().lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def test_integration_doc_urls_are_real_locations():
    """No placeholder: a web URL names a page on a real host; a repository path names an existing heading."""
    from urllib.parse import urlparse

    from flowsync_provider import get_provider_info

    root = Path(__file__).resolve().parents[1]
    for item in get_provider_info()["integrations"]:
        url = urlparse(item["external-doc-url"])
        if url.scheme:
            assert url.scheme == "https", item
            host = url.hostname or ""
            assert host and host.removeprefix("www.") not in PLACEHOLDER_HOSTS \
                and not host.endswith((".example", ".invalid", ".test")), item
            assert url.path.strip("/"), f"{item}: a bare host is not documentation"
        else:
            doc = root / url.path
            assert doc.is_file(), f"{item}: {url.path} is not a file of the repository"
            headings = {_github_slug(line.lstrip("#")) for line in doc.read_text().splitlines() if line.startswith("#")}
            assert not url.fragment or url.fragment in headings, f"{item}: no heading #{url.fragment} in {url.path}"
