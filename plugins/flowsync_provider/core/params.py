"""Validate a sync's run parameters (the runbook's request body) before anything is fetched.

Param JSON schemas in the DAGs refuse bad types at trigger time; this module adds the rules a
schema cannot express (cross-field rules, secrets in conf, gating) and normalises the result into
a small JSON-able request that every later task reads. Each error is one sentence naming the field
and the fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from flowsync_provider.core.errors import FlowsyncError, ParamError
from flowsync_provider.core.ids import check_upload_id
from flowsync_provider.core.windows import check_not_before_klaviyo

MODES = ("dry-run", "live")
FORMATS = ("json", "csv")
AGGREGATIONS = ("per-day", "range", "auto")
REPORT_STRATEGIES = ("series", "values-per-day")

# The runbook's recommended caps: exceeding them is allowed but warned about.
RECOMMENDED = {"limitFlows": 50, "limitMessages": 100, "days": 30}
# Hard maxima (configurable by env): longer history belongs to the history DAG.
HARD_MAX_ENV = {
    "limitFlows": ("FLOWSYNC_MAX_LIMIT_FLOWS", 500),
    "limitMessages": ("FLOWSYNC_MAX_LIMIT_MESSAGES", 2000),
    "days": ("FLOWSYNC_MAX_DAYS", 366),
    "rowBudget": ("FLOWSYNC_MAX_ROW_BUDGET", 1_000_000),
}

# Every secret name a user might paste into a run's conf: the runbook's env names, their camelCase forms
# and the dashboard header. Each DAG declares them as null-only params (flowsync_provider.params), so
# Airflow refuses such a trigger before it stores the run; the plan tasks check them again.
SECRET_KEYS = (
    "klaviyoApiKey", "apiKey", "api_key", "klaviyo_api_key", "KLAVIYO_API_KEY",
    "klaviyoApiKeyPrivate", "KLAVIYO_API_KEY_PRIVATE",
    "supabaseServiceRoleKey", "serviceRoleKey", "supabaseServiceKey", "serviceKey", "SUPABASE_SERVICE_ROLE_KEY",
    "adminJobSecret", "adminSecret", "ADMIN_JOB_SECRET", "x-admin-job-secret",
    "flowsyncHashKey", "hashKey", "FLOWSYNC_HASH_KEY",
)
# Fragments of secret-looking names (lower case, letters and digits only), refused at plan time too.
SECRET_NAME_FRAGMENTS = ("apikey", "secret", "token", "password", "passwd", "servicerole", "servicekey",
                         "privatekey", "hashkey", "credential", "authorization", "bearer")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class KlaviyoDisabled(FlowsyncError):
    """The runbook's 501: Klaviyo calls are gated behind KLAVIYO_ENABLE=true."""


def require_klaviyo_enabled(env: Mapping[str, str] | None = None) -> None:
    env = os.environ if env is None else env
    if str(env.get("KLAVIYO_ENABLE", "")).strip().lower() != "true":
        raise KlaviyoDisabled("Klaviyo disabled: set KLAVIYO_ENABLE=true")


