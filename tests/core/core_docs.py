"""Small JSON:API documents shaped exactly per Klaviyo's spec (revision 2026-07-15), for core unit tests.

``test_core_fixtures_spec.py`` validates every builder's output against the spec's schemas, so the
core is tested on the shapes the real API (and the sandbox) returns.
"""

from __future__ import annotations

BASE = "https://a.klaviyo.com/api"


def _links(kind: str, rid: str) -> dict:
    return {"self": f"{BASE}/{kind}/{rid}/"}


def _rel(kind: str, rid: str, name: str, type_name: str, ids: list[str]) -> dict:
    return {
        "data": [{"type": type_name, "id": i} for i in ids],
        "links": {"self": f"{BASE}/{kind}/{rid}/relationships/{name}/", "related": f"{BASE}/{kind}/{rid}/{name}/"},
    }


def tag(tag_id: str, name: str) -> dict:
    return {"type": "tag", "id": tag_id, "attributes": {"name": name}, "links": _links("tags", tag_id)}


def flow(flow_id: str, name: str, *, status: str = "live", archived: bool = False,
         action_ids: list[str] | None = None, tag_ids: list[str] | None = None) -> dict:
    return {
        "type": "flow",
        "id": flow_id,
        "attributes": {
            "name": name, "status": status, "archived": archived,
            "created": "2024-01-02T03:04:05+00:00", "updated": "2025-01-02T03:04:05+00:00",
            "trigger_type": "Added to List",
        },
        "relationships": {
            "flow-actions": _rel("flows", flow_id, "flow-actions", "flow-action", action_ids or []),
            "tags": _rel("flows", flow_id, "tags", "tag", tag_ids or []),
        },
        "links": _links("flows", flow_id),
    }


def _action(action_id: str, definition: dict, flow_id: str | None = None) -> dict:
    resource = {
        "type": "flow-action",
        "id": action_id,
        "attributes": {
            "created": "2024-01-02T03:04:05+00:00", "updated": "2025-01-02T03:04:05+00:00",
            "definition": definition,
        },
        "links": _links("flow-actions", action_id),
    }
    if flow_id:
        resource["relationships"] = {"flow": {
            "data": {"type": "flow", "id": flow_id},
            "links": {"self": f"{BASE}/flow-actions/{action_id}/relationships/flow/",
                      "related": f"{BASE}/flow-actions/{action_id}/flow/"},
        }}
    return resource


def email_definition(action_id: str, message_id: str, message_name: str, status: str = "live") -> dict:
    return {
        "id": action_id,
        "type": "send-email",
        "data": {
            "message": {
                "id": message_id, "name": message_name, "from_email": "shop@example.com",
                "from_label": "Shop", "subject_line": f"Subject of {message_name}", "template_id": "T1",
                "smart_sending_enabled": True, "transactional": False, "add_tracking_params": False,
            },
            "status": status,
        },
    }


def email_action(action_id: str, message_id: str, message_name: str, *, flow_id: str | None = None) -> dict:
    return _action(action_id, email_definition(action_id, message_id, message_name), flow_id)


def sms_action(action_id: str, message_id: str, message_name: str) -> dict:
    return _action(action_id, {
        "id": action_id,
        "type": "send-sms",
        "data": {"message": {"id": message_id, "name": message_name, "body": "Hi!"}, "status": "live"},
    })


def delay_action(action_id: str) -> dict:
    return _action(action_id, {
        "id": action_id, "type": "time-delay", "data": {"unit": "days", "value": 1},
    })


def ab_test_action(action_id: str, variations: list[tuple[str, str]]) -> dict:
    """An ab-test whose main action and variations are send-email actions (message id, name)."""
    defs = [email_definition(f"{action_id}-v{i}", mid, name) for i, (mid, name) in enumerate(variations)]
    return _action(action_id, {
        "id": action_id,
        "type": "ab-test",
        "data": {
            "status": "live",
            "experiment_status": "live",
            "main_action": defs[0],
            "current_experiment": {"id": f"X{action_id}", "name": "Subject test", "variations": defs[1:]},
        },
    })


def flows_doc(flows: list[dict], included: list[dict]) -> dict:
    return {"data": flows, "included": included, "links": {"self": f"{BASE}/flows/"}}


# ---------------------------------------------------------------- campaigns

def campaign(campaign_id: str, name: str, *, status: str = "Sent", archived: bool = False,
             send_time: str | None = "2025-09-10T14:00:00+00:00", audiences: list[str] | None = None,
             message_ids: list[str] | None = None, tag_ids: list[str] | None = None) -> dict:
    attributes = {
        "name": name, "status": status, "archived": archived,
        "audiences": {"included": audiences or [], "excluded": []},
        "send_options": {"use_smart_sending": True},
        "tracking_options": {"add_tracking_params": False, "is_tracking_clicks": True, "is_tracking_opens": True},
        "send_strategy": {"method": "static", "datetime": send_time or "2025-09-10T14:00:00+00:00"},
        "created_at": "2025-09-01T00:00:00+00:00",
        "updated_at": "2025-09-10T15:00:00+00:00",
    }
    if send_time is not None:
        attributes["send_time"] = send_time
    return {
        "type": "campaign",
        "id": campaign_id,
        "attributes": attributes,
        "relationships": {
            "campaign-messages": _rel("campaigns", campaign_id, "campaign-messages", "campaign-message",
                                      message_ids or []),
            "tags": _rel("campaigns", campaign_id, "tags", "tag", tag_ids or []),
        },
        "links": _links("campaigns", campaign_id),
    }


