"""Shared pytest fixtures: the Klaviyo sandbox servers and the vendored OpenAPI slices.

Airflow reads its config at import time, so the unit-test settings are put in the environment
here, before any test module can import airflow.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# The same Airflow home and DAG folder as `make test` when pytest is run directly.
_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("AIRFLOW_HOME", str(_ROOT / ".airflow"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(_ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(_ROOT / "plugins"))

import pytest  # noqa: E402

from flowsync_dev.sandbox import SandboxServer  # noqa: E402

OPENAPI_DIR = Path(__file__).parent / "data" / "openapi"
SPEC_CATEGORIES = ("accounts", "campaigns", "flows", "lists", "metrics", "profiles", "reporting", "segments")


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema → JSON Schema.

    - ``nullable: true`` becomes ``anyOf[..., {"type": "null"}]``.
    - ``oneOf`` becomes ``anyOf``: Klaviyo's alternatives are not mutually exclusive (``FlowEmail``
      and ``FlowWhatsApp`` have no required fields; ``EmailSendOptions`` and ``SMSSendOptions`` are
      identical), so a strict oneOf rejects every valid document; the SDKs read them as unions.
    """
    if isinstance(node, list):
        return [_to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("example", "examples", "description", "nullable"):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _to_json_schema(sub) for name, sub in value.items()}
        elif key == "oneOf":
            out["anyOf"] = _to_json_schema(value)
        else:
            out[key] = _to_json_schema(value)
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


class OpenAPISpec:
    """The vendored per-category slices with response-schema validation (``$ref`` within a slice)."""

    def __init__(self, directory: Path = OPENAPI_DIR) -> None:
        self.raw: dict[str, dict] = {c: json.loads((directory / f"{c}.json").read_text()) for c in SPEC_CATEGORIES}
        self._components = cache(lambda c: _to_json_schema(self.raw[c]["components"]))

    @property
    def revision(self) -> str:
        return self.raw["flows"]["info"]["version"]

    def operation(self, category: str, method: str, path: str) -> dict:
        return self.raw[category]["paths"][path][method.lower()]

    def response_schema(self, category: str, method: str, path: str, status: str = "200") -> dict:
        """JSON Schema of a response (``"4XX"``/``"5XX"`` resolve the shared error responses)."""
        resp = self.operation(category, method, path)["responses"][status]
        if "$ref" in resp:
            resp = self.raw[category]["components"]["responses"][resp["$ref"].rsplit("/", 1)[-1]]
        schema = resp["content"]["application/vnd.api+json"]["schema"]
        return {"components": self._components(category), "allOf": [_to_json_schema(copy.deepcopy(schema))]}

    def schema(self, category: str, name: str) -> dict:
        return {"components": self._components(category), "$ref": f"#/components/schemas/{name}"}

    def validate(self, category: str, method: str, path: str, document: Any, status: str = "200") -> None:
        """Raise ``jsonschema.ValidationError`` when ``document`` breaks the spec's response schema."""
        import jsonschema

        jsonschema.Draft202012Validator(self.response_schema(category, method, path, status)).validate(document)


@pytest.fixture(scope="session")
def openapi_spec() -> OpenAPISpec:
    """Klaviyo's OpenAPI slices (revision 2026-07-15), loaded once."""
    return OpenAPISpec()


@pytest.fixture(scope="session")
def klaviyo_sandbox() -> Iterator[SandboxServer]:
    """One Klaviyo sandbox for the whole session: seed 7, time scale 20, no faults."""
    srv = SandboxServer(seed=7, time_scale=20, fault_rate=0.0).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxServer]]:
    """Start extra sandboxes with any ``SandboxServer`` kwargs; all are stopped at teardown."""
    started: list[SandboxServer] = []

    def make(**kwargs: Any) -> SandboxServer:
        kwargs.setdefault("seed", 7)
        kwargs.setdefault("time_scale", 20)
        srv = SandboxServer(**kwargs).start()
        started.append(srv)
        return srv

    try:
        yield make
    finally:
        for srv in started:
            srv.stop()