def hard_max(name: str, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    var, default = HARD_MAX_ENV[name]
    try:
        return int(env.get(var, default))
    except ValueError as exc:
        raise ParamError(f"{var} must be a whole number, got {env.get(var)!r}.") from exc


def is_secret_name(key: str) -> bool:
    """A declared secret name, or one that looks like a key, secret, token or password."""
    flat = re.sub(r"[^a-z0-9]", "", str(key).lower())
    return key in SECRET_KEYS or any(fragment in flat for fragment in SECRET_NAME_FRAGMENTS)


def _secret_home(key: str) -> str:
    flat = re.sub(r"[^a-z0-9]", "", str(key).lower())
    if "servicerole" in flat or "servicekey" in flat:
        return "put the Supabase service-role key in the supabase_default connection or SUPABASE_SERVICE_ROLE_KEY"
    if "admin" in flat:
        return "put the admin job secret in the flowsync_dashboard connection or ADMIN_JOB_SECRET"
    if "hashkey" in flat:
        return "put the hashing key in FLOWSYNC_HASH_KEY"
    if "apikey" in flat or "klaviyo" in flat:
        return "put the Klaviyo key in the klaviyo_default connection or KLAVIYO_API_KEY"
    return "put it in an Airflow connection"


def refuse_secrets(conf: Mapping[str, Any] | None) -> None:
    """A run's conf is stored and shown in the UI: an API key there would leak, so refuse it.

    The names in SECRET_KEYS are declared as null-only params, so the trigger form sends them as null:
    a null there is not a secret. The message names the key, never the value.
    """
    for key, value in (conf or {}).items():
        if key in SECRET_KEYS and value is None:
            continue
        if is_secret_name(key):
            raise ParamError(
                f"{key} must not be passed in the run's conf (it is stored and shown in the UI): "
                f"{_secret_home(key)} instead."
            )


def _date(name: str, value: Any) -> date | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not DATE_RE.match(value):
        raise ParamError(f"{name} must be a date in YYYY-MM-DD form, got {value!r}.")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ParamError(f"{name} must be a real calendar date in YYYY-MM-DD form, got {value!r}.") from exc


def _int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            else:
                raise ValueError
        except ValueError as exc:
            raise ParamError(f"{name} must be a whole number, got {value!r}.") from exc
    if value < minimum:
        raise ParamError(f"{name} must be at least {minimum}, got {value}.")
    return value


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ParamError(f"{name} must be one of {', '.join(allowed)}; got {value!r}.")
    return value


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ParamError(f"{name} must be true or false, got {value!r}.")


@dataclass(frozen=True)
class SyncRequest:
    """The validated, normalised run parameters shared by every task of a sync (JSON-able)."""

    mode: str = "dry-run"
    format: str = "json"
    days: int = 7
    start: str | None = None
    end: str | None = None
    timeframeKey: str | None = None  # noqa: N815 - the runbook's names
    limitFlows: int = 25  # noqa: N815
    limitMessages: int = 50  # noqa: N815
    enrichMessageNames: bool = True  # noqa: N815
    aggregation: str = "per-day"
    reportStrategy: str = "series"  # noqa: N815
    conversionMetricId: str | None = None  # noqa: N815
    includeDrafts: bool = False  # noqa: N815
    rowBudget: int = 50_000  # noqa: N815
    debug: bool = False
    accountId: str | None = None  # noqa: N815
    uploadId: str | None = None  # noqa: N815
    allowEmpty: bool = False  # noqa: N815
    escapeFormulas: bool = False  # noqa: N815 - CSV text cells starting with = + - @ TAB CR get a ' prefix
    # audience sync
    audienceMode: str = "full"  # noqa: N815
    updatedSince: str | None = None  # noqa: N815
    hashEmails: bool = False  # noqa: N815
    dropNames: bool = False  # noqa: N815
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SyncRequest:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


COMMON_PARAM_NAMES = ("mode", "format", "rowBudget", "debug", "accountId", "uploadId", "allowEmpty",
                      "escapeFormulas")
WINDOW_PARAM_NAMES = ("days", "start", "end", "timeframeKey")
PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "flows": (*COMMON_PARAM_NAMES, *WINDOW_PARAM_NAMES, "limitFlows", "limitMessages", "enrichMessageNames",
              "aggregation", "reportStrategy", "conversionMetricId", "includeDrafts"),
    "campaigns": (*COMMON_PARAM_NAMES, *WINDOW_PARAM_NAMES, "conversionMetricId"),
    "audience": (*COMMON_PARAM_NAMES, "audienceMode", "updatedSince", "hashEmails", "dropNames"),
}
FLOW_PARAM_NAMES = PARAM_NAMES["flows"]
AUDIENCE_MODES = ("full", "incremental")


def validate_flow_request(
    params: Mapping[str, Any],
    conf: Mapping[str, Any] | None = None,
    *,
    live_supported: bool = True,
    env: Mapping[str, str] | None = None,
) -> SyncRequest:
    """Apply the cross-field rules of the flow sync; raise ParamError with one clear sentence."""
    return validate_request(params, conf, sync="flows", live_supported=live_supported, env=env)


