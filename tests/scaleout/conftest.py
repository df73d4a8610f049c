"""Scale-out test fixtures: a reachable Redis (a failure, not a skip, when it is missing) and the harness helpers."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# scripts/backfill_test.py (the backfill harness, also `make backfill-test`) is imported by test_backfill.py.
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

REDIS_URL = os.environ.get("FLOWSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


@pytest.fixture
def redis_limiter() -> Iterator[tuple[str, str]]:
    """(limiter URL, unique account key); every key of that account is deleted afterwards."""
    import redis

    conn = redis.Redis.from_url(REDIS_URL)
    try:
        conn.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__}); run `make services`")
    account = f"scaleout{uuid.uuid4().hex[:10]}"
    yield REDIS_URL, account
    for key in conn.scan_iter(match=f"flowsync:limiter:*{account}*"):
        conn.delete(key)
    conn.close()


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """`make test` migrates the SQLite metadata DB first; a direct pytest run gets it here."""
    import subprocess

    home = Path(os.environ["AIRFLOW_HOME"])
    if not (home / "airflow.db").exists():
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                       capture_output=True)
