"""`make demo`: run the flow sync DAG end to end against the local Klaviyo sandbox.

Starts the sandbox on a free loopback port, points the klaviyo_default connection at it through
AIRFLOW_CONN_KLAVIYO_DEFAULT (JSON form; the sandbox's time scale goes in its ``time_scale`` extra), runs
`airflow dags test klaviyo_flow_sync` with CSV output, prints where flows.csv and summary.json are plus the
first rows, and stops what it started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TIME_SCALE = 20  # the sandbox's and (through the connection extra) the client's rate-limit windows / 20


def start_sandbox() -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowsync_dev.sandbox", "--port", "0", "--seed", "7",
         "--time-scale", str(TIME_SCALE)],
        stdout=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30
    url = ""
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("FLOWSYNC_SANDBOX_URL="):
            url = line.split("=", 1)[1].strip()
            break
        if proc.poll() is not None:
            break
    if not url:
        proc.kill()
        raise SystemExit("the Klaviyo sandbox did not start")
    import httpx

    info = httpx.get(f"{url}/__sandbox__/info", timeout=10).json()
    return proc, url, info["api_key"]


def main() -> int:
    sandbox, url, key = start_sandbox()
    print(f"Klaviyo sandbox: {url} (time scale {TIME_SCALE}x)")
    env = {
        **os.environ,
        "AIRFLOW_CONN_KLAVIYO_DEFAULT": json.dumps({"conn_type": "klaviyo", "host": url, "password": key,
                                                    "extra": {"time_scale": TIME_SCALE}}),
        "KLAVIYO_ENABLE": "true",
    }
    conf = {"mode": "dry-run", "format": "csv", "days": 7, "limitFlows": 20, "enrichMessageNames": True}
    try:
        started = time.monotonic()
        result = subprocess.run(
            [str(BIN / "airflow"), "dags", "test", "klaviyo_flow_sync", "--conf", json.dumps(conf)],
            env=env, capture_output=True, text=True,
        )
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            sys.stdout.write(result.stdout[-6000:])
            sys.stderr.write(result.stderr[-6000:])
            print("demo: the DAG run failed", file=sys.stderr)
            return 1
        home = Path(os.environ.get("FLOWSYNC_HOME", ROOT / ".flowsync"))
        summaries = sorted((home / "runs" / "klaviyo_flow_sync").rglob("summary.json"), key=lambda p: p.stat().st_mtime)
        if not summaries:
            print("demo: no summary.json was written", file=sys.stderr)
            return 1
        summary = json.loads(summaries[-1].read_text())
        print(f"DAG klaviyo_flow_sync finished in {elapsed:.1f}s")
        print(f"flows.csv:    {summary['files']['data']}")
        print(f"summary.json: {summaries[-1]}")
        print(f"rows={summary['rows']} days={summary['days']} flows={summary['flows']} "
              f"window={summary['window']['start']}..{summary['window']['end']}")
        print(summary["diagnostics"]["reporting_budget"])
        print("first rows:")
        print(summary["csvPreview"])
        return 0
    finally:
        sandbox.terminate()
        try:
            sandbox.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sandbox.kill()


if __name__ == "__main__":
    raise SystemExit(main())
