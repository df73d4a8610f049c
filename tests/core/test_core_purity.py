"""The core stays pure: importing it must not pull in Airflow (the client, bench and tests use it bare)."""

from __future__ import annotations

import subprocess
import sys

MODULES = ["errors", "windows", "schemas", "catalog", "rows", "csvio", "subscribers", "ids"]


def test_core_modules_do_not_import_airflow() -> None:
    code = (
        "import sys\n"
        + "".join(f"import flowsync_provider.core.{m}\n" for m in MODULES)
        + "bad = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        + "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == ""
