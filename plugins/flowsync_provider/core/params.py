"""The one definition of every sync's run parameters, and their validation before anything is fetched.

:data:`PARAM_SPECS` holds, per sync (flows, campaigns, audience, nightly, history), each param's default,
JSON-schema fragment and description: ``flowsync_provider.params`` builds the DAGs' Airflow ``Param``
objects from it, and :func:`validate_request` / :class:`SyncRequest` take their defaults from it, so a
default is written once. The schemas refuse bad types at trigger time; :func:`validate_request` adds the
rules a schema cannot express (cross-field rules, secrets in conf, gating) and normalises the result into
a small JSON-able request that every later task reads. Each error is one sentence naming the field and
the fix. Pure: settings (hard maxima, KLAVIYO_ENABLE) come in as arguments from ``flowsync_provider.settings``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from types import ModuleType
from typing import Any

from flowsync_provider.core.errors import FlowsyncError, ParamError
from flowsync_provider.core.ids import check_upload_id
from flowsync_provider.core.plan import NIGHTLY_ONE_CALL_MAX_LOOKBACK, REPORTING_DAILY_QUOTA, SERIES_MAX_DAYS
from flowsync_provider.core.windows import TIMEFRAME_KEYS, check_not_before_klaviyo

MODES = ("dry-run", "live")
FORMATS = ("json", "csv")
AGGREGATIONS = ("per-day", "range", "auto")
REPORT_STRATEGIES = ("series", "values-per-day")
AUDIENCE_MODES = ("full", "incremental")

# The runbook's recommended caps: exceeding them is allowed but warned about.
RECOMMENDED = {"limitFlows": 50, "limitMessages": 100, "days": 30}
# The setting that raises each hard maximum (``settings.hard_maxima()`` reads them; defaults 500, 2000,
# 366, 1,000,000 there): longer history belongs to the history DAG.
HARD_MAX_ENV = {
    "limitFlows": "FLOWSYNC_MAX_LIMIT_FLOWS",
    "limitMessages": "FLOWSYNC_MAX_LIMIT_MESSAGES",
    "days": "FLOWSYNC_MAX_DAYS",
    "rowBudget": "FLOWSYNC_MAX_ROW_BUDGET",
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


def legacy_settings() -> ModuleType:
    """``flowsync_provider.settings`` for callers that do not pass the value yet.

    TODO issue 10: remove when the operator/snapshot rewrite lands — operators/base.py, operators/plan.py,
    operators/audience.py, operators/upload.py and syncs/snapshot_plan.py still call these functions without
    the value; every other caller passes ``settings.x()``. Imported lazily, so importing core loads no settings
    reader (and no Airflow).
    """
    from flowsync_provider import settings

    return settings


def require_klaviyo_enabled(enabled: bool | None = None) -> None:
    """The runbook's gate: ``enabled`` is ``settings.klaviyo_enabled()`` (KLAVIYO_ENABLE=true)."""
    if not (legacy_settings().klaviyo_enabled() if enabled is None else enabled):
        raise KlaviyoDisabled("Klaviyo disabled: set KLAVIYO_ENABLE=true")


def hard_max(name: str, maxima: Mapping[str, int] | None = None) -> int:
    """The hard maximum of param ``name`` from ``maxima`` (``settings.hard_maxima()``)."""
    return (legacy_settings().hard_maxima() if maxima is None else maxima)[name]


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


# ---------------------------------------------------------------- the one param definition


@dataclass(frozen=True)
class ParamSpec:
    """One run parameter: its default, the JSON-schema fragment Airflow checks at trigger time, its help text."""

    default: Any
    schema: Mapping[str, Any]
    description: str | None = None


DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
INSTANT_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$"
NULLABLE_TEXT = {"type": ["null", "string"]}
BOOLEAN = {"type": "boolean"}


def _whole(minimum: int = 1) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum}


def _date_spec(description: str) -> ParamSpec:
    return ParamSpec(None, {"type": ["null", "string"], "pattern": DATE_PATTERN}, description)


ESCAPE_FORMULAS = ParamSpec(
    False, BOOLEAN,
    "Prefix ' to text cells (names, tags, emails) starting with = + - @ TAB or CR, so a spreadsheet shows them "
    "instead of running them. Numeric columns are never changed. Off by default: files stay byte-faithful for the "
    "snapshot processor.")


SECRETS_SECTION = "Secrets: never here"


