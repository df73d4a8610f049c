"""Raw Klaviyo JSON:API documents → small JSON-able catalogs (what crosses the task boundary as XCom).

Shapes follow the 2026-07-15 spec: flow actions carry their message inside ``attributes.definition``
(``send-email`` → ``data.message`` {id, name}); campaign messages carry ``definition`` {channel, label,
content.subject}. Everything is sorted so the same account always yields the same catalog.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from flowsync_provider.core.errors import FlowsyncError, ParamError
from flowsync_provider.core.windows import Window, is_valid_timezone, to_local

PLACED_ORDER = "Placed Order"
EMAIL = "email"
# Action definition type → message channel (types without a message are not listed).
ACTION_CHANNELS = {
    "send-email": "email", "send-sms": "sms", "send-push-notification": "push",
    "send-whatsapp": "whatsapp",
}
# Actions that wrap message actions (their main action and experiment variations).
WRAPPER_ACTIONS = ("ab-test", "content-experiment")


def _attrs(resource: dict) -> dict:
    return resource.get("attributes") or {}


def _rel_ids(resource: dict, name: str) -> list[str]:
    data = ((resource.get("relationships") or {}).get(name) or {}).get("data")
    if isinstance(data, dict):
        data = [data]
    return [str(item["id"]) for item in data or [] if isinstance(item, dict) and item.get("id") is not None]


def _index(included: Iterable[dict], type_name: str) -> dict[str, dict]:
    return {str(r["id"]): r for r in included or [] if r.get("type") == type_name and r.get("id") is not None}


def _tag_names(resource: dict, tags: dict[str, dict]) -> list[str]:
    names = {str(_attrs(tags[t]).get("name") or "") for t in _rel_ids(resource, "tags") if t in tags}
    return sorted(names - {""})


def _action_messages(definition: dict | None) -> Iterator[tuple[str, str | None, str]]:
    """(channel, message id, message name) for each message a flow action sends (A/B variations too)."""
    if not isinstance(definition, dict):
        return
    kind = definition.get("type")
    data = definition.get("data") or {}
    if kind in ACTION_CHANNELS:
        message = data.get("message") or {}
        yield ACTION_CHANNELS[kind], message.get("id"), str(message.get("name") or "")
    elif kind in WRAPPER_ACTIONS:
        yield from _action_messages(data.get("main_action"))
        for variation in (data.get("current_experiment") or {}).get("variations") or []:
            yield from _action_messages(variation)


def _check_limit(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParamError(
            f"{name} must be a whole number of at least 1, got '{value}': raise it or leave it unset."
        )
    return value


def build_flow_catalog(
    flows_doc: dict,
    *,
    include_drafts: bool,
    limit_flows: int | None,
    limit_messages: int | None,
    enrich_message_names: bool = True,
) -> dict:
    """Flows (email messages, tags) from ``GET /api/flows?include=flow-actions,tags``, capped and sorted.

    Archived flows are excluded; drafts only with ``include_drafts``; only email messages. After sorting by
    (flow id, message id), ``limit_flows`` caps flows, then ``limit_messages`` caps messages in total; every
    excluded or cut id is listed so the summary can say exactly what is missing.
    """
    limit_flows = _check_limit("limitFlows", limit_flows)
    limit_messages = _check_limit("limitMessages", limit_messages)
    included = flows_doc.get("included") or []
    actions = _index(included, "flow-action")
    tags = _index(included, "tag")
    # Actions may point at their flow instead of (or as well as) the flow listing its actions.
    actions_by_flow: dict[str, set[str]] = {}
    for action_id, action in actions.items():
        for flow_id in _rel_ids(action, "flow"):
            actions_by_flow.setdefault(flow_id, set()).add(action_id)

    excluded: dict[str, list[str]] = {"archived": [], "drafts": [], "non_email_messages": []}
    warnings: list[str] = []
    flows: list[dict] = []
    seen_flows: set[str] = set()
    for flow in sorted(flows_doc.get("data") or [], key=lambda r: str(r.get("id"))):
        flow_id = str(flow.get("id"))
        if flow_id in seen_flows:
            continue
        seen_flows.add(flow_id)
        attrs = _attrs(flow)
        status = str(attrs.get("status") or "")
        if attrs.get("archived"):
            excluded["archived"].append(flow_id)
            continue
        if status == "draft" and not include_drafts:
            excluded["drafts"].append(flow_id)
            continue
        messages: dict[str, dict] = {}
        for action_id in sorted(set(_rel_ids(flow, "flow-actions")) | actions_by_flow.get(flow_id, set())):
            action = actions.get(action_id)
            if action is None:
                warnings.append(f"flow {flow_id}: action {action_id} is not in the included resources")
                continue
            for channel, message_id, name in _action_messages(_attrs(action).get("definition")):
                if not message_id:
                    warnings.append(f"flow {flow_id}: {channel} action {action_id} has no message id")
                    continue
                if channel != EMAIL:
                    excluded["non_email_messages"].append(str(message_id))
                    continue
                messages[str(message_id)] = {
                    "id": str(message_id),
                    "name": name if enrich_message_names else "",
                    "channel": EMAIL,
                    "action_id": action_id,
                }
        flows.append({
            "id": flow_id,
            "name": str(attrs.get("name") or ""),
            "status": status,
            "archived": bool(attrs.get("archived")),
            "tags": _tag_names(flow, tags),
            "messages": [messages[m] for m in sorted(messages)],
        })

    truncated: dict[str, list[str]] = {"flows": [], "messages": []}
    if limit_flows is not None and len(flows) > limit_flows:
        truncated["flows"] = [f["id"] for f in flows[limit_flows:]]
        flows = flows[:limit_flows]
        warnings.append(f"limitFlows={limit_flows} cut {len(truncated['flows'])} flows")
    if limit_messages is not None:
        kept = 0
        for flow in flows:
            keep = max(0, min(len(flow["messages"]), limit_messages - kept))
            truncated["messages"].extend(m["id"] for m in flow["messages"][keep:])
            flow["messages"] = flow["messages"][:keep]
            kept += keep
        if truncated["messages"]:
            warnings.append(f"limitMessages={limit_messages} cut {len(truncated['messages'])} messages")
    excluded["non_email_messages"] = sorted(set(excluded["non_email_messages"]))
    return {"flows": flows, "excluded": excluded, "truncated": truncated, "warnings": warnings}


def catalog_message_count(catalog: dict) -> int:
    """Messages in a flow catalog (the M of the row budget)."""
    return sum(len(flow["messages"]) for flow in catalog["flows"])


def _integration_key(metric: dict) -> str:
    integration = _attrs(metric).get("integration") or {}
    if not isinstance(integration, dict):
        return str(integration).lower()
    return str(integration.get("key") or integration.get("name") or "").lower()


def _integration_name(metric: dict) -> str:
    integration = _attrs(metric).get("integration") or {}
    if not isinstance(integration, dict):
        return str(integration)
    return str(integration.get("name") or integration.get("key") or "")


def resolve_conversion_metric(metrics: list[dict], *, override: str | None, env_value: str | None) -> dict:
    """The "Placed Order" metric: param > env SHOPIFY_PLACED_ORDER_METRIC_ID > metrics API (Shopify first)."""
    by_id = {str(m.get("id")): m for m in metrics or []}
    for value, source in ((override, "param"), (env_value, "env")):
        if value is not None and str(value).strip():
            metric_id = str(value).strip()
            known = by_id.get(metric_id)
            return {
                "id": metric_id,
                "name": str(_attrs(known).get("name") or "") if known else "",
                "integration": _integration_name(known) if known else "",
                "source": source,
            }
    candidates = sorted(
        (m for m in metrics or [] if str(_attrs(m).get("name") or "").strip() == PLACED_ORDER),
        key=lambda m: (_integration_key(m) != "shopify", str(m.get("id"))),
    )
    if not candidates:
        raise FlowsyncError(
            "No 'Placed Order' metric found in this Klaviyo account: set conversionMetricId or "
            "SHOPIFY_PLACED_ORDER_METRIC_ID."
        )
    best = candidates[0]
    return {"id": str(best["id"]), "name": PLACED_ORDER, "integration": _integration_name(best),
            "source": "metrics-api"}


def account_info(account_resource: dict) -> dict:
    """Id, timezone (UTC when missing/invalid, flagged), currency and organisation name of the account."""
    attrs = _attrs(account_resource)
    tz = attrs.get("timezone")
    valid = is_valid_timezone(tz)
    return {
        "id": str(account_resource.get("id") or ""),
        "timezone": tz if valid else "UTC",
        "timezone_defaulted": not valid,
        "currency": str(attrs.get("preferred_currency") or ""),
        "name": str((attrs.get("contact_information") or {}).get("organization_name") or ""),
    }


def _names(resources: Iterable[dict]) -> dict[str, str]:
    return {str(r.get("id")): str(_attrs(r).get("name") or "") for r in resources or []}


def build_campaign_catalog(
    campaigns_doc: dict,
    *,
    window: Window,
    tz: str | None,
    lists: list[dict],
    segments: list[dict],
    statuses: tuple[str, ...] = ("Sent",),
) -> dict:
    """Sent email campaigns whose send_time falls on an account-local day inside ``window``.

    Source: ``GET /api/campaigns?filter=equals(messages.channel,'email')&include=campaign-messages,tags``.
    Audience ids resolve to list/segment names (unknown ids are kept as ids so nothing silently vanishes).
    """
    included = campaigns_doc.get("included") or []
    messages = _index(included, "campaign-message")
    tags = _index(included, "tag")
    audience_names = {**_names(segments), **_names(lists)}
    messages_by_campaign: dict[str, set[str]] = {}
    for message_id, message in messages.items():
        for campaign_id in _rel_ids(message, "campaign"):
            messages_by_campaign.setdefault(campaign_id, set()).add(message_id)

    excluded: dict[str, list[str]] = {
        "archived": [], "not_sent": [], "no_send_time": [], "outside_window": [], "non_email_messages": [],
    }
    warnings: list[str] = []
    campaigns: list[dict] = []
    seen: set[str] = set()
    for campaign in sorted(campaigns_doc.get("data") or [], key=lambda r: str(r.get("id"))):
        campaign_id = str(campaign.get("id"))
        if campaign_id in seen:
            continue
        seen.add(campaign_id)
        attrs = _attrs(campaign)
        if attrs.get("archived"):
            excluded["archived"].append(campaign_id)
            continue
        status = str(attrs.get("status") or "")
        if status not in statuses:
            excluded["not_sent"].append(campaign_id)
            continue
        if not attrs.get("send_time"):
            excluded["no_send_time"].append(campaign_id)
            continue
        local_send = to_local(str(attrs["send_time"]), tz)
        if not window.contains(local_send.date()):
            excluded["outside_window"].append(campaign_id)
            continue
        audience_ids = (attrs.get("audiences") or {}).get("included") or []
        out_messages: list[dict] = []
        for message_id in sorted(set(_rel_ids(campaign, "campaign-messages")) |
                                 messages_by_campaign.get(campaign_id, set())):
            message = messages.get(message_id)
            if message is None:
                warnings.append(f"campaign {campaign_id}: message {message_id} is not in the included data")
                continue
            definition = _attrs(message).get("definition") or {}
            channel = str(definition.get("channel") or "")
            if channel != EMAIL:
                excluded["non_email_messages"].append(message_id)
                continue
            out_messages.append({
                "id": message_id,
                "channel": EMAIL,
                "subject": str((definition.get("content") or {}).get("subject") or ""),
                "label": str(definition.get("label") or ""),
            })
        if not out_messages:
            warnings.append(f"campaign {campaign_id}: no email messages")
        campaigns.append({
            "id": campaign_id,
            "name": str(attrs.get("name") or ""),
            "status": status,
            "send_time": local_send.isoformat(),
            "send_day": local_send.date().isoformat(),
            "audiences": sorted(audience_names.get(str(a)) or str(a) for a in audience_ids),
            "tags": _tag_names(campaign, tags),
            "messages": out_messages,
        })
    excluded["non_email_messages"] = sorted(set(excluded["non_email_messages"]))
    return {"campaigns": campaigns, "excluded": excluded, "warnings": warnings}


def list_names(resources: Iterable[dict]) -> dict[str, str]:
    """id → name for list or segment resources (profile Lists column, campaign audiences)."""
    return _names(resources)
