"""The CLI prints the URL once ready, serves, and stops on SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx


def test_cli_prints_url_and_serves(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowsync_dev.sandbox", "--port", "0", "--seed", "3", "--profiles", "50",
         "--time-scale", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("FLOWSYNC_SANDBOX_URL=http://127.0.0.1:"), line
        url = line.split("=", 1)[1]
        info = httpx.get(url + "/__sandbox__/info", timeout=10).json()
        assert info["seed"] == 3 and info["profiles"] == 50 and info["time_scale"] == 20
        resp = httpx.get(url + "/api/accounts", timeout=10, headers={
            "Authorization": f"Klaviyo-API-Key {info['api_key']}", "revision": "2026-07-15"})
        assert resp.status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
