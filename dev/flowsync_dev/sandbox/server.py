"""A stdlib HTTP server that behaves like Klaviyo (revision 2026-07-15) for what flowsync calls.

Pipeline per API request: fault injection → auth (401) → revision (400) → route (404/405) →
rate limit (429, nothing consumed) → scope (403) → handler (200 or 400 with JSON:API errors).
Every API request is recorded in an in-memory log (never the key, never bodies).

Known deliberate choices (Klaviyo leaves them unspecified or they were observed):
- Report timeframes use the *local date parts* of ``start``/``end`` in the account timezone (the
  offset is ignored) and include the end day: ``start=03-01T00:00-05:00, end=03-08T00:00-05:00``
  covers Mar 1..Mar 8 inclusive for series *and* values reports (values = sum of the series).
- ``GET /api/flows`` and ``GET /api/campaigns`` exclude archived resources unless the filter
  says ``equals(archived,true)`` (or false).
- Report pagination: ``page_cursor`` query parameter (as in the spec; also accepted as
  ``data.attributes.page_cursor``), ``links.next`` holds the URL to POST the same body to.
- ``interval=hourly`` is rejected (the sandbox keeps daily granularity only).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from flowsync_dev.sandbox import filters as flt
from flowsync_dev.sandbox.data import (
    ADDITIVE_STATS,
    ALL_STATS,
    MONEY_STATS,
    REVISION,
    TIMEZONE,
    Campaign,
    FlowMessage,
    SandboxAccount,
    iso,
    rates,
    sum_stats,
    timeframe_key_days,
    zero_stats,
)
from flowsync_dev.sandbox.faults import FaultInjector
from flowsync_dev.sandbox.ratelimit import RateLimiter
from flowsync_provider.core.limits import operation_for

JSONAPI = "application/vnd.api+json"
ALL_SCOPES = frozenset({"accounts:read", "campaigns:read", "flows:read", "lists:read", "metrics:read",
                        "profiles:read", "segments:read"})
READONLY_SCOPES = frozenset({"accounts:read", "campaigns:read", "flows:read", "metrics:read", "segments:read"})
TIMEFRAME_KEYS = ("last_12_months", "last_30_days", "last_365_days", "last_3_months", "last_7_days",
                  "last_90_days", "last_month", "last_week", "last_year", "this_month", "this_week",
                  "this_year", "today", "yesterday")
INTERVAL_MAX_DAYS = {"daily": 60, "weekly": 366, "monthly": 364}
FLOW_GROUP_BY = ("flow_id", "flow_message_id", "flow_message_name", "flow_name", "send_channel", "tag_id",
                 "tag_name", "text_message_format", "variation", "variation_name")
CAMPAIGN_GROUP_BY = ("campaign_id", "campaign_message_id", "campaign_message_name", "group", "group_name",
                     "send_channel", "tag_id", "tag_name", "text_message_format", "variation", "variation_name")
SEND_CHANNELS = ("email", "sms", "push-notification", "whatsapp")
CMP = {"greater-than", "less-than", "greater-or-equal", "less-or-equal"}
DT_OPS = {"equals"} | CMP


class ApiError(Exception):
    """A JSON:API error response."""

    def __init__(self, status: int, code: str, title: str, detail: str,
                 pointer: str | None = None, parameter: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.pointer, self.parameter = pointer, parameter
        self.headers = headers or {}

    def document(self) -> dict:
        err: dict[str, Any] = {"id": str(uuid.uuid4()), "status": self.status, "code": self.code,
                               "title": self.title, "detail": self.detail}
        if self.pointer is not None:
            err["source"] = {"pointer": self.pointer}
        elif self.parameter is not None:
            err["source"] = {"parameter": self.parameter}
        return {"errors": [err]}


def bad_request(detail: str, pointer: str | None = None, parameter: str | None = None) -> ApiError:
    return ApiError(400, "invalid", "Invalid input.", detail, pointer=pointer, parameter=parameter)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    key_id: str | None = None
    scopes: frozenset[str] = frozenset()

    def param(self, name: str) -> str | None:
        vals = self.query.get(name)
        return vals[-1] if vals else None

    def csv_param(self, name: str) -> list[str]:
        raw = self.param(name)
        return [x.strip() for x in raw.split(",") if x.strip()] if raw else []


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: str
    scopes: tuple[str, ...]


def _route(method: str, template: str, handler: str, *scopes: str) -> Route:
    pattern = re.compile("^" + re.sub(r"\{id\}", r"(?P<id>[^/]+)", template) + "/?$")
    return Route(method, pattern, handler, scopes)


ROUTES: list[Route] = [
    _route("GET", "/api/accounts", "get_accounts", "accounts:read"),
    _route("GET", "/api/accounts/{id}", "get_account", "accounts:read"),
    _route("GET", "/api/flows", "get_flows", "flows:read"),
    _route("GET", "/api/flows/{id}", "get_flow", "flows:read"),
    _route("GET", "/api/flows/{id}/flow-actions", "get_actions_for_flow", "flows:read"),
    _route("GET", "/api/flow-actions/{id}", "get_flow_action", "flows:read"),
    _route("GET", "/api/flow-actions/{id}/flow-messages", "get_flow_action_messages", "flows:read"),
    _route("GET", "/api/flow-messages/{id}", "get_flow_message", "flows:read"),
    _route("GET", "/api/metrics", "get_metrics", "metrics:read"),
    _route("GET", "/api/metrics/{id}", "get_metric", "metrics:read"),
    _route("GET", "/api/campaigns", "get_campaigns", "campaigns:read"),
    _route("GET", "/api/campaigns/{id}", "get_campaign", "campaigns:read"),
    _route("GET", "/api/campaigns/{id}/campaign-messages", "get_messages_for_campaign", "campaigns:read"),
    _route("GET", "/api/lists", "get_lists", "lists:read"),
    _route("GET", "/api/lists/{id}", "get_list", "lists:read"),
    _route("GET", "/api/lists/{id}/profiles", "get_profiles_for_list", "lists:read", "profiles:read"),
    _route("GET", "/api/segments", "get_segments", "segments:read"),
    _route("GET", "/api/profiles", "get_profiles", "profiles:read"),
    _route("POST", "/api/flow-series-reports", "query_flow_series", "flows:read"),
    _route("POST", "/api/flow-values-reports", "query_flow_values", "flows:read"),
    _route("POST", "/api/campaign-values-reports", "query_campaign_values", "campaigns:read"),
]

# page[size]: (default, max) per collection, from the spec
PAGE_SIZES = {"flows": (50, 50), "flow-actions": (50, 50), "flow-messages": (50, 50), "campaigns": (100, 100),
              "lists": (10, 10), "segments": (10, 10), "profiles": (20, 100), "list-profiles": (20, 100)}
METRICS_PAGE = 200


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, sort_keys=True).encode()).decode().rstrip("=")


def _unb64(text: str) -> dict:
    pad = "=" * (-len(text) % 4)
    return json.loads(base64.urlsafe_b64decode(text + pad))


def _parse_dt(raw: str, pointer: str) -> datetime:
    try:
        return datetime.fromisoformat(raw)
    except (TypeError, ValueError) as exc:
        raise bad_request(f"'{raw}' is not a valid ISO-8601 datetime.", pointer=pointer) from exc


class SandboxApp:
    """Routing and rendering, independent of the socket layer (one per server)."""

    def __init__(self, account: SandboxAccount, *, base_url: str, api_key: str, readonly_key: str,
                 time_scale: float, fault_rate: float, date_times_utc: bool, report_page_size: int,
                 enforce_limits: bool, report_delay: float = 0.0, report_delay_count: int = 0) -> None:
        self.account = account
        self.base_url = base_url
        self.keys = {api_key: ("full", ALL_SCOPES), readonly_key: ("readonly", READONLY_SCOPES)}
        self.time_scale = time_scale
        self.date_times_utc = date_times_utc
        self.report_page_size = report_page_size
        self.limiter = RateLimiter(time_scale, enabled=enforce_limits)
        self.faults = FaultInjector(account.seed, fault_rate, report_delay=report_delay,
                                    report_delay_count=report_delay_count, time_scale=time_scale)
        self.log: list[dict] = []
        self.log_lock = threading.Lock()

    # ---- bookkeeping --------------------------------------------------------------------------
    def record(self, req: Request, operation: str | None, bucket: str | None, status: int | None,
               fault: str | None, delay: float = 0.0) -> None:
        entry = {"t": time.monotonic(), "wall": time.time(), "method": req.method, "path": req.path,
                 "operation": operation, "bucket": bucket, "status": status, "fault": fault, "key": req.key_id,
                 "delay": delay}
        with self.log_lock:
            self.log.append(entry)

    def requests(self) -> list[dict]:
        with self.log_lock:
            return [dict(e) for e in self.log]

    def reset(self) -> None:
        with self.log_lock:
            self.log.clear()
        self.limiter.reset()
        self.faults.reset()

    # ---- request pipeline ---------------------------------------------------------------------
    def authenticate(self, req: Request) -> None:
        auth = req.headers.get("Authorization")
        if not auth:
            raise ApiError(401, "not_authenticated", "Authentication credentials were not provided.",
                           "Missing or invalid authorization scheme. Please use Klaviyo-API-Key.")
        scheme, _, key = auth.partition(" ")
        if scheme != "Klaviyo-API-Key" or key.strip() not in self.keys:
            raise ApiError(401, "authentication_failed", "Incorrect authentication credentials.",
                           "Incorrect authentication credentials.")
        req.key_id, req.scopes = self.keys[key.strip()]

    @staticmethod
    def check_revision(req: Request) -> None:
        rev = req.headers.get("revision")
        if not rev:
            raise ApiError(400, "invalid", "Invalid input.", "A revision header is required (e.g. "
                           f"'revision: {REVISION}').", parameter="revision")
        if rev.strip() != REVISION:
            raise ApiError(400, "invalid", "Invalid input.",
                           f"Revision '{rev.strip()}' is not supported by this API; use '{REVISION}'.",
                           parameter="revision")

    @staticmethod
    def match(req: Request) -> tuple[Route, str | None]:
        allowed = False
        for route in ROUTES:
            m = route.pattern.match(req.path)
            if m:
                if route.method == req.method:
                    return route, m.groupdict().get("id")
                allowed = True
        if allowed:
            raise ApiError(405, "method_not_allowed", "Method not allowed.",
                           f"Method \"{req.method}\" not allowed.")
        raise ApiError(404, "not_found", "Not found.", f"The path {req.path} was not found.")

    # ---- JSON:API helpers ---------------------------------------------------------------------
    def url(self, path: str, params: dict[str, str] | None = None) -> str:
        return self.base_url + path + (("?" + urlencode(params)) if params else "")

    def rel(self, type_path: str, rid: str, name: str, data: Any = None, with_data: bool = False) -> dict:
        out: dict[str, Any] = {"links": {"self": self.url(f"/api/{type_path}/{rid}/relationships/{name}/"),
                                         "related": self.url(f"/api/{type_path}/{rid}/{name}/")}}
        if with_data:
            out["data"] = data
        return out

    def page_size(self, req: Request, kind: str) -> int:
        default, maximum = PAGE_SIZES[kind]
        raw = req.param("page[size]")
        if raw is None:
            return default
        try:
            size = int(raw)
        except ValueError as exc:
            raise bad_request(f"page[size] must be an integer, got '{raw}'.", parameter="page[size]") from exc
        if not 1 <= size <= maximum:
            raise bad_request(f"page[size] must be between 1 and {maximum}, got {size}.", parameter="page[size]")
        return size

    @staticmethod
    def cursor_offset(req: Request) -> int:
        raw = req.param("page[cursor]")
        if not raw:
            return 0
        try:
            offset = int(_unb64(raw)["o"])
        except (ValueError, KeyError, TypeError) as exc:
            raise bad_request("Invalid page cursor.", parameter="page[cursor]") from exc
        if offset < 0:
            raise bad_request("Invalid page cursor.", parameter="page[cursor]")
        return offset

    def collection_links(self, req: Request, next_offset: int | None, prev_offset: int | None) -> dict:
        params = {k: v[-1] for k, v in req.query.items()}
        links = {"self": self.url(req.path, params or None)}
        for name, off in (("next", next_offset), ("prev", prev_offset)):
            if off is not None:
                p = dict(params)
                p["page[cursor]"] = _b64({"o": off})
                links[name] = self.url(req.path, p)
        return links

    def paginate(self, req: Request, items: list, size: int) -> tuple[list, dict]:
        offset = self.cursor_offset(req)
        page = items[offset:offset + size]
        nxt = offset + size if offset + size < len(items) else None
        prev = max(0, offset - size) if offset > 0 else None
        return page, self.collection_links(req, nxt, prev)

    @staticmethod
    def sparse(req: Request, rtype: str, attributes: dict) -> dict:
        wanted = req.csv_param(f"fields[{rtype}]")
        if not wanted:
            return attributes
        top = {w.split(".")[0] for w in wanted}
        return {k: v for k, v in attributes.items() if k in top}

    def includes(self, req: Request, allowed: tuple[str, ...]) -> set[str]:
        inc = set(req.csv_param("include"))
        bad = inc - set(allowed)
        if bad:
            raise bad_request(f"'{sorted(bad)[0]}' is not a valid include. Allowed: {', '.join(allowed)}.",
                              parameter="include")
        return inc

    @staticmethod
    def parse_filter(req: Request, allowed: dict[str, set[str]], required: str | None = None) -> Any:
        raw = req.param("filter")
        if raw is None:
            if required:
                raise bad_request(f"A filter on '{required}' is required, e.g. "
                                  f"filter=equals({required},'email').", parameter="filter")
            return None
        try:
            node = flt.parse(raw)
            flt.check_allowed(node, allowed)
        except flt.FilterError as exc:
            raise bad_request(str(exc), parameter="filter") from exc
        if required and not any(c.field == required for c in flt.conditions(node)):
            raise bad_request(f"A filter on '{required}' is required, e.g. filter=equals({required},'email').",
                              parameter="filter")
        return node

    @staticmethod
    def apply_filter(node: Any, items: list, getter: Callable[[Any, str], Any]) -> list:
        if node is None:
            return items
        try:
            return [it for it in items if flt.evaluate(node, lambda f, it=it: getter(it, f))]
        except flt.FilterError as exc:
            raise bad_request(str(exc), parameter="filter") from exc

    @staticmethod
    def sort(req: Request, items: list, getter: Callable[[Any, str], Any], allowed: tuple[str, ...]) -> list:
        raw = req.param("sort")
        if not raw:
            return items
        field = raw.lstrip("-")
        if field not in allowed:
            raise bad_request(f"'{raw}' is not a valid sort field.", parameter="sort")
        return sorted(items, key=lambda it: (getter(it, field) is None, getter(it, field)),
                      reverse=raw.startswith("-"))

    @staticmethod
    def archived_default(node: Any, items: list, archived: Callable[[Any], bool]) -> list:
        """Klaviyo hides archived flows/campaigns unless the filter mentions ``archived``."""
        if node is not None and any(c.field == "archived" for c in flt.conditions(node)):
            return items
        return [it for it in items if not archived(it)]

    # ---- accounts -----------------------------------------------------------------------------
    def account_resource(self) -> dict:
        a = self.account
        return {
            "type": "account", "id": a.account_id,
            "attributes": {
                "test_account": False,
                "contact_information": {
                    "default_sender_name": "Sandbox Goods", "default_sender_email": "hello@sandbox.example",
                    "website_url": "https://sandbox.example", "organization_name": "Sandbox Goods Co.",
                    "street_address": {"address1": "1 Main St", "address2": None, "city": "Boston",
                                       "region": "MA", "country": "United States", "zip": "02110"},
                },
                "industry": "Retail", "timezone": TIMEZONE, "preferred_currency": "USD",
                "public_api_key": a.account_id, "locale": "en-US",
            },
            "links": {"self": self.url(f"/api/accounts/{a.account_id}/")},
        }

    def get_accounts(self, req: Request, _id: str | None) -> dict:
        res = self.account_resource()
        res["attributes"] = self.sparse(req, "account", res["attributes"])
        return {"data": [res], "links": {"self": self.url("/api/accounts/")}}

    def get_account(self, req: Request, rid: str | None) -> dict:
        if rid != self.account.account_id:
            raise ApiError(404, "not_found", "Not found.", f"Account {rid} not found.")
        return {"data": self.account_resource(), "links": {"self": self.url(f"/api/accounts/{rid}/")}}

    # ---- flows --------------------------------------------------------------------------------
    FLOW_FILTERS = {"id": {"any"}, "name": {"contains", "ends-with", "equals", "starts-with"},
                    "status": {"equals"}, "archived": {"equals"}, "created": DT_OPS, "updated": DT_OPS,
                    "trigger_type": {"equals"}}

    def flow_resource(self, req: Request, f: Any, inc: set[str]) -> dict:
        attrs = {"name": f.name, "status": f.status, "archived": f.archived, "created": iso(f.created),
                 "updated": iso(f.updated), "trigger_type": f.trigger_type}
        return {
            "type": "flow", "id": f.id, "attributes": self.sparse(req, "flow", attrs),
            "relationships": {
                "flow-actions": self.rel("flows", f.id, "flow-actions",
                                         [{"type": "flow-action", "id": a} for a in f.action_ids],
                                         "flow-actions" in inc),
                "tags": self.rel("flows", f.id, "tags", [{"type": "tag", "id": t} for t in f.tag_ids],
                                 "tags" in inc),
            },
            "links": {"self": self.url(f"/api/flows/{f.id}/")},
        }

    @staticmethod
    def _flow_field(f: Any, name: str) -> Any:
        return {"id": f.id, "name": f.name, "status": f.status, "archived": f.archived, "created": f.created,
                "updated": f.updated, "trigger_type": f.trigger_type}.get(name)

    def tag_resource(self, tid: str) -> dict:
        t = self.account.tag_by_id[tid]
        return {"type": "tag", "id": t.id, "attributes": {"name": t.name},
                "relationships": {"tag-group": self.rel("tags", t.id, "tag-group")},
                "links": {"self": self.url(f"/api/tags/{t.id}/")}}

    def get_flows(self, req: Request, _id: str | None) -> dict:
        inc = self.includes(req, ("flow-actions", "tags"))
        size = self.page_size(req, "flows")
        node = self.parse_filter(req, self.FLOW_FILTERS)
        items = self.archived_default(node, list(self.account.flows), lambda f: f.archived)
        items = self.apply_filter(node, items, self._flow_field)
        items = self.sort(req, items, self._flow_field,
                          ("created", "id", "name", "status", "trigger_type", "updated"))
        page, links = self.paginate(req, items, size)
        doc: dict[str, Any] = {"data": [self.flow_resource(req, f, inc) for f in page], "links": links}
        if inc:
            included: list[dict] = []
            seen: set[tuple[str, str]] = set()
            for f in page:
                if "flow-actions" in inc:
                    for aid in f.action_ids:
                        if ("flow-action", aid) not in seen:
                            seen.add(("flow-action", aid))
                            included.append(self.action_resource(req, self.account.action_by_id[aid]))
                if "tags" in inc:
                    for tid in f.tag_ids:
                        if ("tag", tid) not in seen:
                            seen.add(("tag", tid))
                            included.append(self.tag_resource(tid))
            doc["included"] = included
        return doc

    def get_flow(self, req: Request, rid: str | None) -> dict:
        f = self.account.flow_by_id.get(rid or "")
        if f is None:
            raise ApiError(404, "not_found", "Not found.", f"Flow {rid} not found.")
        return {"data": self.flow_resource(req, f, set()), "links": {"self": self.url(f"/api/flows/{rid}/")}}

    def message_definition(self, m: FlowMessage) -> dict:
        if m.channel == "email":
            return {"id": m.id, "name": m.name, "from_email": "hello@sandbox.example", "from_label": "Sandbox Goods",
                    "reply_to_email": None, "cc_email": None, "bcc_email": None, "subject_line": m.subject,
                    "preview_text": "", "template_id": f"T{m.id}", "smart_sending_enabled": True,
                    "transactional": False, "add_tracking_params": False, "custom_tracking_params": None,
                    "additional_filters": None}
        return {"id": m.id, "name": m.name, "body": m.body or "", "image_id": None, "dynamic_image": None,
                "shorten_links": True, "include_contact_card": False, "add_org_prefix": True,
                "add_info_link": True, "add_opt_out_language": False, "smart_sending_enabled": True,
                "sms_quiet_hours_enabled": True, "transactional": False, "add_tracking_params": False,
                "custom_tracking_params": None, "template_id": None, "additional_filters": None}

    def action_resource(self, req: Request, a: Any) -> dict:
        f = self.account.flow_by_id[a.flow_id]
        idx = f.action_ids.index(a.id)
        nxt = f.action_ids[idx + 1] if idx + 1 < len(f.action_ids) else None
        if a.type == "time-delay":
            definition = {"id": a.id, "type": "time-delay", "links": {"next": nxt},
                          "data": {"unit": "days", "value": a.delay_days, "secondary_value": None,
                                   "timezone": "profile", "delay_until_time": None, "delay_until_weekdays": None}}
            msgs: list[dict] = []
        else:
            m = self.account.message_by_id[a.message_id]
            definition = {"id": a.id, "type": a.type, "links": {"next": nxt},
                          "data": {"message": self.message_definition(m), "status": a.status}}
            msgs = [{"type": "flow-message", "id": m.id}]
        attrs = {"created": iso(a.created), "updated": iso(a.updated), "definition": definition}
        return {"type": "flow-action", "id": a.id, "attributes": self.sparse(req, "flow-action", attrs),
                "relationships": {
                    "flow": self.rel("flow-actions", a.id, "flow", {"type": "flow", "id": a.flow_id}, True),
                    "flow-messages": self.rel("flow-actions", a.id, "flow-messages", msgs, True)},
                "links": {"self": self.url(f"/api/flow-actions/{a.id}/")}}

    ACTION_FILTERS = {"id": {"any"}, "action_type": {"any", "equals"}, "status": {"equals"},
                      "created": DT_OPS, "updated": DT_OPS}

    def get_actions_for_flow(self, req: Request, rid: str | None) -> dict:
        f = self.account.flow_by_id.get(rid or "")
        if f is None:
            raise ApiError(404, "not_found", "Not found.", f"Flow {rid} not found.")
        size = self.page_size(req, "flow-actions")
        node = self.parse_filter(req, self.ACTION_FILTERS)
        items = [self.account.action_by_id[a] for a in f.action_ids]

        def field(a: Any, name: str) -> Any:
            return {"id": a.id, "action_type": a.type.upper().replace("-", "_"), "status": a.status,
                    "created": a.created, "updated": a.updated}.get(name)

        items = self.apply_filter(node, items, field)
        page, links = self.paginate(req, items, size)
        return {"data": [self.action_resource(req, a) for a in page], "links": links}

    def get_flow_action(self, req: Request, rid: str | None) -> dict:
        a = self.account.action_by_id.get(rid or "")
        if a is None:
            raise ApiError(404, "not_found", "Not found.", f"Flow action {rid} not found.")
        return {"data": self.action_resource(req, a), "links": {"self": self.url(f"/api/flow-actions/{rid}/")}}

    def message_resource(self, req: Request, m: FlowMessage) -> dict:
        attrs = {"channel": m.channel, "created": iso(m.created), "updated": iso(m.updated),
                 "definition": self.message_definition(m)}
        return {"type": "flow-message", "id": m.id, "attributes": self.sparse(req, "flow-message", attrs),
                "relationships": {
                    "flow-action": self.rel("flow-messages", m.id, "flow-action",
                                            {"type": "flow-action", "id": m.action_id}, True),
                    "template": self.rel("flow-messages", m.id, "template")},
                "links": {"self": self.url(f"/api/flow-messages/{m.id}/")}}

    MESSAGE_FILTERS = {"id": {"any"}, "name": {"contains", "ends-with", "equals", "starts-with"},
                       "created": DT_OPS, "updated": DT_OPS}

    def get_flow_action_messages(self, req: Request, rid: str | None) -> dict:
        a = self.account.action_by_id.get(rid or "")
        if a is None:
            raise ApiError(404, "not_found", "Not found.", f"Flow action {rid} not found.")
        size = self.page_size(req, "flow-messages")
        node = self.parse_filter(req, self.MESSAGE_FILTERS)
        items = [self.account.message_by_id[a.message_id]] if a.message_id else []

        def field(m: FlowMessage, name: str) -> Any:
            return {"id": m.id, "name": m.name, "created": m.created, "updated": m.updated}.get(name)

        items = self.apply_filter(node, items, field)
        page, links = self.paginate(req, items, size)
        return {"data": [self.message_resource(req, m) for m in page], "links": links}

    def get_flow_message(self, req: Request, rid: str | None) -> dict:
        m = self.account.message_by_id.get(rid or "")
        if m is None or m.deleted:
            raise ApiError(404, "not_found", "Not found.", f"Flow message {rid} not found.")
        return {"data": self.message_resource(req, m), "links": {"self": self.url(f"/api/flow-messages/{rid}/")}}

    # ---- metrics ------------------------------------------------------------------------------
    def metric_resource(self, req: Request, m: Any) -> dict:
        integration_id = hashlib.sha1(m.integration_key.encode()).hexdigest()[:6]
        attrs = {"name": m.name, "created": iso(m.created), "updated": iso(m.created),
                 "integration": {"object": "integration", "id": integration_id,
                                 "key": m.integration_key, "name": m.integration_name,
                                 "category": m.integration_category}}
        return {"type": "metric", "id": m.id, "attributes": self.sparse(req, "metric", attrs),
                "relationships": {"flow-triggers": self.rel("metrics", m.id, "flow-triggers")},
                "links": {"self": self.url(f"/api/metrics/{m.id}/")}}

    def get_metrics(self, req: Request, _id: str | None) -> dict:
        node = self.parse_filter(req, {"integration.name": {"equals"}, "integration.category": {"equals"}})
        items = self.apply_filter(node, list(self.account.metrics), lambda m, f: {
            "integration.name": m.integration_name, "integration.category": m.integration_category}.get(f))
        page, links = self.paginate(req, items, METRICS_PAGE)
        return {"data": [self.metric_resource(req, m) for m in page], "links": links}

    def get_metric(self, req: Request, rid: str | None) -> dict:
        m = self.account.metric_by_id.get(rid or "")
        if m is None:
            raise ApiError(404, "not_found", "Not found.", f"Metric {rid} not found.")
        return {"data": self.metric_resource(req, m), "links": {"self": self.url(f"/api/metrics/{rid}/")}}

    # ---- campaigns ----------------------------------------------------------------------------
    CAMPAIGN_FILTERS = {"id": {"any"}, "messages.channel": {"equals"}, "name": {"contains"},
                        "status": {"any", "equals"}, "archived": {"equals"}, "created_at": CMP,
                        "scheduled_at": CMP, "updated_at": CMP}

    @staticmethod
    def _campaign_field(c: Campaign, name: str) -> Any:
        return {"id": c.id, "messages.channel": c.channel, "name": c.name, "status": c.status,
                "archived": c.archived, "created_at": c.created_at, "scheduled_at": c.scheduled_at,
                "updated_at": c.updated_at}.get(name)

    def campaign_resource(self, req: Request, c: Campaign, inc: set[str]) -> dict:
        strategy: dict[str, Any] = {"method": "static", "datetime": iso(c.send_time or c.created_at),
                                    "options": {"is_local": False}}
        tracking: dict[str, Any] = ({"add_tracking_params": False, "custom_tracking_params": None,
                                     "is_tracking_clicks": True, "is_tracking_opens": True}
                                    if c.channel == "email" else {"add_tracking_params": False,
                                                                  "custom_tracking_params": None})
        attrs = {"name": c.name, "status": c.status, "archived": c.archived,
                 "audiences": {"included": list(c.included), "excluded": list(c.excluded)},
                 "send_options": {"use_smart_sending": True}, "tracking_options": tracking,
                 "send_strategy": strategy, "created_at": iso(c.created_at),
                 "scheduled_at": iso(c.scheduled_at) if c.scheduled_at else None,
                 "updated_at": iso(c.updated_at), "send_time": iso(c.send_time) if c.send_time else None}
        return {"type": "campaign", "id": c.id, "attributes": self.sparse(req, "campaign", attrs),
                "relationships": {
                    "campaign-messages": self.rel("campaigns", c.id, "campaign-messages",
                                                  [{"type": "campaign-message", "id": m} for m in c.message_ids],
                                                  "campaign-messages" in inc),
                    "tags": self.rel("campaigns", c.id, "tags", [{"type": "tag", "id": t} for t in c.tag_ids],
                                     "tags" in inc)},
                "links": {"self": self.url(f"/api/campaigns/{c.id}/")}}

    def campaign_message_resource(self, req: Request, mid: str) -> dict:
        m = self.account.campaign_message_by_id[mid]
        c = self.account.campaign_by_id[m.campaign_id]
        if m.channel == "email":
            definition: dict[str, Any] = {
                "channel": "email", "label": m.label,
                "content": {"subject": m.subject, "preview_text": m.preview_text,
                            "from_email": "hello@sandbox.example", "from_label": "Sandbox Goods",
                            "reply_to_email": None, "cc_email": None, "bcc_email": None}}
        else:
            definition = {"channel": "sms", "content": {"body": m.body, "media_url": None},
                          "render_options": {"shorten_links": True, "add_org_prefix": True,
                                             "add_info_link": True, "add_opt_out_language": False}}
        send_times = [{"datetime": iso(c.send_time), "is_local": False}] if c.send_time else []
        attrs = {"definition": definition, "send_times": send_times, "created_at": iso(m.created),
                 "updated_at": iso(m.updated)}
        return {"type": "campaign-message", "id": m.id,
                "attributes": self.sparse(req, "campaign-message", attrs),
                "relationships": {
                    "campaign": self.rel("campaign-messages", m.id, "campaign",
                                         {"type": "campaign", "id": c.id}, True),
                    "template": self.rel("campaign-messages", m.id, "template")},
                "links": {"self": self.url(f"/api/campaign-messages/{m.id}/")}}

    def get_campaigns(self, req: Request, _id: str | None) -> dict:
        inc = self.includes(req, ("campaign-messages", "tags"))
        size = self.page_size(req, "campaigns")
        node = self.parse_filter(req, self.CAMPAIGN_FILTERS, required="messages.channel")
        items = self.archived_default(node, list(self.account.campaigns), lambda c: c.archived)
        items = self.apply_filter(node, items, self._campaign_field)
        items = self.sort(req, items, self._campaign_field, ("created_at", "id", "name", "scheduled_at", "updated_at"))
        page, links = self.paginate(req, items, size)
        doc: dict[str, Any] = {"data": [self.campaign_resource(req, c, inc) for c in page], "links": links}
        if inc:
            included, seen = [], set()
            for c in page:
                if "campaign-messages" in inc:
                    included += [self.campaign_message_resource(req, m) for m in c.message_ids]
                if "tags" in inc:
                    for t in c.tag_ids:
                        if t not in seen:
                            seen.add(t)
                            included.append(self.tag_resource(t))
            doc["included"] = included
        return doc

    def get_campaign(self, req: Request, rid: str | None) -> dict:
        c = self.account.campaign_by_id.get(rid or "")
        if c is None:
            raise ApiError(404, "not_found", "Not found.", f"Campaign {rid} not found.")
        return {"data": self.campaign_resource(req, c, set()), "links": {"self": self.url(f"/api/campaigns/{rid}/")}}

    def get_messages_for_campaign(self, req: Request, rid: str | None) -> dict:
        c = self.account.campaign_by_id.get(rid or "")
        if c is None:
            raise ApiError(404, "not_found", "Not found.", f"Campaign {rid} not found.")
        return {"data": [self.campaign_message_resource(req, m) for m in c.message_ids],
                "links": {"self": self.url(req.path)}}

    # ---- lists, segments, profiles ------------------------------------------------------------
    LIST_FILTERS = {"name": {"any", "equals"}, "id": {"any", "equals"}, "created": {"greater-than"},
                    "updated": {"greater-than"}}

    def list_resource(self, req: Request, x: Any) -> dict:
        attrs = {"name": x.name, "created": iso(x.created), "updated": iso(x.updated),
                 "opt_in_process": x.opt_in_process}
        return {"type": "list", "id": x.id, "attributes": self.sparse(req, "list", attrs),
                "relationships": {"profiles": self.rel("lists", x.id, "profiles"),
                                  "tags": self.rel("lists", x.id, "tags"),
                                  "flow-triggers": self.rel("lists", x.id, "flow-triggers")},
                "links": {"self": self.url(f"/api/lists/{x.id}/")}}

    def get_lists(self, req: Request, _id: str | None) -> dict:
        size = self.page_size(req, "lists")
        node = self.parse_filter(req, self.LIST_FILTERS)
        items = self.apply_filter(node, list(self.account.lists), lambda x, f: {
            "name": x.name, "id": x.id, "created": x.created, "updated": x.updated}.get(f))
        page, links = self.paginate(req, items, size)
        return {"data": [self.list_resource(req, x) for x in page], "links": links}

    def get_list(self, req: Request, rid: str | None) -> dict:
        x = self.account.list_by_id.get(rid or "")
        if x is None:
            raise ApiError(404, "not_found", "Not found.", f"List {rid} not found.")
        return {"data": self.list_resource(req, x), "links": {"self": self.url(f"/api/lists/{rid}/")}}

    def get_segments(self, req: Request, _id: str | None) -> dict:
        size = self.page_size(req, "segments")
        node = self.parse_filter(req, {**self.LIST_FILTERS, "is_active": {"any", "equals"},
                                       "is_starred": {"equals"}})
        items = self.apply_filter(node, list(self.account.segments), lambda s, f: {
            "name": s.name, "id": s.id, "created": s.created, "updated": s.updated, "is_active": s.is_active,
            "is_starred": s.is_starred}.get(f))
        page, links = self.paginate(req, items, size)
        data = []
        for s in page:
            definition = ({"condition_groups": [{"conditions": [{"type": "profile-group-membership",
                                                                 "is_member": True, "group_ids": [s.list_id]}]}]}
                          if s.list_id else {"condition_groups": []})
            attrs = {"name": s.name, "definition": definition, "created": iso(s.created), "updated": iso(s.updated),
                     "is_active": s.is_active, "is_processing": False, "is_starred": s.is_starred}
            data.append({"type": "segment", "id": s.id, "attributes": self.sparse(req, "segment", attrs),
                         "relationships": {"profiles": self.rel("segments", s.id, "profiles"),
                                           "tags": self.rel("segments", s.id, "tags"),
                                           "flow-triggers": self.rel("segments", s.id, "flow-triggers")},
                         "links": {"self": self.url(f"/api/segments/{s.id}/")}})
        return {"data": data, "links": links}

    def additional_fields(self, req: Request) -> set[str]:
        fields = set(req.csv_param("additional-fields[profile]"))
        bad = fields - {"subscriptions", "predictive_analytics"}
        if bad:
            raise bad_request(f"'{sorted(bad)[0]}' is not a valid additional field.",
                              parameter="additional-fields[profile]")
        return fields

    def profile_resource(self, req: Request, i: int, extra: set[str], joined: datetime | None = None) -> dict:
        p = self.account.profile(i)
        attrs = dict(p["attributes"])
        subs = attrs.pop("subscriptions")
        if "subscriptions" in extra:
            attrs["subscriptions"] = subs
        if "predictive_analytics" in extra:
            attrs["predictive_analytics"] = {"historic_clv": None, "predicted_clv": None, "total_clv": None,
                                             "historic_number_of_orders": None, "predicted_number_of_orders": None,
                                             "average_days_between_orders": None, "average_order_value": None,
                                             "churn_probability": None, "expected_date_of_next_order": None}
        if joined is not None:
            attrs["joined_group_at"] = iso(joined)
        attrs = self.sparse(req, "profile", attrs)
        return {"type": "profile", "id": p["id"], "attributes": attrs,
                "relationships": {"lists": self.rel("profiles", p["id"], "lists"),
                                  "segments": self.rel("profiles", p["id"], "segments")},
                "links": {"self": self.url(f"/api/profiles/{p['id']}/")}}

    PROFILE_FILTERS = {"id": {"any", "equals"}, "email": {"any", "equals"}, "phone_number": {"any", "equals"},
                       "external_id": {"any", "equals"}, "created": {"greater-than", "less-than"},
                       "updated": {"greater-than", "less-than"}}

    def _scan(self, req: Request, size: int, indexes: Any, make: Callable[[int], dict]) -> dict:
        """Stream-paginate over profile indexes; the cursor is the next index to scan from."""
        data, last = [], None
        for i in indexes:
            if len(data) == size:
                last = i
                break
            data.append(make(i))
        return {"data": data, "links": self.collection_links(req, last, None)}

    def _profile_predicate(self, node: Any) -> Callable[[int], bool]:
        if node is None:
            return lambda i: True
        fields = {c.field for c in flt.conditions(node)}
        cheap = fields <= {"updated", "created", "id"}

        def get(i: int) -> Callable[[str], Any]:
            if cheap:
                return lambda f: {"updated": self.account.profile_updated(i),
                                  "created": self.account._profile_created(i),
                                  "id": self.account.profile_id(i)}[f]
            p = self.account.profile(i)
            a = p["attributes"]
            return lambda f: {"id": p["id"], "email": a["email"], "phone_number": a["phone_number"],
                              "external_id": a["external_id"], "created": datetime.fromisoformat(a["created"]),
                              "updated": datetime.fromisoformat(a["updated"])}[f]

        def pred(i: int) -> bool:
            try:
                return flt.evaluate(node, get(i))
            except flt.FilterError as exc:
                raise bad_request(str(exc), parameter="filter") from exc

        return pred

    def get_profiles(self, req: Request, _id: str | None) -> dict:
        size = self.page_size(req, "profiles")
        extra = self.additional_fields(req)
        node = self.parse_filter(req, self.PROFILE_FILTERS)
        pred = self._profile_predicate(node)
        start = self.cursor_offset(req)
        indexes = (i for i in range(start, self.account.n_profiles) if pred(i))
        return self._scan(req, size, indexes, lambda i: self.profile_resource(req, i, extra))

    def get_profiles_for_list(self, req: Request, rid: str | None) -> dict:
        if (rid or "") not in self.account.list_by_id:
            raise ApiError(404, "not_found", "Not found.", f"List {rid} not found.")
        size = self.page_size(req, "list-profiles")
        extra = self.additional_fields(req)
        node = self.parse_filter(req, {"email": {"any", "equals"}, "phone_number": {"any", "equals"},
                                       "joined_group_at": CMP})
        start = self.cursor_offset(req)

        def ok(i: int) -> bool:
            if node is None:
                return True
            p = self.account.profile(i)["attributes"]
            vals = {"email": p["email"], "phone_number": p["phone_number"],
                    "joined_group_at": self.account.joined_group_at(rid, i)}
            try:
                return flt.evaluate(node, lambda f: vals[f])
            except flt.FilterError as exc:
                raise bad_request(str(exc), parameter="filter") from exc

        indexes = (i for i in self.account.list_member_indexes(rid, start) if ok(i))
        return self._scan(req, size, indexes,
                          lambda i: self.profile_resource(req, i, extra, self.account.joined_group_at(rid, i)))

    # ---- reports ------------------------------------------------------------------------------
    def query_flow_series(self, req: Request, _id: str | None) -> dict:
        return self.report(req, "flow-series-report", series=True, flows=True)

    def query_flow_values(self, req: Request, _id: str | None) -> dict:
        return self.report(req, "flow-values-report", series=False, flows=True)

    def query_campaign_values(self, req: Request, _id: str | None) -> dict:
        return self.report(req, "campaign-values-report", series=False, flows=False)

    def report_days(self, tf: Any) -> list[date]:
        """The local days a timeframe covers (see the module docstring for the end-day rule)."""
        ptr = "/data/attributes/timeframe"
        if not isinstance(tf, dict):
            raise bad_request("timeframe must be an object with 'key' or 'start' and 'end'.", pointer=ptr)
        if "key" in tf:
            if set(tf) != {"key"}:
                raise bad_request("timeframe must have either 'key' or 'start' and 'end', not both.", pointer=ptr)
            if tf["key"] not in TIMEFRAME_KEYS:
                raise bad_request(f"'{tf['key']}' is not a valid timeframe key. Allowed: {', '.join(TIMEFRAME_KEYS)}.",
                                  pointer=ptr + "/key")
            assert self.account.today is not None
            first, last = timeframe_key_days(tf["key"], self.account.today)
            return self.account.days(first, last)
        for k in ("start", "end"):
            if k not in tf:
                raise bad_request(f"timeframe.{k} is required for a custom timeframe.", pointer=ptr)
            if not isinstance(tf[k], str):
                raise bad_request(f"timeframe.{k} must be an ISO-8601 datetime string.", pointer=f"{ptr}/{k}")
        # the offset is ignored: the account (company) timezone applies to the local date/time parts
        start = _parse_dt(tf["start"], f"{ptr}/start").replace(tzinfo=None)
        end = _parse_dt(tf["end"], f"{ptr}/end").replace(tzinfo=None)
        if end <= start:
            raise bad_request("timeframe.end must be after timeframe.start.", pointer=ptr)
        try:
            year_later = start.replace(year=start.year + 1)
        except ValueError:  # Feb 29
            year_later = start.replace(year=start.year + 1, day=28)
        if end > year_later:
            raise bad_request("The timeframe cannot be longer than 1 year.", pointer=ptr)
        return self.account.days(start.date(), end.date())

    def _validate_report(self, req: Request, rtype: str, series: bool, flows: bool) -> dict:
        try:
            body = json.loads(req.body or b"null")
        except ValueError as exc:
            raise bad_request("The request body is not valid JSON.", pointer="/data") from exc
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise bad_request("The request body must be an object with 'data'.", pointer="/data")
        data = body["data"]
        if data.get("type") != rtype:
            raise bad_request(f"data.type must be '{rtype}'.", pointer="/data/type")
        attrs = data.get("attributes")
        if not isinstance(attrs, dict):
            raise bad_request("data.attributes is required.", pointer="/data/attributes")
        stats = attrs.get("statistics")
        if not isinstance(stats, list) or not stats:
            raise bad_request("statistics is required and must be a non-empty list.",
                              pointer="/data/attributes/statistics")
        for i, s in enumerate(stats):
            if s not in ALL_STATS:
                raise bad_request(f"'{s}' is not a valid statistic.", pointer=f"/data/attributes/statistics/{i}")
        if "timeframe" not in attrs:
            raise bad_request("timeframe is required.", pointer="/data/attributes/timeframe")
        metric_id = attrs.get("conversion_metric_id")
        if not isinstance(metric_id, str) or not metric_id:
            raise bad_request("conversion_metric_id is required.", pointer="/data/attributes/conversion_metric_id")
        if metric_id not in self.account.metric_by_id:
            raise bad_request(f"Metric '{metric_id}' does not exist.", pointer="/data/attributes/conversion_metric_id")
        days = self.report_days(attrs["timeframe"])
        interval = None
        if series:
            interval = attrs.get("interval")
            if interval is None:
                raise bad_request("interval is required.", pointer="/data/attributes/interval")
            if interval == "hourly":
                raise bad_request("interval 'hourly' is not available in this sandbox; use daily, weekly or monthly.",
                                  pointer="/data/attributes/interval")
            if interval not in INTERVAL_MAX_DAYS:
                raise bad_request(f"'{interval}' is not a valid interval.", pointer="/data/attributes/interval")
            tf = attrs["timeframe"]
            if "start" in tf:
                span = (_parse_dt(tf["end"], "").replace(tzinfo=None)
                        - _parse_dt(tf["start"], "").replace(tzinfo=None))
            else:
                span = timedelta(days=len(days))
            limit = INTERVAL_MAX_DAYS[interval]
            if span > timedelta(days=limit):
                raise bad_request(f"If {interval} interval is used, the timeframe cannot be longer than {limit} days.",
                                  pointer="/data/attributes/timeframe")
        allowed_groups = FLOW_GROUP_BY if flows else CAMPAIGN_GROUP_BY
        required = ("flow_id", "flow_message_id") if flows else ("campaign_id", "campaign_message_id")
        group_by = attrs.get("group_by")
        if group_by is None:
            group_by = [required[0], required[1], "send_channel"]
        if not isinstance(group_by, list) or not group_by:
            raise bad_request("group_by must be a non-empty list.", pointer="/data/attributes/group_by")
        for g in group_by:
            if g not in allowed_groups:
                raise bad_request(f"'{g}' is not a valid group_by. Allowed: {', '.join(allowed_groups)}.",
                                  pointer="/data/attributes/group_by")
        missing = [r for r in required if r not in group_by]
        if missing:
            raise bad_request(f"The following group by attributes are required: {', '.join(required)}.",
                              pointer="/data/attributes/group_by")
        node = None
        raw_filter = attrs.get("filter")
        if raw_filter is not None:
            scalars = [g for g in allowed_groups if g not in ("tag_id", "tag_name", "group", "group_name")]
            allowed = {s: {"equals", "contains-any"} for s in scalars}
            allowed.update({"tag_id": {"contains-any", "contains-all"}, "tag_name": {"contains-any", "contains-all"}})
            try:
                if not isinstance(raw_filter, str):
                    raise flt.FilterError("filter must be a string.")
                node = flt.parse(raw_filter)
                flt.check_allowed(node, allowed, once_per_field=True)
                for c in flt.conditions(node):
                    if c.field == "send_channel":
                        for v in c.value if isinstance(c.value, list) else [c.value]:
                            if v not in SEND_CHANNELS:
                                raise flt.FilterError(f"'{v}' is not a valid send_channel. "
                                                      f"Allowed: {', '.join(SEND_CHANNELS)}.")
            except flt.FilterError as exc:
                raise bad_request(str(exc), pointer="/data/attributes/filter") from exc
        cursor = req.param("page_cursor") or attrs.get("page_cursor")
        canon = json.dumps({k: v for k, v in attrs.items() if k != "page_cursor"}, sort_keys=True)
        digest = hashlib.sha256((rtype + canon).encode()).hexdigest()[:16]
        offset = 0
        if cursor:
            try:
                c = _unb64(cursor)
                offset = int(c["o"])
                ok = c["h"] == digest and offset >= 0
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                raise bad_request("Invalid page_cursor: it does not belong to this report request.",
                                  parameter="page_cursor")
        return {"stats": stats, "metric": metric_id, "days": days, "interval": interval, "group_by": group_by,
                "filter": node, "offset": offset, "digest": digest}

    def _buckets(self, days: list[date], interval: str | None) -> list[list[date]]:
        if interval in (None, "daily"):
            return [[d] for d in days]
        out: list[list[date]] = []
        for d in days:
            if not out:
                out.append([d])
            elif interval == "weekly" and (d - out[-1][0]).days < 7:
                out[-1].append(d)
            elif interval == "monthly" and (d.year, d.month) == (out[-1][0].year, out[-1][0].month):
                out[-1].append(d)
            else:
                out.append([d])
        return out

    def date_time(self, day: date) -> str:
        dt = self.account.local_midnight(day)
        return (dt.astimezone(UTC) if self.date_times_utc else dt).isoformat()

    @staticmethod
    def render_stats(additive: dict, wanted: list[str]) -> dict[str, float | int]:
        r = rates(additive)
        out: dict[str, float | int] = {}
        for s in wanted:
            if s in ADDITIVE_STATS:
                out[s] = round(float(additive[s]), 2) if s in MONEY_STATS else int(additive[s])
            else:
                out[s] = r[s]
        return out

    def _flow_groupings(self, q: dict) -> list[tuple[dict, Any]]:
        """(groupings, flow message) rows with activity in the window, matching the filter."""
        acc = self.account
        rows: list[tuple[dict, Any]] = []
        first, last = q["days"][0], q["days"][-1]
        for m in acc.flow_messages:
            flow = acc.flow_by_id[m.flow_id]
            tag_ids = list(flow.tag_ids)
            tag_names = [acc.tag_by_id[t].name for t in tag_ids]
            vals = {"flow_id": flow.id, "flow_name": flow.name, "flow_message_id": m.id, "flow_message_name": m.name,
                    "send_channel": m.channel, "text_message_format": "SMS" if m.channel == "sms" else None,
                    "variation": m.id, "variation_name": m.name, "tag_id": tag_ids, "tag_name": tag_names}
            if q["filter"] is not None and not flt.evaluate(q["filter"], lambda f, v=vals: v[f]):
                continue
            if not acc.has_activity(m.id, first, last):
                continue
            rows += self._expand(vals, q["group_by"], m)
        return rows

    @staticmethod
    def _expand(vals: dict, group_by: list[str], item: Any) -> list[tuple[dict, Any]]:
        """One grouping per item, or one per tag when grouping by tag (untagged items drop out)."""
        tag_keys = [g for g in group_by if g in ("tag_id", "tag_name")]
        base = {g: vals.get(g) for g in group_by if g not in tag_keys}
        if not tag_keys:
            return [(base, item)]
        out = []
        for tid, tname in zip(vals["tag_id"], vals["tag_name"], strict=True):
            g = dict(base)
            if "tag_id" in tag_keys:
                g["tag_id"] = tid
            if "tag_name" in tag_keys:
                g["tag_name"] = tname
            out.append(({k: g[k] for k in group_by}, item))
        return out

    def _campaign_groupings(self, q: dict) -> list[tuple[dict, Any]]:
        acc = self.account
        days = set(q["days"])
        rows: list[tuple[dict, Any]] = []
        for cm in acc.campaign_messages:
            c = acc.campaign_by_id[cm.campaign_id]
            if c.status != "Sent" or c.send_day not in days:
                continue
            tag_ids = list(c.tag_ids)
            vals = {"campaign_id": c.id, "campaign_message_id": cm.id, "campaign_message_name": cm.label,
                    "group": None, "group_name": None, "send_channel": c.channel,
                    "text_message_format": "SMS" if c.channel == "sms" else None, "variation": cm.id,
                    "variation_name": cm.label, "tag_id": tag_ids,
                    "tag_name": [acc.tag_by_id[t].name for t in tag_ids]}
            if q["filter"] is not None and not flt.evaluate(q["filter"], lambda f, v=vals: v[f]):
                continue
            if acc.campaign_stats(cm.id, q["metric"])["recipients"] <= 0:
                continue
            rows += self._expand(vals, q["group_by"], cm)
        return rows

    def report(self, req: Request, rtype: str, *, series: bool, flows: bool) -> dict:
        q = self._validate_report(req, rtype, series, flows)
        rows = self._flow_groupings(q) if flows else self._campaign_groupings(q)
        rows.sort(key=lambda r: json.dumps(r[0], sort_keys=True))
        offset, size = q["offset"], self.report_page_size
        page = rows[offset:offset + size]
        acc = self.account
        results = []
        buckets = self._buckets(q["days"], q["interval"]) if series else []
        for groupings, item in page:
            if not flows:
                results.append({"groupings": groupings,
                                "statistics": self.render_stats(acc.campaign_stats(item.id, q["metric"]), q["stats"])})
                continue
            if series:
                per_bucket = [sum_stats(acc.daily_stats(item.id, d, q["metric"]) for d in b) for b in buckets]
                rendered = [self.render_stats(s, q["stats"]) for s in per_bucket]
                results.append({"groupings": groupings,
                                "statistics": {s: [r[s] for r in rendered] for s in q["stats"]}})
            else:
                total = sum_stats(acc.daily_stats(item.id, d, q["metric"]) for d in q["days"]) if q["days"] \
                    else zero_stats()
                results.append({"groupings": groupings, "statistics": self.render_stats(total, q["stats"])})
        attributes: dict[str, Any] = {"results": results}
        if series:
            attributes["date_times"] = [self.date_time(b[0]) for b in buckets]
        path = req.path.rstrip("/") + "/"
        links = {"self": self.url(path)}
        if offset + size < len(rows):
            links["next"] = self.url(path, {"page_cursor": _b64({"o": offset + size, "h": q["digest"]})})
        rel: dict[str, Any]
        if flows:
            rel = {"flows": {"data": [{"type": "flow", "id": fid} for fid in
                                      dict.fromkeys(item.flow_id for _g, item in page)]},
                   "flow-messages": {"data": [{"type": "flow-message", "id": mid} for mid in
                                              dict.fromkeys(item.id for _g, item in page)]}}
        else:
            rel = {"campaigns": {"data": [{"type": "campaign", "id": cid} for cid in
                                          dict.fromkeys(item.campaign_id for _g, item in page)]}}
        return {"data": {"type": rtype, "attributes": attributes, "relationships": rel}, "links": links}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "flowsync-klaviyo-sandbox"
    sys_version = ""

    @property
    def app(self) -> SandboxApp:
        return self.server.app  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence per-request stderr lines (they would carry query strings)."""

    def _send(self, status: int, doc: Any, headers: dict[str, str] | None = None,
              content_type: str = JSONAPI) -> None:
        payload = json.dumps(doc, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        req = Request(method, split.path, parse_qs(split.query, keep_blank_values=True), self.headers, body)
        if req.path.startswith("/__sandbox__/"):
            self._admin(req)
            return
        self._api(req)

    def _admin(self, req: Request) -> None:
        app = self.app
        name = req.path.rstrip("/").rsplit("/", 1)[-1]
        if req.method == "GET" and name == "requests":
            self._send(200, {"requests": app.requests()}, content_type="application/json")
        elif req.method == "POST" and name == "reset":
            app.reset()
            self._send(200, {"ok": True}, content_type="application/json")
        elif req.method == "GET" and name == "info":
            self._send(200, self.server.info(), content_type="application/json")  # type: ignore[attr-defined]
        else:
            self._send(404, {"errors": [{"id": str(uuid.uuid4()), "status": 404, "code": "not_found",
                                         "title": "Not found.", "detail": "Unknown admin route."}]})

    def _api(self, req: Request) -> None:
        app = self.app
        found = operation_for(req.method, req.path)
        operation = found[0] if found else None
        bucket: str | None = None
        fault = app.faults.next()
        fault_kind = fault.kind if fault else None
        if fault is not None and fault.kind == "drop":
            app.record(req, operation, None, None, "drop")
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault is not None and fault.status is not None:
            err = ApiError(fault.status, "error", "A server error occurred.",
                           "A server error occurred (sandbox fault injection).")
            app.record(req, operation, None, fault.status, fault.kind)
            self._send(fault.status, err.document())
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        headers: dict[str, str] = {}
        try:
            app.authenticate(req)
            app.check_revision(req)
            route, rid = app.match(req)
            decision = app.limiter.check(req.key_id or "", req.method, req.path)
            bucket = decision.bucket
            if not decision.allowed:
                raise ApiError(429, "throttled", "Request was throttled.",
                               f"Request was throttled. Expected available in {decision.retry_after} seconds.",
                               headers={"Retry-After": str(decision.retry_after)})
            headers = {"RateLimit-Limit": str(decision.limit), "RateLimit-Remaining": str(decision.remaining),
                       "RateLimit-Reset": str(decision.reset_seconds)}
            missing = [s for s in route.scopes if s not in req.scopes]
            if missing:
                raise ApiError(403, "permission_denied", "You do not have permission to perform this action.",
                               f"This API key is missing required scopes: {', '.join(missing)}.")
            doc = getattr(app, route.handler)(req, rid)
            status = 200
        except ApiError as err:
            status, doc = err.status, err.document()
            headers = {**headers, **err.headers}
        except Exception:  # noqa: BLE001 - a sandbox bug must still answer like a server
            status = 500
            doc = ApiError(500, "error", "A server error occurred.", "Internal sandbox error.").document()
        delay = app.faults.answer_delay(bucket) if status == 200 else 0.0
        app.record(req, operation, bucket, status, fault_kind, delay)  # served and counted before the wait
        if delay:
            time.sleep(delay)
            try:
                self._send(status, doc, headers)
            except OSError:  # the client gave up (timed out) while the answer was held back
                self.close_connection = True
            return
        self._send(status, doc, headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class SandboxServer:
    """In-process Klaviyo sandbox: ``SandboxServer(seed=7).start()``; ``.url``, ``.api_key``, ``.stop()``."""

    def __init__(self, seed: int = 7, *, time_scale: float = 1.0, fault_rate: float = 0.0, profiles: int = 2000,
                 today: date | None = None, host: str = "127.0.0.1", port: int = 0, date_times_utc: bool = False,
                 report_page_size: int = 500, enforce_limits: bool = True, api_key: str | None = None,
                 readonly_key: str | None = None, formula_names: bool = False, report_delay: float = 0.0,
                 report_delay_count: int = 0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.seed = seed
        self.time_scale = float(time_scale)
        self.fault_rate = fault_rate
        self.host, self.port = host, port
        self.account = SandboxAccount(seed, today=today, n_profiles=profiles, formula_names=formula_names)
        digest = hashlib.sha256(f"flowsync-sandbox:{seed}".encode()).hexdigest()
        self.api_key = api_key or f"pk_sandbox_{digest[:24]}"
        self.readonly_key = readonly_key or f"pk_sandbox_ro_{digest[24:48]}"
        self._opts = {"date_times_utc": date_times_utc, "report_page_size": report_page_size,
                      "enforce_limits": enforce_limits, "report_delay": float(report_delay),
                      "report_delay_count": int(report_delay_count)}
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.app: SandboxApp | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("sandbox server is not started")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> SandboxServer:
        httpd = _Server((self.host, self.port), _Handler)
        self._httpd = httpd
        self.app = SandboxApp(self.account, base_url=self.url, api_key=self.api_key, readonly_key=self.readonly_key,
                              time_scale=self.time_scale, fault_rate=self.fault_rate, **self._opts)
        httpd.app = self.app  # type: ignore[attr-defined]
        httpd.info = self.info  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"klaviyo-sandbox-{self.seed}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests(self) -> list[dict]:
        """The request log (dicts: t, wall, method, path, operation, bucket, status, fault, key)."""
        return self.app.requests() if self.app else []

    def reset(self) -> None:
        """Clear the request log, rate-limit state and the fault sequence."""
        if self.app:
            self.app.reset()

    def info(self) -> dict:
        return {"seed": self.seed, "api_key": self.api_key, "readonly_key": self.readonly_key,
                "timezone": TIMEZONE, "today": self.account.today.isoformat() if self.account.today else None,
                "time_scale": self.time_scale, "fault_rate": self.fault_rate, "profiles": self.account.n_profiles,
                "account_id": self.account.account_id, "revision": REVISION,
                "date_times_utc": self._opts["date_times_utc"], "report_delay": self._opts["report_delay"],
                "conversion_metric_id": self.account.placed_order_metric.id,
                "url": self.url if self._httpd else None}

