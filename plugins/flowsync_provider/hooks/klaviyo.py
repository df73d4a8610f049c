"""Airflow hook: a ``klaviyo`` connection (or the runbook's env vars) -> a configured :class:`KlaviyoClient`.

Connection fields: host = base URL (default ``https://a.klaviyo.com``; with or without scheme, a
trailing ``/api`` is dropped), password = private API key. Extras: ``revision``, ``timeout`` (seconds,
above 0; default 30; reporting calls always wait at least 60 s, see ``klaviyo.client``), ``account_key``
(the limiter key shared by tasks of one account), ``time_scale`` (sandbox/testing only: the sandbox's
time compression; 1 in production).

Settings fallbacks (``flowsync_provider.settings``), so ``make demo`` works with env only:
- the key: setting ``klaviyo_api_key`` (``KLAVIYO_API_KEY``, then ``KLAVIYO_API_KEY_PRIVATE``), when the
  connection has none;
- a connection that does not exist at all (no ``AIRFLOW_CONN_KLAVIYO_DEFAULT``) is not an error
  when a key is configured; the base URL then comes from ``KLAVIYO_BASE_URL`` (default
  ``https://a.klaviyo.com``) and the revision from ``KLAVIYO_API_REVISION``.
Nothing is looked up in ``__init__`` (hooks are built at DAG parse time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from flowsync_provider import settings as flowsync_settings
from flowsync_provider.klaviyo import (
    DEFAULT_BASE_URL,
    REQUIRED_SCOPES,
    KlaviyoClient,
    KlaviyoConfigError,
    KlaviyoError,
    normalize_base_url,
    resolve_revision,
    resolve_timeout,
)
from flowsync_provider.klaviyo.settings import DEFAULT_TIMEOUT_SECONDS, resolve_time_scale

__all__ = ["CONN_FIELDS", "KEY_ENVS", "KlaviyoConnectionSettings", "KlaviyoHook", "UI_FIELD_BEHAVIOUR"]

KEY_ENVS = flowsync_settings.OPTIONS["klaviyo_api_key"].envs  # ("KLAVIYO_API_KEY", "KLAVIYO_API_KEY_PRIVATE")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

# Declarative UI metadata in provider-info form (Airflow >= 3.2 reads these from get_provider_info;
# the hook methods below are the legacy path and return the same content).
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "login"],
    "relabeling": {"password": "Private API key", "host": "Base URL"},
    "placeholders": {
        "host": DEFAULT_BASE_URL,
        "password": "pk_… (read scopes: " + ", ".join(REQUIRED_SCOPES) + ")",
        "extra": '{"revision": "2026-07-15", "timeout": 30}',
    },
}
CONN_FIELDS: dict[str, Any] = {
    "revision": {
        "label": "API revision",
        "description": "Klaviyo API revision header; only 2026-07-15 is supported.",
        "schema": {"type": ["string", "null"], "default": "2026-07-15"},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "HTTP timeout of each Klaviyo request, in seconds above 0 (reporting calls wait at least 60).",
        "schema": {"type": ["number", "null"], "default": 30},
    },
    "account_key": {
        "label": "Limiter account key",
        "description": "Key under which tasks share rate-limit state (default: a digest of the API key).",
        "schema": {"type": ["string", "null"]},
    },
    "time_scale": {
        "label": "Time scale",
        "description": "Sandbox/testing only; 1 in production. Rate-limit windows and waits are divided by it.",
        "schema": {"type": ["number", "null"], "default": 1},
    },
}


@dataclass(frozen=True)
class KlaviyoConnectionSettings:
    """What the hook resolved and where each part came from (``repr`` never shows the key)."""

    base_url: str
    api_key: str = field(repr=False)
    revision: str
    timeout: float
    account_key: str | None
    key_source: str
    url_source: str
    time_scale: float = 1.0


def _mask(secret: str) -> None:
    """Register the key with Airflow's secrets masker so task logs redact it."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    mask_secret(secret)


def _env_key() -> tuple[str | None, str]:
    """``(key, source)`` from the settings; the source names where it came from, never the key."""
    return flowsync_settings.klaviyo_api_key()


def base_url_from(host: str | None, schema: str | None = None, port: int | None = None) -> str:
    """Base URL from connection parts: scheme optional (``https``, or ``http`` for local hosts)."""
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        bare = host.split("/", 1)[0].split(":", 1)[0]
        scheme = schema if schema in ("http", "https") else ("http" if bare in LOCAL_HOSTS else "https")
        if port and ":" not in host.split("/", 1)[0]:
            head, _, tail = host.partition("/")
            host = f"{head}:{port}" + (f"/{tail}" if tail else "")
        host = f"{scheme}://{host}"
    return normalize_base_url(host)