def _secrets() -> dict[str, ParamSpec]:
    """Every known secret name as a null-only param: Airflow refuses a trigger carrying one before storing the run.

    Included in every DAG's params. The run's conf is stored in the metadata DB and shown in the UI, so the
    schema is the only check that runs before the value is written (UI, CLI, REST and ``dags test``).
    """
    spec = ParamSpec(None, {"type": "null", "section": SECRETS_SECTION},
                     "Never pass secrets here: a run's conf is stored and shown in the UI, so a value is refused. "
                     "Leave it empty; keys live in the Airflow connections (klaviyo_default, supabase_default, "
                     "flowsync_dashboard) or the workers' environment.")
    return {name: spec for name in SECRET_KEYS}


def _window(days_default: int) -> dict[str, ParamSpec]:
    return {
        "days": ParamSpec(days_default, _whole(), "The N complete days ending yesterday in the account timezone."),
        "start": _date_spec("First day (YYYY-MM-DD, account timezone, inclusive). Wins over days."),
        "end": _date_spec("Last day (YYYY-MM-DD, account timezone, inclusive). Default: yesterday."),
        "timeframeKey": ParamSpec(None, {"type": ["null", "string"], "enum": [None, *sorted(TIMEFRAME_KEYS)]},
                                  "Klaviyo timeframe key, turned into dates locally. Wins over days."),
    }


def _common(days_default: int) -> dict[str, ParamSpec]:
    """The params of the flow and campaign syncs (the runbook's request body), in the DAG form's order."""
    return {
        "mode": ParamSpec("dry-run", {"type": "string", "enum": list(MODES)},
                          "dry-run writes local files only; live uploads to storage."),
        "format": ParamSpec("json", {"type": "string", "enum": list(FORMATS)}, "Local output format."),
        **_window(days_default),
        "conversionMetricId": ParamSpec(None, NULLABLE_TEXT, "Placed Order metric id override."),
        "rowBudget": ParamSpec(50_000, _whole(), "Fail fast above this many rows."),
        "debug": ParamSpec(False, BOOLEAN),
        "accountId": ParamSpec(None, NULLABLE_TEXT, "Dashboard account id (object paths)."),
        "uploadId": ParamSpec(None, NULLABLE_TEXT, "Object folder; derived when empty."),
        "allowEmpty": ParamSpec(False, BOOLEAN, "Allow uploading an empty/all-zero file."),
        "escapeFormulas": ESCAPE_FORMULAS,
        **_secrets(),
    }


def _audience() -> dict[str, ParamSpec]:
    common = _common(7)
    return {
        "mode": common["mode"],
        "format": ParamSpec("csv", {"type": "string", "enum": list(FORMATS)},
                            "Local output format (csv streams; json writes one array)."),
        "audienceMode": ParamSpec("full", {"type": "string", "enum": list(AUDIENCE_MODES)},
                                  "full: every profile; incremental: profiles updated after updatedSince "
                                  "(default: 24 h before the run)."),
        "updatedSince": ParamSpec(None, {"type": ["null", "string"], "pattern": INSTANT_PATTERN},
                                  "Incremental only: ISO-8601 instant with offset, e.g. 2025-09-01T00:00:00+00:00."),
        "hashEmails": ParamSpec(False, BOOLEAN, "Replace emails by HMAC-SHA256 (key FLOWSYNC_HASH_KEY; plain SHA-256 "
                                                "without a key, which is dictionary-reversible)."),
        "dropNames": ParamSpec(False, BOOLEAN, "Leave First Name / Last Name empty."),
        "rowBudget": ParamSpec(250_000, _whole(), "Fail before writing the file above this many profiles."),
        **{name: common[name] for name in ("debug", "accountId", "uploadId", "allowEmpty", "escapeFormulas")},
        **_secrets(),
    }


def _snapshot_common() -> dict[str, ParamSpec]:
    """Params shared by the nightly and history snapshot DAGs; orchestrated runs cover the whole account."""
    return {
        "allowEmpty": ParamSpec(False, BOOLEAN, "Upload even when a file is empty/all zero where data was expected."),
        "audienceMode": ParamSpec("full", {"type": "string", "enum": list(AUDIENCE_MODES)},
                                  "subscribers.csv: full export (default) or only changed profiles (for processors "
                                  "that merge)."),
        "hashEmails": ParamSpec(False, BOOLEAN),
        "dropNames": ParamSpec(False, BOOLEAN),
        "waitForProcessing": ParamSpec(False, BOOLEAN, "Defer until the dashboard marks the snapshot processed."),
        "conversionMetricId": ParamSpec(None, NULLABLE_TEXT),
        "limitFlows": ParamSpec(500, _whole()),
        "limitMessages": ParamSpec(2000, _whole()),
        "rowBudget": ParamSpec(1_000_000, _whole()),
        "uploadId": ParamSpec(None, NULLABLE_TEXT,
                              "Object folder; default derived from account + run (stable on retries). With several "
                              "accounts each uploads to <uploadId>-<account>."),
        "escapeFormulas": ESCAPE_FORMULAS,
        **_secrets(),
    }



