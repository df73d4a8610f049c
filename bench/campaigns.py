"""Benchmark: campaign reporting calls per window (target: 1 campaign-values call per ≤ 1-year window).

Runs the campaign sync's own steps (``flowsync_provider.syncs.campaigns``: catalog → one report per
chunk → files) with a bare client against a sandbox, for 30/90/365/400-day windows ending yesterday,
and counts the campaign-values calls twice: from the client's diagnostics and from the sandbox's log.

    from bench.campaigns import run
    run()                               # starts its own sandbox (time scale bench.common.TIME_SCALE)
    run(url, api_key, time_scale=20)    # a sandbox you started
Returns ``{"results": {...}, "markdown": "..."}`` (what ``python -m bench`` collects).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import TIME_SCALE, table
from flowsync_provider.core import catalog as catalog_core
from flowsync_provider.core.params import SyncRequest
from flowsync_provider.core.plan import VALUES_MAX_DAYS, plan_campaign_sync
from flowsync_provider.core.windows import local_today
from flowsync_provider.klaviyo import KlaviyoClient
from flowsync_provider.syncs import campaigns as campaign_sync

DEFAULT_WINDOWS = (30, 90, 365, 400)


@contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def server_report_calls(url: str) -> int:
    """campaign-values calls the sandbox answered with 200 (its admin request log)."""
    with urllib.request.urlopen(f"{url}/__sandbox__/requests", timeout=10) as response:  # noqa: S310 - loopback
        log = json.loads(response.read())
    entries = log.get("requests", log) if isinstance(log, dict) else log
    return sum(1 for r in entries if r.get("operation") == "query_campaign_values" and r.get("status") == 200)


def measure(url: str, api_key: str, time_scale: float, *, windows: Sequence[int] = DEFAULT_WINDOWS,
            workdir: str | None = None) -> dict[str, Any]:
    """Reporting calls per window length; ``meets_target`` when every window used ⌈days/365⌉ calls."""
    work = Path(workdir or tempfile.mkdtemp(prefix="flowsync-bench-campaigns-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with _env(FLOWSYNC_HOME=str(work)), KlaviyoClient(
        api_key, base_url=url, time_scale=time_scale, limiter_url=f"sqlite:///{work / 'limiter.db'}",
        max_wait_seconds=3600.0,
    ) as client:
        account = catalog_core.account_info(client.get_account())
        today = local_today(account["timezone"], datetime.now(UTC))
        for days in windows:
            request = SyncRequest(days=days, format="csv", rowBudget=1_000_000)
            # planned directly: 400 days is over the DAG's hard maximum (366), on purpose
            plan = plan_campaign_sync(request, tz=account["timezone"], today_local=today, max_days=max(windows))
            plan.update(sync="campaigns", request=request.to_dict(), account=account, warnings=[])
            before_client = client.diagnostics.reporting_calls
            before_server = server_report_calls(url)
            started = time.monotonic()
            catalog = campaign_sync.campaign_catalog(client, plan)
            reports = [campaign_sync.campaign_report(client, catalog, chunk) for chunk in plan["chunks"]]
            output = campaign_sync.write_campaign_output(plan, catalog, reports, work / "runs" / f"{days}d")
            calls = client.diagnostics.reporting_calls - before_client
            target = math.ceil(days / VALUES_MAX_DAYS)
            results[f"{days}d"] = {
                "days": days,
                "chunks": len(plan["chunks"]),
                "reporting_calls": calls,
                "server_report_calls": server_report_calls(url) - before_server,
                "target_calls": target,
                "calls_per_year_window": round(calls / target, 3),
                "campaigns": output["campaigns"],
                "rows": output["rows"],
                "seconds": round(time.monotonic() - started, 2),
            }
    return {
        "time_scale": time_scale,
        "windows": results,
        "meets_target": all(r["reporting_calls"] <= r["target_calls"] and
                            r["server_report_calls"] == r["reporting_calls"] for r in results.values()),
    }


def markdown(result: dict[str, Any]) -> str:
    rows = [[r["days"], r["chunks"], r["reporting_calls"], r["server_report_calls"], r["target_calls"],
             r["campaigns"], r["rows"], f"{r['seconds']:.2f}"] for r in result["windows"].values()]
    verdict = "met" if result["meets_target"] else "**missed**"
    return ("## Campaign sync: campaign-values calls per window\n\n"
            "Target: one `POST /api/campaign-values-reports` per ≤ 1-year window (no series endpoint exists; "
            f"never one per day or per campaign) — {verdict}. Sandbox seed 7, time scale "
            f"{result['time_scale']:g}; calls counted by the client and by the sandbox's request log.\n\n"
            + table(["days", "chunks", "calls (client)", "calls (sandbox log)", "target", "campaigns", "rows",
                     "wall s"], rows))


def run(url: str | None = None, api_key: str | None = None, time_scale: float | None = None, *,
        windows: Sequence[int] = DEFAULT_WINDOWS, workdir: str | None = None) -> dict[str, Any]:
    """Measure against the given sandbox, or start one (seed 7) when ``url`` is None."""
    if url is None:
        from flowsync_dev.sandbox import SandboxServer

        scale = TIME_SCALE if time_scale is None else time_scale
        with SandboxServer(seed=7, time_scale=scale) as srv:
            return run(srv.url, srv.api_key, scale, windows=windows, workdir=workdir)
    result = measure(url, api_key or "", TIME_SCALE if time_scale is None else time_scale, windows=windows,
                     workdir=workdir)
    return {"results": result, "markdown": markdown(result)}


if __name__ == "__main__":
    print(run()["markdown"])
