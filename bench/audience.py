"""Benchmark: the audience export's profile pages per second vs the profiles limit floor, and peak memory.

The export (the audience sync's own ``export_audience``, bare client) runs in a fresh child process so
its peak RSS (``ru_maxrss``) is its own: the baseline after imports (Airflow included, as in a task)
and the peak after the export are both reported. The floor is the spec's steady limit of
``GET /api/profiles`` (750/min = 12.5 pages/s at time scale 1), scaled like the sandbox; target ≥ 90 %.

    from bench.audience import run
    numbers = run(url, api_key, time_scale=1)      # a sandbox started with profiles=20000
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from flowsync_provider.core.limits import limits_for

TARGET_RATIO = 0.9


def profile_limits(time_scale: float) -> dict[str, float]:
    """Pages/s the spec allows for GET /api/profiles at ``time_scale``: steady floor and burst ceiling."""
    _, limit = limits_for("GET", "/api/profiles")
    return {"floor_pages_per_second": round(limit.steady_per_min / 60.0 * time_scale, 3),
            "burst_pages_per_second": round(limit.burst_per_s * time_scale, 3)}


def _child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Inside the child: import like a task does, export, report timing and ru_maxrss."""
    import resource
    import time

    from flowsync_provider.core.params import SyncRequest
    from flowsync_provider.klaviyo import KlaviyoClient
    from flowsync_provider.operators.audience import export_audience

    def max_rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux

    baseline = max_rss_mb()
    work = Path(cfg["workdir"])
    request = SyncRequest(format="csv", rowBudget=100_000_000)
    plan = {"request": request.to_dict(), "updated_since": None}
    started = time.monotonic()
    with KlaviyoClient(cfg["api_key"], base_url=cfg["url"], time_scale=cfg["time_scale"],
                       limiter_url=f"sqlite:///{work / 'limiter.db'}", max_wait_seconds=600.0) as client:
        out = export_audience(client, plan, work / "run", hash_key=None)
        diagnostics = client.diagnostics.to_dict()
    seconds = time.monotonic() - started
    return {"baseline_rss_mb": round(baseline, 1), "peak_rss_mb": round(max_rss_mb(), 1),
            "seconds": round(seconds, 2), "stats": out["stats"], "bytes": Path(out["data_path"]).stat().st_size,
            "http_429": diagnostics["http_429"], "seconds_waited": diagnostics["seconds_waited"]}


def run(url: str, api_key: str, time_scale: float = 1.0, *, workdir: str | None = None) -> dict[str, Any]:
    """One full export of the sandbox's audience: pages/s vs the floor, peak RSS of the exporting process."""
    work = Path(workdir or tempfile.mkdtemp(prefix="flowsync-bench-audience-"))
    work.mkdir(parents=True, exist_ok=True)
    cfg = {"url": url, "api_key": api_key, "time_scale": time_scale, "workdir": str(work)}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child"], input=json.dumps(cfg),
                          capture_output=True, text=True, check=False, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"audience export child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    stats = child["stats"]
    limits = profile_limits(time_scale)
    pages_per_second = stats["pages_per_second"] or 0.0
    ratio = pages_per_second / limits["floor_pages_per_second"]
    return {
        "time_scale": time_scale,
        "profiles": stats["profiles"],
        "profile_pages": stats["profile_pages"],
        "pages_per_second": pages_per_second,
        **limits,
        "ratio_to_floor": round(ratio, 3),
        "meets_target": ratio >= TARGET_RATIO,
        "list_memberships": stats["list_memberships"],
        "list_walk_seconds": stats["lists_seconds"],
        "profile_seconds": stats["profiles_seconds"],
        "write_seconds": stats["write_seconds"],
        "total_seconds": child["seconds"],
        "max_rows_in_memory": stats["max_rows_in_memory"],
        "baseline_rss_mb": child["baseline_rss_mb"],
        "peak_rss_mb": child["peak_rss_mb"],
        "export_rss_delta_mb": round(child["peak_rss_mb"] - child["baseline_rss_mb"], 1),
        "csv_bytes": child["bytes"],
        "http_429": child["http_429"],
        "seconds_waited": child["seconds_waited"],
    }


def run_with_sandbox(time_scale: float = 1.0, profiles: tuple[int, ...] = (5_000, 20_000)) -> dict[str, Any]:
    """Start sandboxes of several sizes: a flat peak RSS across sizes shows the memory is bounded."""
    from flowsync_provider.sandbox import SandboxServer

    out: dict[str, Any] = {}
    for n in profiles:
        with SandboxServer(seed=7, time_scale=time_scale, profiles=n) as srv:
            out[f"{n}_profiles"] = run(srv.url, srv.api_key, time_scale)
    return out


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        print(json.dumps(_child(json.loads(sys.stdin.read()))))
    else:
        print(json.dumps(run_with_sandbox(), indent=2))