def _flows() -> dict[str, ParamSpec]:
    return {
        **_common(7),
        "limitFlows": ParamSpec(25, _whole(), "Cap on flows (runbook: ≤ 50)."),
        "limitMessages": ParamSpec(50, _whole(), "Cap on messages (runbook: ≤ 100)."),
        "enrichMessageNames": ParamSpec(True, BOOLEAN, "Map message ids to names/channels."),
        "aggregation": ParamSpec("per-day", {"type": "string", "enum": list(AGGREGATIONS)},
                                 "per-day rows, one range total (dry-run only), or auto."),
        "reportStrategy": ParamSpec("series", {"type": "string", "enum": list(REPORT_STRATEGIES)},
                                    "series: one call per ≤60 days; values-per-day: the runbook's one flow-values "
                                    "call per day (for comparison)."),
        "includeDrafts": ParamSpec(False, BOOLEAN, "Include draft flows as zero rows."),
    }


def _nightly() -> dict[str, ParamSpec]:
    return {
        "extraLookbackDays": ParamSpec(
            0, {"type": "integer", "minimum": 0, "maximum": NIGHTLY_ONE_CALL_MAX_LOOKBACK},
            "Widen the ±1 day window [T-1-extra, T+1] backwards (conversions keep changing for days after a send). "
            f"Up to {NIGHTLY_ONE_CALL_MAX_LOOKBACK} the window stays within one {SERIES_MAX_DAYS}-day flow series "
            "call, so widening costs no extra reporting call; longer ranges belong to the history DAG."),
        **_snapshot_common(),
    }


def _history() -> dict[str, ParamSpec]:
    return {
        "start": ParamSpec(None, {"type": ["null", "string"], "pattern": DATE_PATTERN},
                           "First day to rebuild (YYYY-MM-DD, account timezone)."),
        "end": ParamSpec(None, {"type": ["null", "string"], "pattern": DATE_PATTERN}, "Last day (default yesterday)."),
        "maxShare": ParamSpec(0.5, {"type": "number", "exclusiveMinimum": 0},
                              "Refuse plans that need more than this share of the "
                              f"{REPORTING_DAILY_QUOTA}/day reporting quota."),
        "force": ParamSpec(False, BOOLEAN, "Run a plan above maxShare anyway."),
        **_snapshot_common(),
    }


# Every DAG's params, in its form's order: flowsync_provider.params builds the Airflow Params from these.
PARAM_SPECS: dict[str, dict[str, ParamSpec]] = {
    "flows": _flows(),
    "campaigns": _common(30),  # campaigns are sparse: a 30-day default window
    "audience": _audience(),
    "nightly": _nightly(),
    "history": _history(),
}
# Defaults of the orchestrated snapshot runs (nightly and history share them): whole-account caps.
SNAPSHOT_DEFAULTS = {name: PARAM_SPECS["nightly"][name].default
                     for name in ("limitFlows", "limitMessages", "rowBudget")}


def param_default(sync: str, name: str) -> Any:
    """The default of param ``name`` of ``sync`` (one of :data:`PARAM_SPECS`)."""
    return PARAM_SPECS[sync][name].default


_FLOWS, _AUDIENCE = PARAM_SPECS["flows"], PARAM_SPECS["audience"]

