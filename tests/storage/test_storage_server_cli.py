"""The storage test server as a separate process (how the demo and a developer start it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowsync_provider.storage import SupabaseStorage


@pytest.mark.timeout(60)
def test_cli_prints_its_url_and_serves_supabase_py() -> None:
    key = "cli-service-key-5a5a5a"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowsync_dev.storage_server", "--port", "0",
         "--service-key", key, "--bucket", "ingest", "--bucket", "flow-staging"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("FLOWSYNC_STORAGE_URL=http://127.0.0.1:"), line
        storage = SupabaseStorage(line.split("=", 1)[1], key, timeout=10)
        try:
            assert storage.list_buckets() == ["flow-staging", "ingest"]
            assert storage.upload("flow-staging", "u/flows.csv", b"a\n") == "flow-staging/u/flows.csv"
            assert storage.download("flow-staging", "u/flows.csv") == b"a\n"
        finally:
            storage.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        stderr = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert key not in stderr


def test_cli_requires_a_service_key(monkeypatch) -> None:
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY", raising=False)
    result = subprocess.run(
        [sys.executable, "-m", "flowsync_dev.storage_server", "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "--service-key" in result.stderr
