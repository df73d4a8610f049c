"""Every flowsync setting, read in this one module: ``[flowsync]`` provider config, then the runbook's env names.

Lookup order per setting (first non-empty value wins):

1. Airflow config ``[flowsync] <option>`` — ``AIRFLOW__FLOWSYNC__<OPTION>`` or ``airflow.cfg``, read with
   ``airflow.configuration.conf`` in Airflow processes (where it is always loaded already). Elsewhere (the
   client in the bench or scripts) Airflow is not imported for this: ``AIRFLOW__FLOWSYNC__<OPTION>`` is read
   directly, so the client stays Airflow-free and the env form means the same everywhere;
2. the runbook's environment name(s) (``KLAVIYO_ENABLE``, ``FLOW_STAGING_BUCKET``, …), in the order listed;
3. the default below (``None`` = not set).

The section is declared in ``get_provider_info()["config"]`` (built from :data:`OPTIONS`), so
``airflow config list`` shows it; its declared defaults are ``None`` (the real ones are applied here, after
the runbook names, and named in each description). Values are read at call time, never at import time (tests change the
environment per test; Airflow components read their own environment). Airflow's config is used only when
already loaded, so ``core/``, the client and the bench stay usable (and fast) without it. Secret values are
returned to their one caller and never logged; :data:`OPTIONS` holds names and defaults only.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

SECTION = "flowsync"
VERSION_ADDED = "0.1.0"


@dataclass(frozen=True)
class Option:
    """One setting: its ``[flowsync]`` option name, runbook env fallbacks, default and meaning."""

    name: str
    envs: tuple[str, ...]
    default: str | None
    type: str  # provider-config type: string, boolean, integer, float
    description: str
    example: str | None = None
    sensitive: bool = False

    @property
    def airflow_env(self) -> str:
        """The Airflow-style variable that sets the option (wins over the runbook names)."""
        return f"AIRFLOW__{SECTION.upper()}__{self.name.upper()}"


_OPTIONS = (
    Option("klaviyo_enable", ("KLAVIYO_ENABLE",), "false", "boolean",
           "Must be true; otherwise runs fail at once with \"Klaviyo disabled: set KLAVIYO_ENABLE=true\".", "true"),
    Option("klaviyo_api_key", ("KLAVIYO_API_KEY", "KLAVIYO_API_KEY_PRIVATE"), None, "string",
           "Klaviyo private API key, used when the Klaviyo connection has no password.", "pk_...",
           sensitive=True),
    Option("klaviyo_api_revision", ("KLAVIYO_API_REVISION",), None, "string",
           "Klaviyo API revision; only a tested revision (2026-07-15) is accepted.", "2026-07-15"),
    Option("klaviyo_limit_global_burst", ("KLAVIYO_LIMIT_GLOBAL_BURST",), None, "integer",
           "Lower every endpoint's burst limit to this (never raises it).", "5"),
    Option("klaviyo_limit_global_per_minute", ("KLAVIYO_LIMIT_GLOBAL_PER_MINUTE",), None, "integer",
           "Lower every endpoint's per-minute limit to this (never raises it).", "60"),
    Option("klaviyo_base_url", ("KLAVIYO_BASE_URL",), None, "string",
           "Klaviyo base URL used only when no Klaviyo connection exists (env-only set-ups); "
           "default https://a.klaviyo.com.", "https://a.klaviyo.com"),
    Option("shopify_placed_order_metric_id", ("SHOPIFY_PLACED_ORDER_METRIC_ID",), None, "string",
           "Conversion metric override (else resolved via the Metrics API, Shopify preferred).", "VqXtMx"),
    Option("home", ("FLOWSYNC_HOME",), None, "string",
           "Local output root (default $AIRFLOW_HOME/flowsync, else ~/.flowsync); one folder per run under runs/.",
           "/opt/airflow/flowsync"),
    Option("limiter_url", ("FLOWSYNC_LIMITER_URL",), None, "string",
           "Limiter state shared by all processes: sqlite:///path.db (default: limiter.db under the home) or "
           "redis://host:6379/N for several machines.", "redis://redis:6379/2"),
    Option("defer_after_seconds", ("FLOWSYNC_DEFER_AFTER_SECONDS",), "120", "float",
           "A rate-limit wait longer than this defers the task to the triggerer.", "120"),
    Option("max_days", ("FLOWSYNC_MAX_DAYS",), "366", "integer", "Hard maximum of the days param.", "366"),
    Option("max_limit_flows", ("FLOWSYNC_MAX_LIMIT_FLOWS",), "500", "integer",
           "Hard maximum of the limitFlows param.", "500"),
    Option("max_limit_messages", ("FLOWSYNC_MAX_LIMIT_MESSAGES",), "2000", "integer",
           "Hard maximum of the limitMessages param.", "2000"),
    Option("max_row_budget", ("FLOWSYNC_MAX_ROW_BUDGET",), "1000000", "integer",
           "Hard maximum of the rowBudget param.", "1000000"),
    Option("supabase_url", ("NEXT_PUBLIC_SUPABASE_URL",), None, "string",
           "Supabase project URL, used when the supabase_default connection is absent.",
           "https://abc.supabase.co"),
    Option("supabase_service_role_key", ("SUPABASE_SERVICE_ROLE_KEY",), None, "string",
           "Supabase service-role key, used when the supabase_default connection is absent.", None,
           sensitive=True),
    Option("staging_bucket", ("FLOW_STAGING_BUCKET",), None, "string",
           "Bucket of single-sync live runs.", "flow-staging"),
    Option("ingest_bucket", ("DATA_INGEST_BUCKET", "PREAUTH_BUCKET"), None, "string",
           "Bucket of the nightly/history snapshot files (runbook fallback PREAUTH_BUCKET).", "data-ingest"),
    Option("admin_job_secret", ("ADMIN_JOB_SECRET",), None, "string",
           "Dashboard admin secret (x-admin-job-secret), used when flowsync_dashboard has no password.", None,
           sensitive=True),
    Option("dashboard_url", ("FLOWSYNC_DASHBOARD_URL",), None, "string",
           "Dashboard base URL, used only when the flowsync_dashboard connection does not exist.",
           "https://dashboard.example.com"),
    Option("storage_backend", ("FLOWSYNC_STORAGE_BACKEND",), "auto", "string",
           "auto (Supabase when configured), supabase, or local ($FLOWSYNC_HOME/storage).", "local"),
    Option("hash_key", ("FLOWSYNC_HASH_KEY",), None, "string",
           "HMAC key of hashEmails (plain SHA-256 without it, which is dictionary-reversible).", None,
           sensitive=True),
    Option("pii_retention_hours", ("FLOWSYNC_PII_RETENTION_HOURS",), "0", "float",
           "Keep uploaded audience run folders this long (0: removed after upload).", "48"),
    Option("audience_lookback_hours", ("FLOWSYNC_AUDIENCE_LOOKBACK_HOURS",), "24", "float",
           "Default updatedSince of incremental audience runs, in hours before the run.", "24"),
    Option("nightly_schedule", ("FLOWSYNC_NIGHTLY_SCHEDULE",), "0 7 * * *", "string",
           "Cron of the nightly DAG (UTC); read when the DAG file is parsed, so set it for the dag-processor.",
           "0 7 * * *"),
)
OPTIONS: dict[str, Option] = {o.name: o for o in _OPTIONS}


def provider_config() -> dict[str, dict]:
    """The ``config`` entry of ``get_provider_info()``: the ``[flowsync]`` section built from :data:`OPTIONS`."""
    options = {}
    for o in _OPTIONS:
        fallbacks = " or ".join(o.envs)
        default = "unset" if o.default is None else o.default
        # "default" stays None on purpose: Airflow's conf.get returns a declared default even with
        # fallback=None, which would hide the runbook env name; the default is applied in lookup().
        entry = {"description": f"{o.description} Runbook env fallback: {fallbacks}. Default: {default}.",
                 "version_added": VERSION_ADDED, "type": o.type, "example": o.example, "default": None}
        if o.sensitive:
            entry["sensitive"] = True
        options[o.name] = entry
    return {SECTION: {"description": "flowsync (Klaviyo sync) settings; each option also honours the runbook's "
                                     "environment name given in its description.", "options": options}}


# ---------------------------------------------------------------- lookup


def _from_airflow_config(name: str) -> str | None:
    """``[flowsync] name`` when explicitly configured; outside Airflow processes only its env form."""
    configuration = sys.modules.get("airflow.configuration")
    if configuration is None:  # not an Airflow process (client, bench, scripts): importing Airflow costs ~1 s
        return os.environ.get(OPTIONS[name].airflow_env)
    # fallback=None: only explicitly configured values, so the runbook env still beats the default.
    value = configuration.conf.get(SECTION, name, fallback=None)
    return None if value is None else str(value)


def lookup(name: str) -> tuple[str | None, str]:
    """``(raw value, source)`` of an option; source is ``[flowsync] name``, ``env NAME`` or ``default``.

    Empty or blank values count as unset. The source names where a value came from (never the value), for
    log lines such as "using the key from env KLAVIYO_API_KEY".
    """
    option = OPTIONS[name]
    value = (_from_airflow_config(name) or "").strip()
    if value:
        return value, f"[{SECTION}] {name}"
    for env in option.envs:
        value = os.environ.get(env, "").strip()
        if value:
            return value, f"env {env}"
    return option.default, "default"


def raw(name: str) -> str | None:
    """The raw (stripped) value of an option, or its default."""
    return lookup(name)[0]


def _label(name: str) -> str:
    """How an error names a setting: the runbook env name users know (the Airflow name works too)."""
    return OPTIONS[name].envs[0]


def _positive_int(name: str) -> int | None:
    value = raw(name)
    if value is None:
        return None
    from flowsync_provider.klaviyo.errors import KlaviyoConfigError

    try:
        number = int(value)
    except ValueError:
        raise KlaviyoConfigError(f"{_label(name)} must be a positive integer, got {value!r}") from None
    if number <= 0:
        raise KlaviyoConfigError(f"{_label(name)} must be a positive integer, got {number}")
    return number


def _hours(name: str) -> float:
    from flowsync_provider.core.errors import ParamError

    value = raw(name) or "0"
    try:
        hours = float(value)
    except ValueError as exc:
        raise ParamError(f"{_label(name)} must be a number of hours, got {value!r}.") from exc
    if hours < 0:
        raise ParamError(f"{_label(name)} must be 0 or more hours, got {value!r}.")
    return hours


# ---------------------------------------------------------------- accessors (one per setting)


def klaviyo_enabled() -> bool:
    """``klaviyo_enable`` / KLAVIYO_ENABLE: only the literal ``true`` (any case) enables Klaviyo calls."""
    return (raw("klaviyo_enable") or "").lower() == "true"


def klaviyo_api_key() -> tuple[str | None, str]:
    """``(key, source)`` from ``klaviyo_api_key`` / KLAVIYO_API_KEY / KLAVIYO_API_KEY_PRIVATE; secret: never log it."""
    value, source = lookup("klaviyo_api_key")
    return (value, source) if value else (None, "missing")


def klaviyo_api_revision() -> str | None:
    """``klaviyo_api_revision`` / KLAVIYO_API_REVISION; validated by ``klaviyo.settings.resolve_revision``."""
    return raw("klaviyo_api_revision")


def klaviyo_limit_global_burst() -> int | None:
    """``klaviyo_limit_global_burst`` / KLAVIYO_LIMIT_GLOBAL_BURST: a positive integer, or None."""
    return _positive_int("klaviyo_limit_global_burst")


def klaviyo_limit_global_per_minute() -> int | None:
    """``klaviyo_limit_global_per_minute`` / KLAVIYO_LIMIT_GLOBAL_PER_MINUTE: a positive integer, or None."""
    return _positive_int("klaviyo_limit_global_per_minute")


def klaviyo_base_url() -> tuple[str | None, str]:
    """``(url, source)`` from ``klaviyo_base_url`` / KLAVIYO_BASE_URL (only used without a Klaviyo connection)."""
    return lookup("klaviyo_base_url")


def shopify_placed_order_metric_id() -> str | None:
    """``shopify_placed_order_metric_id`` / SHOPIFY_PLACED_ORDER_METRIC_ID: conversion metric override."""
    return raw("shopify_placed_order_metric_id")


def flowsync_home() -> Path:
    """``home`` / FLOWSYNC_HOME, else ``$AIRFLOW_HOME/flowsync``, else ``~/.flowsync`` (the one home rule)."""
    value = raw("home")
    if value:
        return Path(value).expanduser()
    airflow_home = os.environ.get("AIRFLOW_HOME", "").strip()
    if airflow_home:
        return Path(airflow_home).expanduser() / "flowsync"
    return Path("~/.flowsync").expanduser()


def limiter_url() -> str:
    """``limiter_url`` / FLOWSYNC_LIMITER_URL, else ``sqlite:///<home>/limiter.db`` (validated by the client)."""
    return raw("limiter_url") or f"sqlite:///{flowsync_home() / 'limiter.db'}"


