"""Step 1 of every windowed sync: account timezone → window → report chunks → call budget."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flowsync_provider import settings
from flowsync_provider.core import catalog as catalog_core
from flowsync_provider.core.params import SyncRequest
from flowsync_provider.core.plan import PLANNERS, preflight_window
from flowsync_provider.core.summary import quota_line
from flowsync_provider.core.windows import local_today
from flowsync_provider.klaviyo import KlaviyoClient

log = logging.getLogger(__name__)


def make_plan(client: KlaviyoClient, request: SyncRequest, *, sync: str, now: datetime) -> dict[str, Any]:
    """Plan a sync: ``now`` is the run's anchor (run_after), turned into 'today' in the account timezone."""
    preflight_window(request, now=now)  # e.g. a start before 2012 costs no call, not even the account's
    account = catalog_core.account_info(client.get_account())
    warnings = list(request.warnings)
    if account.get("timezone_defaulted"):
        warnings.append("Klaviyo account timezone unknown: using UTC for day boundaries.")
    today = local_today(account["timezone"], now)
    plan = PLANNERS[sync](request, tz=account["timezone"], today_local=today, max_days=settings.hard_max("days"))
    warnings += plan.pop("warnings", [])
    plan.update(sync=sync, request=request.to_dict(), account=account, warnings=warnings)
    log.info(
        "Plan: %s..%s (%d days, %s), %d report call(s); %s",
        plan["window"]["start"], plan["window"]["end"], plan["days"], account["timezone"],
        len(plan["chunks"]), quota_line(plan["budget"]["reporting_calls"]),
    )
    for warning in warnings:
        log.warning(warning)
    return plan