class KlaviyoHook(BaseHook):
    """Build a :class:`KlaviyoClient` from the ``klaviyo_default`` connection or env vars.

    :param klaviyo_conn_id: connection id (conn_type ``klaviyo``).
    :param client_kwargs: extra ``KlaviyoClient`` arguments (e.g. ``max_wait_seconds``, ``time_scale``).
    """

    conn_name_attr = "klaviyo_conn_id"
    default_conn_name = "klaviyo_default"
    conn_type = "klaviyo"
    hook_name = "Klaviyo"

    def __init__(
        self,
        klaviyo_conn_id: str = default_conn_name,
        *,
        client_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.klaviyo_conn_id = klaviyo_conn_id
        self.client_kwargs = dict(client_kwargs or {})

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Legacy form of ``UI_FIELD_BEHAVIOUR``: the key and base URL are all the hook reads."""
        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    def get_settings(self) -> KlaviyoConnectionSettings:
        """Resolve the connection (at run time) with env fallbacks; raise a clear error if no key."""
        try:
            conn = self.get_connection(self.klaviyo_conn_id)
        except AirflowNotFoundException:
            conn = None
        if conn is None:
            api_key, key_source = _env_key()
            if not api_key:
                raise KlaviyoConfigError(
                    f"Klaviyo connection {self.klaviyo_conn_id!r} is not defined and no key is in the "
                    f"environment: create it (e.g. AIRFLOW_CONN_{self.klaviyo_conn_id.upper()}) or set "
                    "KLAVIYO_API_KEY"
                )
            env_url, url_source = flowsync_settings.klaviyo_base_url()
            self.log.info(
                "Klaviyo connection %r is not defined; using the key from %s", self.klaviyo_conn_id, key_source
            )
            settings = KlaviyoConnectionSettings(
                base_url=base_url_from(env_url) if env_url else DEFAULT_BASE_URL,
                api_key=api_key,
                revision=resolve_revision(None),
                timeout=DEFAULT_TIMEOUT_SECONDS,
                account_key=None,
                key_source=key_source,
                url_source=url_source if env_url else "default",
            )
        else:
            extra = conn.extra_dejson or {}
            api_key = (conn.password or "").strip() or None
            key_source = f"connection {self.klaviyo_conn_id!r}"
            if not api_key:
                api_key, key_source = _env_key()
            if not api_key:
                raise KlaviyoConfigError(
                    f"Klaviyo connection {self.klaviyo_conn_id!r} has no password (private API key) and "
                    "neither KLAVIYO_API_KEY nor KLAVIYO_API_KEY_PRIVATE is set"
                )
            timeout = resolve_timeout(extra.get("timeout"), field=f"Connection {self.klaviyo_conn_id} extra.timeout")
            settings = KlaviyoConnectionSettings(
                base_url=base_url_from(conn.host, conn.schema, conn.port),
                api_key=api_key,
                revision=resolve_revision(extra.get("revision") or None),
                timeout=timeout,
                account_key=(extra.get("account_key") or None),
                key_source=key_source,
                url_source=f"connection {self.klaviyo_conn_id!r}" if conn.host else "default",
                time_scale=resolve_time_scale(extra.get("time_scale")),
            )
        _mask(settings.api_key)
        return settings

    def get_client(self, **overrides: Any) -> KlaviyoClient:
        """A new client from the resolved settings; ``overrides`` win over hook and connection values."""
        settings = self.get_settings()
        kwargs: dict[str, Any] = {
            "base_url": settings.base_url,
            "revision": settings.revision,
            "timeout": settings.timeout,
            "account_key": settings.account_key,
            "conn_id": self.klaviyo_conn_id,
            "time_scale": settings.time_scale,
            **self.client_kwargs,
            **overrides,
        }
        return KlaviyoClient(settings.api_key, **kwargs)

    @cached_property
    def client(self) -> KlaviyoClient:
        """The hook's client, built on first use inside a task (never at DAG parse time)."""
        return self.get_client()

    def get_conn(self) -> KlaviyoClient:
        return self.client

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]

    def test_connection(self) -> tuple[bool, str]:
        """For the UI's Test button: the key works and has every read scope the sync needs."""
        try:
            with self.get_client(max_wait_seconds=15.0, max_attempts=2) as client:
                missing = client.check_scopes()
                base = client.base_url
        except KlaviyoError as exc:
            return False, str(exc)
        if missing:
            return False, (
                f"Klaviyo accepted the key at {base} but it lacks scopes: {', '.join(missing)} "
                f"(flowsync needs {', '.join(REQUIRED_SCOPES)})"
            )
        return True, f"Connected to Klaviyo at {base}; the key has all read scopes flowsync needs"