def defer_after_seconds() -> float:
    """``defer_after_seconds`` / FLOWSYNC_DEFER_AFTER_SECONDS: longer rate-limit waits defer (default 120)."""
    from flowsync_provider.core.errors import ParamError

    value = raw("defer_after_seconds") or "120"
    try:
        return float(value)
    except ValueError as exc:
        raise ParamError(f"FLOWSYNC_DEFER_AFTER_SECONDS must be a number of seconds, got {value!r}.") from exc


# param name -> option of its hard maximum
HARD_MAX_OPTIONS = {"limitFlows": "max_limit_flows", "limitMessages": "max_limit_messages", "days": "max_days",
                    "rowBudget": "max_row_budget"}


def hard_max(param: str) -> int:
    """Hard maximum of ``param`` (days, limitFlows, limitMessages, rowBudget): FLOWSYNC_MAX_* (366/500/2000/1e6)."""
    from flowsync_provider.core.errors import ParamError

    name = HARD_MAX_OPTIONS[param]
    value = raw(name)
    try:
        return int(value or "")
    except ValueError as exc:
        raise ParamError(f"{_label(name)} must be a whole number, got {value!r}.") from exc


def hard_maxima() -> dict[str, int]:
    """Every hard maximum by param name, as ``core.params.validate_request(maxima=...)`` takes them."""
    return {param: hard_max(param) for param in HARD_MAX_OPTIONS}


