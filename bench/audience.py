"""Benchmark: the audience export's profile pages per second vs the profiles limit floor, and peak memory.

The export (``flowsync_provider.syncs.audience.export_audience``, the operators' code, bare client) runs
in a fresh child process so its peak RSS (``ru_maxrss``) is its own: the baseline after imports and the
peak after the export are both reported. The floor is the spec's steady limit of ``GET /api/profiles``
(750/min = 12.5 pages/s at time scale 1), scaled like the sandbox; target ≥ 90 % of it.

Time scale 1 by default: at 20× the floor (250 pages/s) is above what the in-process sandbox can
render, so the number would measure the sandbox, not the pacing. Under 750 pages (75k profiles) the
steady window never binds and the export runs at burst/sandbox speed; 100k profiles (1,000 pages)
shows the steady limit itself (``FLOWSYNC_BENCH_AUDIENCE_PROFILES=5000,20000,100000``, ~2 min more).

    from bench.audience import run
    run()                                 # starts sandboxes of 5k and 20k profiles
    run(url, api_key, time_scale=1)       # a sandbox you started (e.g. profiles=20000)
Returns ``{"results": {...}, "markdown": "..."}`` (what ``python -m bench`` collects).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import table
from flowsync_provider.core.limits import limits_for

TARGET_RATIO = 0.9
DEFAULT_TIME_SCALE = 1.0
SIZES_ENV = "FLOWSYNC_BENCH_AUDIENCE_PROFILES"
DEFAULT_SIZES = (5_000, 20_000)


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
    from flowsync_provider.syncs.audience import export_audience

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


def measure(url: str, api_key: str, time_scale: float = DEFAULT_TIME_SCALE, *,
            workdir: str | None = None) -> dict[str, Any]:
    """One full export of the sandbox's audience: pages/s vs the floor, peak RSS of the exporting process."""
    work = Path(workdir or tempfile.mkdtemp(prefix="flowsync-bench-audience-"))
    work.mkdir(parents=True, exist_ok=True)
    cfg = {"url": url, "api_key": api_key, "time_scale": time_scale, "workdir": str(work)}
    proc = subprocess.run([sys.executable, "-m", "bench.audience", "--child"], input=json.dumps(cfg),
                          cwd=str(Path(__file__).resolve().parents[1]), capture_output=True, text=True,
                          check=False, timeout=3600)
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


def sizes_from_env() -> tuple[int, ...]:
    raw = os.environ.get(SIZES_ENV, "").strip()
    return tuple(int(x) for x in raw.split(",") if x.strip()) if raw else DEFAULT_SIZES


def markdown(results: dict[str, dict[str, Any]]) -> str:
    rows = [[r["profiles"], r["profile_pages"], r["pages_per_second"], r["floor_pages_per_second"],
             f"{r['ratio_to_floor']:.2f}×", "yes" if r["meets_target"] else "**no**", r["list_memberships"],
             f"{r['total_seconds']:.1f}", r["baseline_rss_mb"], r["peak_rss_mb"], r["export_rss_delta_mb"],
             r["http_429"]] for r in results.values()]
    return ("## Audience sync: profile pages per second vs the profiles limit, peak memory\n\n"
            "Target: ≥ 90 % of the steady floor of `GET /api/profiles` (750/min = 12.5 pages/s × time scale), "
            "memory flat in the audience size. The export runs in a fresh process (the sync's own code, bare "
            "client); RSS is `ru_maxrss` after imports (baseline) and after the export (peak). The list walk "
            "overlaps the profile stream (separate rate-limit buckets).\n\n"
            + table(["profiles", "pages", "pages/s", "floor pages/s", "vs floor", "≥ 90 %", "list memberships",
                     "wall s", "baseline RSS MB", "peak RSS MB", "export Δ MB", "429s"], rows))


def run(url: str | None = None, api_key: str | None = None, time_scale: float | None = None, *,
        profiles: tuple[int, ...] | None = None, workdir: str | None = None) -> dict[str, Any]:
    """Measure against the given sandbox, or start one sandbox per audience size when ``url`` is None."""
    scale = DEFAULT_TIME_SCALE if time_scale is None else time_scale
    results: dict[str, dict[str, Any]] = {}
    if url is not None:
        result = measure(url, api_key or "", scale, workdir=workdir)
        results[f"{result['profiles']}_profiles"] = result
    else:
        from flowsync_dev.sandbox import SandboxServer

        for n in profiles or sizes_from_env():
            with SandboxServer(seed=7, time_scale=scale, profiles=n) as srv:
                results[f"{n}_profiles"] = measure(srv.url, srv.api_key, scale)
    return {"results": results, "markdown": markdown(results)}


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        print(json.dumps(_child(json.loads(sys.stdin.read()))))
    else:
        print(run()["markdown"])
