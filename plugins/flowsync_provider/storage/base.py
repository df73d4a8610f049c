"""The one storage interface every backend (local folder, Supabase Storage) implements.

Operators only ever talk to :class:`StorageBackend`, so the embedded demo (a folder) and production
(Supabase) run the same code path, and the contract tests run against both.
"""

from __future__ import annotations

import abc
import builtins
from pathlib import Path

from flowsync_provider.core.errors import FlowsyncError

__all__ = [
    "StorageBackend",
    "StorageError",
    "StorageConfigError",
    "StorageAuthError",
    "BucketNotFound",
    "ObjectNotFound",
    "ObjectExists",
    "StorageUnavailable",
    "normalize_key",
    "object_path",
    "read_payload",
]

#: The runbook's troubleshooting line, kept word for word so users can search for it.
UPLOAD_HINT = "verify Supabase envs and staging bucket permissions"


class StorageError(FlowsyncError):
    """A storage operation failed; the message says what to check (never contains a key)."""


class StorageConfigError(StorageError, ValueError):
    """Storage is not configured (missing URL, key or bucket env var)."""


class StorageAuthError(StorageError):
    """The service key was rejected (HTTP 401/403 or an invalid JWT)."""


class BucketNotFound(StorageError):
    """The bucket does not exist (or is invisible to this key)."""


class ObjectNotFound(StorageError):
    """The object does not exist in an existing bucket."""

    retryable = True  # as before: a read-after-write may not see the object yet


class ObjectExists(StorageError):
    """An upload without upsert hit an existing object (HTTP 409 Duplicate)."""


class StorageUnavailable(StorageError):
    """The storage service could not be reached or answered 5xx after retries."""

    retryable = True


def normalize_key(path: str) -> str:
    """Return the object key for ``path``: leading slashes dropped, no empty or dot segments.

    The runbook writes ``/<uploadId>/flows.csv``; Supabase keys have no leading slash, and dot
    segments would escape a local bucket folder, so they are refused here for every backend.
    """
    if not isinstance(path, str):
        raise StorageConfigError(f"Object path must be a string, got {type(path).__name__}.")
    key = path.replace("\\", "/").lstrip("/")
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise StorageConfigError(
            f"Invalid object path {path!r}: use 'folder/name.csv' without empty, '.' or '..' segments."
        )
    return key


def normalize_bucket(bucket: str) -> str:
    """Validate a bucket name (non-empty, no slashes) so it can double as a folder name."""
    if not isinstance(bucket, str) or not bucket.strip() or "/" in bucket or bucket in (".", ".."):
        raise StorageConfigError(f"Invalid bucket name {bucket!r}: use a plain name such as 'flow-staging'.")
    return bucket.strip()


def normalize_prefix(prefix: str | None) -> str:
    """A folder prefix without surrounding slashes ('' = the whole bucket)."""
    if not prefix:
        return ""
    cleaned = prefix.replace("\\", "/").strip("/")
    if cleaned and any(p in ("", ".", "..") for p in cleaned.split("/")):
        raise StorageConfigError(f"Invalid folder prefix {prefix!r}: no empty, '.' or '..' segments.")
    return cleaned


def object_path(bucket: str, path: str) -> str:
    """The ``bucket/key`` string every backend returns from :meth:`StorageBackend.upload`."""
    return f"{normalize_bucket(bucket)}/{normalize_key(path)}"


def read_payload(data: bytes | bytearray | memoryview | Path | str) -> bytes:
    """Bytes to upload: raw bytes as given, or the content of a file path."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, Path | str):
        file = Path(data)
        try:
            return file.read_bytes()
        except OSError as exc:
            raise StorageError(f"Cannot read local file {file}: {exc.strerror or exc}.") from exc
    raise StorageConfigError(f"Upload data must be bytes or a file path, got {type(data).__name__}.")


class StorageBackend(abc.ABC):
    """Object storage by bucket and key; every method is safe to retry.

    ``upload`` has upsert semantics by default: writing the same object again replaces it and
    returns the same ``bucket/key``, so a re-run of a task never fails on its own earlier output.
    """

    @abc.abstractmethod
    def upload(
        self,
        bucket: str,
        path: str,
        data: bytes | Path,
        content_type: str = "text/csv",
        *,
        upsert: bool = True,
    ) -> str:
        """Store ``data`` at ``bucket/path`` and return ``"bucket/key"``.

        ``upsert=False`` raises :class:`ObjectExists` when the object is already there.
        """

    @abc.abstractmethod
    def download(self, bucket: str, path: str) -> bytes:
        """Return the object's bytes; :class:`ObjectNotFound` when it is absent."""

    @abc.abstractmethod
    def list(self, bucket: str, prefix: str = "") -> builtins.list[str]:
        """All object keys under the folder ``prefix`` (recursive, sorted, relative to the bucket)."""

    @abc.abstractmethod
    def exists(self, bucket: str, path: str) -> bool:
        """Whether the object exists (a missing bucket raises :class:`BucketNotFound` where detectable)."""

    @abc.abstractmethod
    def list_buckets(self) -> builtins.list[str]:
        """Names of the buckets this backend can see (used by connection tests)."""

    def describe(self) -> str:
        """A short human description for logs (never includes credentials)."""
        return type(self).__name__
