"""Airflow hook: a ``supabase`` connection (or the runbook's env vars) -> a :class:`SupabaseStorage`.

Connection fields: host = Supabase project URL, password = service-role key. When the connection
is absent or leaves a field empty, ``NEXT_PUBLIC_SUPABASE_URL`` / ``SUPABASE_SERVICE_ROLE_KEY`` fill
in, so the runbook's environment works unchanged. Nothing is looked up in ``__init__`` (hooks are
built at DAG parse time); lookups happen when ``get_storage()`` runs inside a task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from flowsync_provider import settings
from flowsync_provider.storage.base import StorageConfigError, StorageError
from flowsync_provider.storage.supabase import SupabaseStorage

__all__ = ["SupabaseCredentials", "SupabaseHook", "URL_ENV", "KEY_ENV"]

URL_ENV = "NEXT_PUBLIC_SUPABASE_URL"
KEY_ENV = "SUPABASE_SERVICE_ROLE_KEY"


@dataclass(frozen=True)
class SupabaseCredentials:
    """Resolved URL + key, and where each came from (``repr`` never shows the key)."""

    url: str
    service_key: str = field(repr=False)
    url_source: str
    key_source: str


def _mask(secret: str) -> None:
    """Register the key with Airflow's secrets masker so task logs redact it."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    mask_secret(secret)


class SupabaseHook(BaseHook):
    """Build a :class:`SupabaseStorage` from the ``supabase_default`` connection or env vars.

    :param supabase_conn_id: connection id (conn_type ``supabase``).
    :param timeout: HTTP timeout in seconds for every storage call.
    :param max_attempts: attempts for transient failures (connection errors, 5xx).
    """

    conn_name_attr = "supabase_conn_id"
    default_conn_name = "supabase_default"
    conn_type = "supabase"
    hook_name = "Supabase"

    def __init__(
        self,
        supabase_conn_id: str = default_conn_name,
        *,
        timeout: float = 30.0,
        max_attempts: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.supabase_conn_id = supabase_conn_id
        self.timeout = timeout
        self.max_attempts = max_attempts
        self._storage: SupabaseStorage | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Show only what the hook reads: the project URL and the service-role key."""
        return {
            "hidden_fields": ["schema", "port", "login", "extra"],
            "relabeling": {"host": "Supabase URL", "password": "Service role key"},
            "placeholders": {
                "host": "https://<project-ref>.supabase.co",
                "password": "service_role key (Project settings > API)",
            },
        }

    def get_credentials(self) -> SupabaseCredentials:
        """Resolve URL and key: connection fields first, env vars for whatever is missing."""
        conn = None
        try:
            conn = self.get_connection(self.supabase_conn_id)
        except AirflowNotFoundException:
            self.log.info(
                "Connection %r not defined; using %s / %s", self.supabase_conn_id, URL_ENV, KEY_ENV
            )
        url, url_source = "", ""
        key, key_source = "", ""
        if conn is not None and conn.host:
            host = conn.host.strip()
            if "://" not in host:
                host = f"{conn.schema or 'https'}://{host}"
                if conn.port:
                    host = f"{host}:{conn.port}"
            url, url_source = host, f"connection {self.supabase_conn_id}"
        if conn is not None and conn.password:
            key, key_source = conn.password, f"connection {self.supabase_conn_id}"
        if not url and settings.supabase_url()[0]:
            url, url_source = settings.supabase_url()[0], URL_ENV
        if not key and settings.supabase_service_role_key()[0]:
            key, key_source = settings.supabase_service_role_key()[0], KEY_ENV
        missing = [name for name, value in (("Supabase URL", url), ("service-role key", key)) if not value]
        if missing:
            raise StorageConfigError(
                f"Upload failed: verify Supabase envs ({' and '.join(missing)} missing): set the "
                f"{self.supabase_conn_id!r} connection (host = Supabase URL, password = service-role key) "
                f"or the env vars {URL_ENV} and {KEY_ENV}."
            )
        _mask(key)
        return SupabaseCredentials(url=url.rstrip("/"), service_key=key, url_source=url_source,
                                   key_source=key_source)

    def get_storage(self) -> SupabaseStorage:
        """The storage backend for this connection (built once per hook, on first call)."""
        if self._storage is None:
            creds = self.get_credentials()
            self.log.info("Supabase Storage at %s (url from %s, key from %s)", creds.url, creds.url_source,
                          creds.key_source)
            self._storage = SupabaseStorage(
                creds.url, creds.service_key, timeout=self.timeout, max_attempts=self.max_attempts
            )
        return self._storage

    def get_conn(self) -> SupabaseStorage:
        """Airflow's generic accessor; same as :meth:`get_storage`."""
        return self.get_storage()

    def close(self) -> None:
        """Release the storage client's HTTP connections."""
        if self._storage is not None:
            self._storage.close()
            self._storage = None

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's Test button: list buckets with the configured key."""
        try:
            buckets = self.get_storage().list_buckets()
        except StorageError as exc:
            return False, str(exc)
        finally:
            self.close()
        return True, f"Connection OK: {len(buckets)} bucket(s) visible ({', '.join(buckets[:10])})."
