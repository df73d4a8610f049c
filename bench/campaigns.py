"""Benchmark: campaign reporting calls per window (target: 1 campaign-values call per ≤ 1-year window).

Runs the campaign sync's own functions (catalog → one report per chunk → build) with a bare client
against a started sandbox, for 30/90/365/400-day windows ending yesterday, and counts the
campaign-values calls twice: from the client's diagnostics and from the sandbox's request log.

    from bench.campaigns import run
    numbers = run(url, api_key, time_scale=20)
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

from flowsync_provider.core import catalog as catalog_core
from flowsync_provider.core.params import SyncRequest
from flowsync_provider.core.plan import VALUES_MAX_DAYS, plan_campaign_sync
from flowsync_provider.core.windows import local_today
from flowsync_provider.klaviyo import KlaviyoClient
from flowsync_provider.operators.campaigns import build_campaign_output, fetch_campaign_catalog, run_campaign_report

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


def run(url: str, api_key: str, time_scale: float = 1.0, *, windows: Sequence[int] = DEFAULT_WINDOWS,
        workdir: str | None = None) -> dict[str, Any]:
    """Reporting calls per window length; ``meets_target`` when every window used ⌈days/365⌉ calls."""
    work = Path(workdir or tempfile.mkdtemp(prefix="flowsync-bench-campaigns-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with _env(FLOWSYNC_HOME=str(work)), KlaviyoClient(
        api_key, base_url=url, time_scale=time_scale, limiter_url=f"sqlite:///{work / 'limiter.db'}",
        max_wait_seconds=600.0,
    ) as client:
        account = catalog_core.account_info(client.get_account())
        today = local_today(account["timezone"], datetime.now(UTC))
        for days in windows:
            request = SyncRequest(days=days, format="csv", rowBudget=1_000_000)
            plan = plan_campaign_sync(request, tz=account["timezone"], today_local=today, max_days=max(windows))
            plan.update(sync="campaigns", request=request.to_dict(), account=account, warnings=[])
            before_client = client.diagnostics.reporting_calls
            before_server = server_report_calls(url)
            started = time.monotonic()
            catalog = fetch_campaign_catalog(client, plan)
            reports = [run_campaign_report(client, catalog, chunk) for chunk in plan["chunks"]]
            output = build_campaign_output(plan, catalog, reports, {"run_id": f"bench-{days}d"})
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


def run_with_sandbox(time_scale: float = 20.0, seed: int = 7) -> dict[str, Any]:
    """Start a sandbox just for this benchmark (convenience for ``python -m bench.campaigns``)."""
    from flowsync_provider.sandbox import SandboxServer

    with SandboxServer(seed=seed, time_scale=time_scale) as srv:
        return run(srv.url, srv.api_key, time_scale)


if __name__ == "__main__":
    print(json.dumps(run_with_sandbox(), indent=2))