def campaign_message(message_id: str, campaign_id: str, *, channel: str = "email", subject: str = "Hello",
                     label: str = "Message") -> dict:
    if channel == "email":
        definition = {"channel": "email", "label": label,
                      "content": {"subject": subject, "preview_text": "", "from_email": "shop@example.com",
                                  "from_label": "Shop"}}
    else:
        definition = {"channel": "sms", "content": {"body": "Hi!"}}
    return {
        "type": "campaign-message",
        "id": message_id,
        "attributes": {"definition": definition, "created_at": "2025-09-01T00:00:00+00:00",
                       "updated_at": "2025-09-01T00:00:00+00:00"},
        "relationships": {"campaign": {
            "data": {"type": "campaign", "id": campaign_id},
            "links": {"self": f"{BASE}/campaign-messages/{message_id}/relationships/campaign/",
                      "related": f"{BASE}/campaign-messages/{message_id}/campaign/"},
        }},
        "links": _links("campaign-messages", message_id),
    }


def campaigns_doc(campaigns: list[dict], included: list[dict]) -> dict:
    return {"data": campaigns, "included": included, "links": {"self": f"{BASE}/campaigns/"}}


def named(type_name: str, rid: str, name: str) -> dict:
    """A list or segment resource (only id and name matter to the core)."""
    kind = "lists" if type_name == "list" else "segments"
    attributes: dict = {"name": name, "created": "2024-01-01T00:00:00+00:00", "updated": "2024-01-01T00:00:00+00:00"}
    if type_name == "segment":
        attributes.update({"is_active": True, "is_processing": False, "is_starred": False})
    return {"type": type_name, "id": rid, "attributes": attributes, "links": _links(kind, rid)}


# ---------------------------------------------------------------- metrics / account / profiles

def metric(metric_id: str, name: str, integration: dict | None = None) -> dict:
    attributes: dict = {"name": name, "created": "2024-01-01T00:00:00.000000",
                        "updated": "2024-01-01T00:00:00.000000"}
    if integration is not None:
        attributes["integration"] = integration
    return {"type": "metric", "id": metric_id, "attributes": attributes, "links": _links("metrics", metric_id)}


SHOPIFY = {"object": "integration", "id": "0eMvjm", "key": "shopify", "name": "Shopify", "category": "eCommerce"}
API = {"object": "integration", "id": "7FtS4J", "key": "api", "name": "API", "category": "API"}


def account(account_id: str = "AbC123", timezone: str = "America/New_York", currency: str = "USD") -> dict:
    return {
        "type": "account",
        "id": account_id,
        "attributes": {
            "test_account": False,
            "contact_information": {
                "default_sender_name": "Shop", "default_sender_email": "shop@example.com",
                "organization_name": "Example Shop",
                "street_address": {"address1": "1 Main St", "city": "Boston", "region": "MA", "country": "US",
                                   "zip": "02110"},
            },
            "industry": "Retail",
            "timezone": timezone,
            "preferred_currency": currency,
            "public_api_key": "PubKey",
            "locale": "en-US",
        },
        "links": _links("accounts", account_id),
    }


def profile(profile_id: str, email: str, *, first: str = "Ada", last: str = "Lovelace",
            consent: str = "SUBSCRIBED", can_receive: bool = True, suppression: list[dict] | None = None,
            consent_timestamp: str = "2024-05-01T10:00:00+00:00") -> dict:
    marketing: dict = {
        "can_receive_email_marketing": can_receive,
        "consent": consent,
        "consent_timestamp": consent_timestamp,
        "method": "FORM",
        "suppression": suppression or [],
        "list_suppressions": [],
    }
    return {
        "type": "profile",
        "id": profile_id,
        "attributes": {
            "email": email, "first_name": first, "last_name": last,
            "created": "2024-01-01T00:00:00+00:00", "updated": "2025-09-01T12:00:00+00:00",
            "subscriptions": {"email": {"marketing": marketing}},
        },
        "links": _links("profiles", profile_id),
    }


# ---------------------------------------------------------------- reports (the client returns attributes)

def series_result(flow_id: str, message_id: str, stats: dict[str, list], channel: str = "email",
                  message_name: str | None = None) -> dict:
    groupings = {"flow_id": flow_id, "flow_message_id": message_id, "send_channel": channel}
    if message_name is not None:
        groupings["flow_message_name"] = message_name
    return {"groupings": groupings, "statistics": stats}


def values_result(groupings: dict, stats: dict) -> dict:
    return {"groupings": groupings, "statistics": stats}


def report_document(type_name: str, attributes: dict) -> dict:
    """Wrap client-level report attributes into the full response document (for spec validation)."""
    return {"data": {"type": type_name, "attributes": attributes}, "links": {"self": f"{BASE}/x/"}}
