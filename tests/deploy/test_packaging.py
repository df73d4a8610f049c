"""What the provider wheel ships: the provider only, never the dev/ package (sandbox, test servers, harness).

The wheel is really built (``pip wheel``, as a release would be) and its contents read.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROVIDER = REPO / "plugins" / "flowsync_provider"
DEV_PARTS = ("sandbox", "storage_server", "dashboard_server", "loopback", "airflow_procs", "flowsync_dev")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
                           capture_output=True, text=True, timeout=300, check=False)
    assert build.returncode == 0, build.stderr[-3000:]
    [path] = out.glob("airflow_provider_flowsync-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_ships_only_the_provider(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    code = [n for n in names if ".dist-info/" not in n]
    assert code and all(n.startswith("flowsync_provider/") for n in code), code
    for part in DEV_PARTS:
        assert not [n for n in names if part in n], f"{part} is a dev tool (dev/), not part of the provider"
    # the package data the provider reads at run time is still shipped
    assert {"flowsync_provider/core/ratelimits.json", "flowsync_provider/sql/snapshots.sql"} <= set(names)


def test_wheel_has_no_console_script(wheel: zipfile.ZipFile) -> None:
    [entry_points] = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "[console_scripts]" not in text, "flowsync-sandbox belongs to the dev package"
    assert "provider_info = flowsync_provider:get_provider_info" in text


def test_provider_code_neither_imports_dev_nor_reads_the_time_scale_env() -> None:
    """The provider must work without dev/ installed, and its time scale comes from the connection only."""
    offenders = [str(p.relative_to(REPO)) for p in PROVIDER.rglob("*.py")
                 if "flowsync_dev" in p.read_text() or "FLOWSYNC_TIME_SCALE" in p.read_text()]
    assert offenders == []