def supabase_url() -> tuple[str | None, str]:
    """``(url, source)`` from ``supabase_url`` / NEXT_PUBLIC_SUPABASE_URL (used without supabase_default)."""
    return lookup("supabase_url")


def supabase_service_role_key() -> tuple[str | None, str]:
    """``(key, source)`` from ``supabase_service_role_key`` / SUPABASE_SERVICE_ROLE_KEY; secret: never log it."""
    return lookup("supabase_service_role_key")


def supabase_env_configured() -> bool:
    """Whether a Supabase URL or key is set outside a connection (storage auto-selection)."""
    return bool(supabase_url()[0] or supabase_service_role_key()[0])


def staging_bucket() -> str | None:
    """``staging_bucket`` / FLOW_STAGING_BUCKET: bucket of single live writes, or None."""
    return raw("staging_bucket")


def ingest_bucket() -> str | None:
    """``ingest_bucket`` / DATA_INGEST_BUCKET, else PREAUTH_BUCKET: bucket of the snapshot files, or None."""
    return raw("ingest_bucket")


def admin_job_secret() -> str | None:
    """``admin_job_secret`` / ADMIN_JOB_SECRET: dashboard secret fallback; secret: never log it."""
    return raw("admin_job_secret")


def dashboard_url() -> str | None:
    """``dashboard_url`` / FLOWSYNC_DASHBOARD_URL: used only when flowsync_dashboard does not exist."""
    return raw("dashboard_url")


