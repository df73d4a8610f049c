"""The core stays pure: importing it must not pull in Airflow (the client, bench and tests use it bare).

Modules are discovered, not listed: a new core module is covered the day it is added.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import flowsync_provider.core as core

CORE_DIR = Path(core.__file__).parent
MODULES = sorted(m.name for m in pkgutil.iter_modules([str(CORE_DIR)]))


def test_discovery_sees_every_core_file() -> None:
    files = sorted(p.stem for p in CORE_DIR.glob("*.py") if p.stem != "__init__")
    assert MODULES == files
    assert len(MODULES) >= 13


def _airflow_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        found += [n for n in names if n == "airflow" or n.startswith("airflow.")]
    return found


@pytest.mark.parametrize("module", ["__init__", *MODULES])
def test_no_airflow_import_in_source(module: str) -> None:
    assert _airflow_imports((CORE_DIR / f"{module}.py").read_text()) == []


@pytest.mark.parametrize("module", MODULES)
def test_importing_leaves_airflow_out_of_sys_modules(module: str) -> None:
    """Transitively too: a fresh interpreter imports the module alone, then no airflow module may be loaded."""
    code = (
        "import sys\n"
        f"import flowsync_provider.core.{module}\n"
        "bad = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == ""
