"""Plans of the orchestrated snapshot runs (nightly ±1 day, history ranges): one plan, three syncs.

A snapshot run produces flows.csv, campaigns.csv and subscribers.csv for one Klaviyo account under one
uploadId; this module turns the run's params and anchor into the three sub-plans the sync steps
(``syncs.flows``, ``syncs.campaigns``, ``syncs.audience``) already understand. No Airflow import.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from flowsync_provider.core import catalog as catalog_core
from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.history import plan_history
from flowsync_provider.core.ids import check_upload_id, safe_segment
from flowsync_provider.core.params import SyncRequest, hard_max, refuse_secrets
from flowsync_provider.core.plan import NIGHTLY_ONE_CALL_MAX_LOOKBACK, call_budget, campaign_chunks, report_chunks
from flowsync_provider.core.summary import quota_line
from flowsync_provider.core.uploads import derive_upload_id
from flowsync_provider.core.windows import (
    Window,
    anchor_day_for_run,
    check_not_before_klaviyo,
    local_today,
    nightly_window,
)
from flowsync_provider.klaviyo import KlaviyoClient
from flowsync_provider.syncs.audience import audience_plan

log = logging.getLogger(__name__)

ACCOUNTS_VARIABLE = "flowsync_accounts"
DEFAULT_ACCOUNT = {"accountId": None, "klaviyoConnId": "klaviyo_default"}
# Orchestrated runs must cover the whole account: the runbook's caps are for one-off calls.
SNAPSHOT_DEFAULTS = {"limitFlows": 500, "limitMessages": 2000, "rowBudget": 1_000_000}


def parse_accounts(raw: str | list | None) -> list[dict[str, Any]]:
    """The Variable ``flowsync_accounts``: a JSON list of ``{accountId, klaviyoConnId}``; default one account.

    With more than one account every entry needs its own accountId: the id names the account's run
    folder and object prefix (through the injective ``core.ids.safe_segment``), so distinct raw ids
    can never share one; a fallback (the Klaviyo account id, a params accountId) could. Each entry
    carries ``accountCount`` so the plan knows whether an explicit uploadId must get an account suffix.
    """
    if raw in (None, ""):
        return [dict(DEFAULT_ACCOUNT)]
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise ParamError(f"Variable {ACCOUNTS_VARIABLE} must be a JSON list of "
                         '{"accountId": ..., "klaviyoConnId": ...} objects; it is not valid JSON.') from exc
    if not isinstance(items, list) or not items:
        raise ParamError(f"Variable {ACCOUNTS_VARIABLE} must be a non-empty JSON list of "
                         '{"accountId": ..., "klaviyoConnId": ...} objects.')
    accounts, seen = [], set()
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("klaviyoConnId"):
            raise ParamError(f"{ACCOUNTS_VARIABLE}[{i}] needs a klaviyoConnId (the Airflow connection of that "
                             "Klaviyo account).")
        refuse_secrets(item)
        account_id = item.get("accountId")
        account_id = None if account_id in (None, "") else account_id
        if account_id is not None and (isinstance(account_id, bool) or not isinstance(account_id, str | int)):
            raise ParamError(f"{ACCOUNTS_VARIABLE}[{i}].accountId must be text (the dashboard account id), "
                             f"got {account_id!r}.")
        account_id = None if account_id is None else str(account_id)
        if account_id is None and len(items) > 1:
            raise ParamError(f"{ACCOUNTS_VARIABLE}[{i}] needs an accountId: with more than one account each "
                             "entry names its dashboard account, so no two accounts share a folder or uploadId.")
        key = account_id or item["klaviyoConnId"]
        if key in seen:
            raise ParamError(f"{ACCOUNTS_VARIABLE}[{i}] repeats account {key!r}: list each account once.")
        seen.add(key)
        accounts.append({"accountId": account_id, "klaviyoConnId": str(item["klaviyoConnId"]),
                         "accountCount": len(items)})
    return accounts


def given_upload_id(params: Mapping[str, Any], spec: Mapping[str, Any]) -> str | None:
    """The explicit ``uploadId`` param as this account's upload id, checked before any Klaviyo call.

    One account: the id as given. More than one: ``<uploadId>-<account segment>`` (``core.ids.safe_segment``
    of the account's id), so the accounts of one run never overwrite each other's ``<uploadId>/*.csv``.
    """
    raw = params.get("uploadId")
    if raw in (None, ""):
        return None
    upload_id = check_upload_id(raw)
    count = int(spec.get("accountCount") or 1)
    if count <= 1:
        return upload_id
    if not spec.get("accountId"):
        raise ParamError("uploadId with more than one account needs an accountId on every entry of "
                         f"{ACCOUNTS_VARIABLE}.")
    segment = safe_segment(str(spec["accountId"]), fallback="account")
    effective = f"{upload_id}-{segment}"
    if len(effective) > 128:
        raise ParamError(f"uploadId {upload_id!r} is too long for a {count}-account run: each account uploads "
                         f"under '<uploadId>-<account>' ({effective!r}), which must stay within 128 characters; "
                         f"use at most {127 - len(segment)} characters.")
    return check_upload_id(effective)


def _int(params: Mapping[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = params.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ParamError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}.")
    return value


def snapshot_request(params: Mapping[str, Any], window: Window) -> SyncRequest:
    """The per-sync request every sub-plan carries (live, CSV, whole-account caps)."""
    return SyncRequest(
        mode="live", format="csv", start=window.start.isoformat(), end=window.end.isoformat(),
        limitFlows=_int(params, "limitFlows", SNAPSHOT_DEFAULTS["limitFlows"], 1, hard_max("limitFlows")),
        limitMessages=_int(params, "limitMessages", SNAPSHOT_DEFAULTS["limitMessages"], 1,
                           hard_max("limitMessages")),
        rowBudget=_int(params, "rowBudget", SNAPSHOT_DEFAULTS["rowBudget"], 1, hard_max("rowBudget")),
        conversionMetricId=params.get("conversionMetricId") or None,
        allowEmpty=bool(params.get("allowEmpty", False)),
        audienceMode=str(params.get("audienceMode") or "full"),
        hashEmails=bool(params.get("hashEmails", False)),
        dropNames=bool(params.get("dropNames", False)),
        escapeFormulas=bool(params.get("escapeFormulas", False)),
    )


def _sub_plans(request: SyncRequest, window: Window, account: dict[str, Any], *, tz: str, today: date,
               flow_chunks: list[dict], campaign_chunks: list[dict], client: KlaviyoClient,
               now: datetime) -> dict[str, Any]:
    common = {"window": window.to_dict(), "days": window.n_days, "timezone": tz, "today_local": today.isoformat(),
              "request": request.to_dict(), "account": account, "warnings": list(request.warnings)}
    flows = {**common, "sync": "flows", "chunks": flow_chunks, "budget": call_budget(len(flow_chunks))}
    campaigns = {**common, "sync": "campaigns", "chunks": campaign_chunks, "budget": call_budget(len(campaign_chunks))}
    audience = audience_plan(client, request, now=now)
    return {"flows": flows, "campaigns": campaigns, "audience": audience}


def _finish(kind: str, client: KlaviyoClient, spec: Mapping[str, Any], params: Mapping[str, Any],
            window: Window, tz: str, today: date, account: dict[str, Any], flow_chunks: list[dict],
            campaign_chunks: list[dict], now: datetime, dag_id: str, run_id: str,
            extra: dict[str, Any]) -> dict[str, Any]:
    request = snapshot_request(params, window)
    if request.audienceMode not in ("full", "incremental"):
        raise ParamError(f"audienceMode must be full or incremental, got {request.audienceMode!r}.")
    # The params accountId only names a single-account run: with several accounts it would give them all
    # one id (one folder, one uploadId); parse_accounts makes each entry carry its own accountId then.
    single = int(spec.get("accountCount") or 1) <= 1
    account_id = spec.get("accountId") or (params.get("accountId") if single else None) or account["id"]
    upload_id = given_upload_id(params, spec) or derive_upload_id(account_id, dag_id, run_id)
    plans = _sub_plans(request, window, account, tz=tz, today=today, flow_chunks=flow_chunks,
                       campaign_chunks=campaign_chunks, client=client, now=now)
    reporting = len(flow_chunks) + len(campaign_chunks)
    plan = {
        "kind": kind, "account_id": account_id, "klaviyo_conn_id": spec.get("klaviyoConnId", "klaviyo_default"),
        "upload_id": upload_id, "window": window.to_dict(), "timezone": tz, "budget": call_budget(reporting),
        "allow_empty": request.allowEmpty, **plans, **extra,
    }
    log.info("%s snapshot for account %s: %s..%s (%s), uploadId %s; %s", kind, account_id, window.start, window.end,
             tz, upload_id, quota_line(reporting))
    return plan


def nightly_plan(client: KlaviyoClient, spec: Mapping[str, Any], params: Mapping[str, Any], *, anchor: datetime,
                 dag_id: str, run_id: str) -> dict[str, Any]:
    """Yesterday ±1 in the account timezone: T = the day before ``anchor``; window [T-1-extra, T+1]."""
    extra = _int(params, "extraLookbackDays", 0, 0, NIGHTLY_ONE_CALL_MAX_LOOKBACK)
    given_upload_id(params, spec)  # a bad uploadId fails here, before anything is fetched
    account = catalog_core.account_info(client.get_account())
    tz = account["timezone"]
    anchor_day = anchor_day_for_run(anchor, tz)
    window = nightly_window(anchor_day, extra)
    today = max(local_today(tz, anchor), window.end)
    flow_chunks = report_chunks(window, tz, aggregation="per-day", strategy="series")
    return _finish("nightly", client, spec, params, window, tz, today, account, flow_chunks,
                   campaign_chunks(window, tz), anchor, dag_id, run_id,
                   {"anchor_day": anchor_day.isoformat(), "extra_lookback_days": extra})


def history_plan(client: KlaviyoClient, spec: Mapping[str, Any], params: Mapping[str, Any], *, now: datetime,
                 dag_id: str, run_id: str) -> dict[str, Any]:
    """A whole range as ≤60-day series chunks + ≤1-year campaign chunks, refused above the quota share."""
    check_not_before_klaviyo("start", params.get("start"))  # before the account call: nothing predates 2012
    given_upload_id(params, spec)  # a bad uploadId fails here, before anything is fetched
    account = catalog_core.account_info(client.get_account())
    tz = account["timezone"]
    today = local_today(tz, now)
    history = plan_history(params.get("start"), params.get("end"), tz,
                           max_share=float(params.get("maxShare", 0.5)), force=bool(params.get("force", False)),
                           today_local=today)
    log.info(history["summary"])
    window = Window.from_dict(history["window"])
    plan = _finish("history", client, spec, params, window, tz, today, account, history["flow_chunks"],
                   history["campaign_chunks"], now, dag_id, run_id,
                   {"history_budget": history["budget"], "nightly_comparison": history["nightly_comparison"]})
    for sync in ("flows", "campaigns"):  # the window's warnings (end = today: partial day) reach both summaries
        plan[sync]["warnings"] = [*plan[sync]["warnings"], *history["warnings"]]  # sub-plans share one list
    return plan


def all_chunks(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every reporting call of a snapshot plan, tagged with its sync (one mapped task per call)."""
    return [{**c, "sync": "flows"} for c in plan["flows"]["chunks"]] + \
        [{**c, "sync": "campaigns"} for c in plan["campaigns"]["chunks"]]