def storage_backend() -> str:
    """``storage_backend`` / FLOWSYNC_STORAGE_BACKEND, lower-cased: auto (default), supabase or local."""
    return (raw("storage_backend") or "auto").lower()


def hash_key() -> bytes | None:
    """``hash_key`` / FLOWSYNC_HASH_KEY as bytes for the HMAC of hashEmails, or None; secret: never log it."""
    value = raw("hash_key")
    return value.encode("utf-8") if value else None


def pii_retention_hours() -> float:
    """``pii_retention_hours`` / FLOWSYNC_PII_RETENTION_HOURS (≥ 0, default 0: removed after upload)."""
    return _hours("pii_retention_hours")


def audience_lookback_hours() -> float:
    """``audience_lookback_hours`` / FLOWSYNC_AUDIENCE_LOOKBACK_HOURS (≥ 0, default 24)."""
    return _hours("audience_lookback_hours")


def nightly_schedule() -> str:
    """``nightly_schedule`` / FLOWSYNC_NIGHTLY_SCHEDULE: cron of the nightly DAG (default ``0 7 * * *``)."""
    return raw("nightly_schedule") or "0 7 * * *"


# option -> accessor name, for the docs/config test and readers of this module
ACCESSORS: dict[str, str] = {
    "klaviyo_enable": "klaviyo_enabled",
    "klaviyo_api_key": "klaviyo_api_key",
    "klaviyo_api_revision": "klaviyo_api_revision",
    "klaviyo_limit_global_burst": "klaviyo_limit_global_burst",
    "klaviyo_limit_global_per_minute": "klaviyo_limit_global_per_minute",
    "klaviyo_base_url": "klaviyo_base_url",
    "shopify_placed_order_metric_id": "shopify_placed_order_metric_id",
    "home": "flowsync_home",
    "limiter_url": "limiter_url",
    "defer_after_seconds": "defer_after_seconds",
    "max_days": "hard_max",
    "max_limit_flows": "hard_max",
    "max_limit_messages": "hard_max",
    "max_row_budget": "hard_max",
    "supabase_url": "supabase_url",
    "supabase_service_role_key": "supabase_service_role_key",
    "staging_bucket": "staging_bucket",
    "ingest_bucket": "ingest_bucket",
    "admin_job_secret": "admin_job_secret",
    "dashboard_url": "dashboard_url",
    "storage_backend": "storage_backend",
    "hash_key": "hash_key",
    "pii_retention_hours": "pii_retention_hours",
    "audience_lookback_hours": "audience_lookback_hours",
    "nightly_schedule": "nightly_schedule",
}