def _instant(name: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ParamError(f"{name} must be an ISO-8601 date-time such as 2025-09-01T00:00:00+00:00, "
                         f"got {value!r}.") from exc
    if parsed.tzinfo is None:
        raise ParamError(f"{name} needs a UTC offset (e.g. 2025-09-01T00:00:00+00:00), got {value!r}.")
    return parsed.isoformat()


def validate_request(
    params: Mapping[str, Any],
    conf: Mapping[str, Any] | None = None,
    *,
    sync: str = "flows",
    live_supported: bool = True,
    env: Mapping[str, str] | None = None,
) -> SyncRequest:
    """Apply the cross-field rules of a sync (flows, campaigns, audience); one clear sentence on error."""
    names = PARAM_NAMES[sync]
    refuse_secrets(conf)
    refuse_secrets(params)
    unknown = sorted(set(conf or {}) - set(names) - set(SECRET_KEYS))  # declared null, checked above
    if unknown:
        raise ParamError(f"{unknown[0]} is not a parameter of this sync: use one of {', '.join(names)}.")
    p = {k: params.get(k) for k in names if params.get(k) is not None}
    warnings: list[str] = []

    mode = _choice("mode", p.get("mode", "dry-run"), MODES)
    fmt = _choice("format", p.get("format", "json"), FORMATS)
    aggregation = _choice("aggregation", p.get("aggregation", "per-day"), AGGREGATIONS)
    strategy = _choice("reportStrategy", p.get("reportStrategy", "series"), REPORT_STRATEGIES)
    days = _int("days", p.get("days", 7))
    limit_flows = _int("limitFlows", p.get("limitFlows", 25))
    limit_messages = _int("limitMessages", p.get("limitMessages", 50))
    row_budget = _int("rowBudget", p.get("rowBudget", 50_000))
    start = _date("start", p.get("start"))
    end = _date("end", p.get("end"))
    check_not_before_klaviyo("start", start)  # before any Klaviyo call: no account holds older data
    if end is not None and start is None:
        raise ParamError("end is set without start: give start too (YYYY-MM-DD), or use days.")
    if start and end and start > end:
        raise ParamError(f"start ({start}) is after end ({end}): swap them or fix the dates.")
    if start and end and (end - start).days + 1 > hard_max("days", env):
        raise ParamError(
            f"start..end spans {(end - start).days + 1} days, over the maximum of {hard_max('days', env)}: "
            "use the history DAG (klaviyo_snapshot_history) for longer ranges."
        )

    for name, value in (("limitFlows", limit_flows), ("limitMessages", limit_messages), ("days", days),
                        ("rowBudget", row_budget)):
        top = hard_max(name, env)
        if value > top:
            raise ParamError(f"{name} is {value}, over the hard maximum of {top}: lower it "
                             f"(or raise {HARD_MAX_ENV[name][0]} if you really need more).")
        if name in RECOMMENDED and value > RECOMMENDED[name]:
            warnings.append(f"{name}={value} is above the runbook's recommended cap of {RECOMMENDED[name]}.")

    upload_id = p.get("uploadId")
    if upload_id is not None:
        upload_id = check_upload_id(upload_id)  # the one rule, checked again at upload
    if mode == "live":
        fmt = "csv"  # the uploaded artifact is always the CSV; the task's return value is the JSON confirmation
        if aggregation == "range":
            raise ParamError(
                "aggregation=range is dry-run only: uploading a range total as one day would corrupt the "
                "dashboard; use per-day for live runs."
            )
        if not live_supported:
            raise ParamError("mode=live is not available for this DAG yet: run with mode=dry-run.")
    if strategy == "values-per-day" and aggregation != "per-day":
        raise ParamError("reportStrategy=values-per-day needs aggregation=per-day.")

    audience_mode = _choice("audienceMode", p.get("audienceMode", "full"), AUDIENCE_MODES)
    updated_since = _instant("updatedSince", p.get("updatedSince"))
    if updated_since and audience_mode != "incremental":
        raise ParamError("updatedSince only applies to audienceMode=incremental: set audienceMode or drop it.")

    return SyncRequest(
        audienceMode=audience_mode,
        updatedSince=updated_since,
        hashEmails=_bool("hashEmails", p.get("hashEmails", False)),
        dropNames=_bool("dropNames", p.get("dropNames", False)),
        mode=mode,
        format=fmt,
        days=days,
        start=start.isoformat() if start else None,
        end=end.isoformat() if end else None,
        timeframeKey=p.get("timeframeKey") or None,
        limitFlows=limit_flows,
        limitMessages=limit_messages,
        enrichMessageNames=_bool("enrichMessageNames", p.get("enrichMessageNames", True)),
        aggregation=aggregation,
        reportStrategy=strategy,
        conversionMetricId=p.get("conversionMetricId") or None,
        includeDrafts=_bool("includeDrafts", p.get("includeDrafts", False)),
        rowBudget=row_budget,
        debug=_bool("debug", p.get("debug", False)),
        accountId=p.get("accountId") or None,
        uploadId=upload_id,
        allowEmpty=_bool("allowEmpty", p.get("allowEmpty", False)),
        escapeFormulas=_bool("escapeFormulas", p.get("escapeFormulas", False)),
        warnings=warnings,
    )
