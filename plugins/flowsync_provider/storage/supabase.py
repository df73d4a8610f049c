"""Supabase Storage backend through the official ``supabase`` client (storage3 underneath).

supabase-py raises ``StorageApiError`` whose ``status`` carries the real code ("404", "403", "409")
while the wire status is usually 400; this module turns those into the :mod:`.base` errors with a
message a user can act on. The service-role key never appears in any message.
"""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from storage3.exceptions import StorageApiError
from storage3.utils import StorageException

from flowsync_provider.storage.base import (
    UPLOAD_HINT,
    BucketNotFound,
    ObjectExists,
    ObjectNotFound,
    StorageAuthError,
    StorageBackend,
    StorageConfigError,
    StorageError,
    StorageUnavailable,
    normalize_bucket,
    normalize_key,
    normalize_prefix,
    read_payload,
)

__all__ = ["SupabaseStorage"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_PAGE = 100  # storage3's default list page; the server caps pages anyway
_BUCKET_MISSING = {"bucket not found", "nosuchbucket"}
_AUTH_CODES = {"unauthorized", "invalidjwt", "accessdenied", "signaturedoesnotmatch", "invalidsignature"}
_RETRY_STATUS = {500, 502, 503, 504, 544}


class _Transient(Exception):
    """Internal marker: a failure worth another attempt (5xx, connection reset, timeout)."""

    def __init__(self, error: StorageError) -> None:
        super().__init__(str(error))
        self.error = error


class SupabaseStorage(StorageBackend):
    """Supabase Storage over HTTP with the service-role key.

    The client is created lazily on first use (so constructing this object does no I/O) and
    reused; ``close()`` releases the HTTP connection pool. Transient failures (connection
    errors, timeouts, 5xx) are retried ``max_attempts`` times with exponential backoff; uploads
    are upserts, so a retry can never duplicate an object.
    """

    def __init__(
        self,
        url: str,
        service_key: str,
        timeout: float = 30.0,
        *,
        max_attempts: int = 3,
        backoff_seconds: float = 0.5,
    ) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise StorageConfigError(
                "Supabase URL must start with http:// or https:// "
                "(set the connection host or NEXT_PUBLIC_SUPABASE_URL)."
            )
        if not service_key:
            raise StorageConfigError(
                "Supabase service-role key is empty "
                "(set the connection password or SUPABASE_SERVICE_ROLE_KEY)."
            )
        self.url = url.rstrip("/")
        self._service_key = service_key
        self.timeout = float(timeout)
        self.max_attempts = max(1, int(max_attempts))
        self.backoff_seconds = max(0.0, float(backoff_seconds))
        self._client: Any = None
        self._http: httpx.Client | None = None

    def __repr__(self) -> str:  # never show the key, even in a debugger or a log of the object
        return f"SupabaseStorage(url={self.url!r})"

    def describe(self) -> str:
        return f"Supabase Storage at {self.url}"

    # -- client -------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The ``supabase.Client`` (created on first use)."""
        if self._client is None:
            from supabase import ClientOptions, create_client

            self._http = httpx.Client(timeout=self.timeout, follow_redirects=True)
            try:
                self._client = create_client(
                    self.url, self._service_key, options=ClientOptions(httpx_client=self._http)
                )
            except Exception as exc:  # SupabaseException: invalid URL/key format
                self._http.close()
                self._http = None
                raise StorageConfigError(
                    f"Cannot create the Supabase client for {self.url}: {self._redact(str(exc))}"
                ) from None
        return self._client

    def close(self) -> None:
        """Release the HTTP connections (the object can be used again afterwards)."""
        if self._http is not None:
            self._http.close()
        self._http = None
        self._client = None

    def __enter__(self) -> SupabaseStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- errors -------------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        return text.replace(self._service_key, "***") if self._service_key else text

    def _translate(self, exc: BaseException, op: str, bucket: str, key: str | None) -> StorageError:
        """Map a storage3/httpx failure to a :class:`StorageError` (transient ones wrapped)."""
        what = f"'{bucket}/{key}'" if key else f"bucket '{bucket}'"
        verb = op.capitalize()
        if isinstance(exc, httpx.TimeoutException):
            return StorageUnavailable(
                f"{verb} failed: Supabase Storage at {self.url} timed out after {self.timeout:g}s for {what}."
            )
        if isinstance(exc, httpx.TransportError):
            return StorageUnavailable(
                f"{verb} failed: cannot reach Supabase Storage at {self.url} ({type(exc).__name__}); "
                f"{UPLOAD_HINT}."
            )
        if isinstance(exc, StorageApiError):
            status = str(exc.status)
            code = str(exc.code or "")
            message = self._redact(str(exc.message or ""))
            if len(message) > 200:
                message = message[:200] + "..."
            low_code, low_msg = code.lower(), message.lower()
            if status == "404" and (low_code in _BUCKET_MISSING or low_msg in _BUCKET_MISSING):
                return BucketNotFound(f"{verb} failed: {UPLOAD_HINT} (bucket '{bucket}' not found).")
            if status in ("401", "403") or low_code in _AUTH_CODES or "jwt" in low_msg:
                return StorageAuthError(
                    f"{verb} failed: {UPLOAD_HINT} (Supabase rejected the service-role key for {what}: "
                    f"{message or code})."
                )
            if status == "404":
                return ObjectNotFound(f"{verb} failed: object {what} not found.")
            if status == "409":
                return ObjectExists(
                    f"{verb} failed: {what} already exists (upload with upsert to replace it)."
                )
            if status.isdigit() and int(status) in _RETRY_STATUS:
                return StorageUnavailable(
                    f"{verb} failed: Supabase Storage answered {status} ({message or code}) for {what}."
                )
            return StorageError(f"{verb} failed: Supabase Storage answered {status} {code}: {message}")
        if isinstance(exc, StorageException):
            return StorageError(f"{verb} failed for {what}: {self._redact(str(exc))}")
        return StorageError(f"{verb} failed for {what}: {type(exc).__name__}: {self._redact(str(exc))}")

    def _call(self, op: str, bucket: str, key: str | None, fn: Callable[[], T]) -> T:
        """Run ``fn`` with the retry policy; raise the translated error (never chained to secrets)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except (StorageApiError, StorageException, httpx.HTTPError) as exc:
                error = self._translate(exc, op, bucket, key)
            if not isinstance(error, StorageUnavailable) or attempt >= self.max_attempts:
                if attempt > 1:
                    error.args = (f"{error.args[0]} (after {attempt} attempts)",)
                raise error from None
            delay = self.backoff_seconds * (2 ** (attempt - 1))
            log.warning("%s (attempt %d/%d); retrying in %.2fs", error, attempt, self.max_attempts, delay)
            time.sleep(delay)

    # -- StorageBackend -----------------------------------------------------------------------
    def upload(
        self,
        bucket: str,
        path: str,
        data: bytes | Path,
        content_type: str = "text/csv",
        *,
        upsert: bool = True,
    ) -> str:
        bucket = normalize_bucket(bucket)
        key = normalize_key(path)
        payload = read_payload(data)
        # storage3 sends file options as headers: upsert must be the string "true", not a bool.
        options = {"content-type": content_type, "upsert": "true" if upsert else "false"}
        self._call(
            "upload", bucket, key, lambda: self.client.storage.from_(bucket).upload(key, payload, options)
        )
        log.info("Uploaded %d bytes to %s/%s", len(payload), bucket, key)
        return f"{bucket}/{key}"

    def download(self, bucket: str, path: str) -> bytes:
        bucket = normalize_bucket(bucket)
        key = normalize_key(path)
        return self._call("download", bucket, key, lambda: self.client.storage.from_(bucket).download(key))

    def _list_folder(self, bucket: str, folder: str, search: str = "") -> builtins.list[dict[str, Any]]:
        """One folder level, all pages."""
        entries: builtins.list[dict[str, Any]] = []
        offset = 0
        while True:
            options: dict[str, Any] = {"limit": _PAGE, "offset": offset}
            if search:
                options["search"] = search
            page = self._call(
                "list", bucket, folder or None,
                lambda o=options: self.client.storage.from_(bucket).list(folder, o),
            )
            entries.extend(page)
            if len(page) < _PAGE:
                return entries
            offset += len(page)

    def list(self, bucket: str, prefix: str = "") -> builtins.list[str]:
        bucket = normalize_bucket(bucket)
        keys: builtins.list[str] = []
        pending = [normalize_prefix(prefix)]
        while pending:
            folder = pending.pop()
            for entry in self._list_folder(bucket, folder):
                name = entry.get("name") or ""
                if not name or name == ".emptyFolderPlaceholder":
                    continue
                full = f"{folder}/{name}" if folder else name
                if entry.get("id") is None:  # folders come back with a null id
                    pending.append(full)
                else:
                    keys.append(full)
        return sorted(keys)

    def exists(self, bucket: str, path: str) -> bool:
        """Checked by listing the parent folder (works on every Storage server version)."""
        bucket = normalize_bucket(bucket)
        key = normalize_key(path)
        folder, _, name = key.rpartition("/")
        entries = self._list_folder(bucket, folder, search=name)
        return any(e.get("name") == name and e.get("id") is not None for e in entries)

    def list_buckets(self) -> builtins.list[str]:
        buckets = self._call("list buckets", "*", None, lambda: self.client.storage.list_buckets())
        return sorted(b.name for b in buckets)

    def create_bucket(self, bucket: str, *, public: bool = False) -> None:
        """Create a bucket; an existing one is fine (idempotent, used by the demo and tests)."""
        bucket = normalize_bucket(bucket)
        try:
            self._call(
                "create bucket", bucket, None,
                lambda: self.client.storage.create_bucket(bucket, options={"public": public}),
            )
        except ObjectExists:
            return