@dataclass(frozen=True)
class SyncRequest:
    """The validated, normalised run parameters shared by every task of a sync (JSON-able)."""

    # Defaults: the flow sync's (PARAM_SPECS["flows"]), the audience fields the audience sync's.
    mode: str = _FLOWS["mode"].default
    format: str = _FLOWS["format"].default
    days: int = _FLOWS["days"].default
    start: str | None = None
    end: str | None = None
    timeframeKey: str | None = None  # noqa: N815 - the runbook's names
    limitFlows: int = _FLOWS["limitFlows"].default  # noqa: N815
    limitMessages: int = _FLOWS["limitMessages"].default  # noqa: N815
    enrichMessageNames: bool = _FLOWS["enrichMessageNames"].default  # noqa: N815
    aggregation: str = _FLOWS["aggregation"].default
    reportStrategy: str = _FLOWS["reportStrategy"].default  # noqa: N815
    conversionMetricId: str | None = None  # noqa: N815
    includeDrafts: bool = _FLOWS["includeDrafts"].default  # noqa: N815
    rowBudget: int = _FLOWS["rowBudget"].default  # noqa: N815
    debug: bool = _FLOWS["debug"].default
    accountId: str | None = None  # noqa: N815
    uploadId: str | None = None  # noqa: N815
    allowEmpty: bool = _FLOWS["allowEmpty"].default  # noqa: N815
    escapeFormulas: bool = _FLOWS["escapeFormulas"].default  # noqa: N815 - text cells starting = + - @ TAB CR get '
    # audience sync
    audienceMode: str = _AUDIENCE["audienceMode"].default  # noqa: N815
    updatedSince: str | None = None  # noqa: N815
    hashEmails: bool = _AUDIENCE["hashEmails"].default  # noqa: N815
    dropNames: bool = _AUDIENCE["dropNames"].default  # noqa: N815
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
}  # the same names as PARAM_SPECS[sync], in the order the "not a parameter" sentence lists them


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
    maxima: Mapping[str, int] | None = None,
) -> SyncRequest:
    """Apply the cross-field rules of a sync (flows, campaigns, audience); one clear sentence on error.

    Missing params take the sync's :data:`PARAM_SPECS` default (else :class:`SyncRequest`'s); ``maxima`` are
    the hard maxima by param name (``settings.hard_maxima()``).
    """
    names = PARAM_NAMES[sync]
    maxima = legacy_settings().hard_maxima() if maxima is None else maxima  # TODO issue 10: required after the rewrite
    specs = PARAM_SPECS[sync]

    def get(name: str) -> Any:
        if name in p:
            return p[name]
        return specs[name].default if name in specs else SyncRequest.__dataclass_fields__[name].default

    refuse_secrets(conf)
    refuse_secrets(params)
    unknown = sorted(set(conf or {}) - set(names) - set(SECRET_KEYS))  # declared null, checked above
    if unknown:
        raise ParamError(f"{unknown[0]} is not a parameter of this sync: use one of {', '.join(names)}.")
    p = {k: params.get(k) for k in names if params.get(k) is not None}
    warnings: list[str] = []

    mode = _choice("mode", get("mode"), MODES)
    fmt = _choice("format", get("format"), FORMATS)
    aggregation = _choice("aggregation", get("aggregation"), AGGREGATIONS)
    strategy = _choice("reportStrategy", get("reportStrategy"), REPORT_STRATEGIES)
    days = _int("days", get("days"))
    limit_flows = _int("limitFlows", get("limitFlows"))
    limit_messages = _int("limitMessages", get("limitMessages"))
    row_budget = _int("rowBudget", get("rowBudget"))
    start = _date("start", p.get("start"))
    end = _date("end", p.get("end"))
    check_not_before_klaviyo("start", start)  # before any Klaviyo call: no account holds older data
    if end is not None and start is None:
        raise ParamError("end is set without start: give start too (YYYY-MM-DD), or use days.")
    if start and end and start > end:
        raise ParamError(f"start ({start}) is after end ({end}): swap them or fix the dates.")
    if start and end and (end - start).days + 1 > maxima["days"]:
        raise ParamError(
            f"start..end spans {(end - start).days + 1} days, over the maximum of {maxima['days']}: "
            "use the history DAG (klaviyo_snapshot_history) for longer ranges."
        )

    for name, value in (("limitFlows", limit_flows), ("limitMessages", limit_messages), ("days", days),
                        ("rowBudget", row_budget)):
        top = maxima[name]
        if value > top:
            raise ParamError(f"{name} is {value}, over the hard maximum of {top}: lower it "
                             f"(or raise {HARD_MAX_ENV[name]} if you really need more).")
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

    audience_mode = _choice("audienceMode", get("audienceMode"), AUDIENCE_MODES)
    updated_since = _instant("updatedSince", p.get("updatedSince"))
    if updated_since and audience_mode != "incremental":
        raise ParamError("updatedSince only applies to audienceMode=incremental: set audienceMode or drop it.")

    return SyncRequest(
        audienceMode=audience_mode,
        updatedSince=updated_since,
        hashEmails=_bool("hashEmails", get("hashEmails")),
        dropNames=_bool("dropNames", get("dropNames")),
        mode=mode,
        format=fmt,
        days=days,
        start=start.isoformat() if start else None,
        end=end.isoformat() if end else None,
        timeframeKey=p.get("timeframeKey") or None,
        limitFlows=limit_flows,
        limitMessages=limit_messages,
        enrichMessageNames=_bool("enrichMessageNames", get("enrichMessageNames")),
        aggregation=aggregation,
        reportStrategy=strategy,
        conversionMetricId=p.get("conversionMetricId") or None,
        includeDrafts=_bool("includeDrafts", get("includeDrafts")),
        rowBudget=row_budget,
        debug=_bool("debug", get("debug")),
        accountId=p.get("accountId") or None,
        uploadId=upload_id,
        allowEmpty=_bool("allowEmpty", get("allowEmpty")),
        escapeFormulas=_bool("escapeFormulas", get("escapeFormulas")),
        warnings=warnings,
    )
