"""Storage backends behind one small interface (local folder, Supabase Storage) + bucket resolution.

Backends are pure of Airflow: hooks build them from connections, tests and the demo build them
directly. Bucket names come from ``flowsync_provider.settings`` (FLOW_STAGING_BUCKET, DATA_INGEST_BUCKET /
PREAUTH_BUCKET) unless a mapping of those names is passed.
"""

from __future__ import annotations

from collections.abc import Mapping

from flowsync_provider import settings
from flowsync_provider.storage.base import (
    BucketNotFound,
    ObjectExists,
    ObjectNotFound,
    StorageAuthError,
    StorageBackend,
    StorageConfigError,
    StorageError,
    StorageUnavailable,
    normalize_key,
    object_path,
)
from flowsync_provider.storage.local import LocalStorage
from flowsync_provider.storage.supabase import SupabaseStorage

__all__ = [
    "BucketNotFound",
    "LocalStorage",
    "ObjectExists",
    "ObjectNotFound",
    "StorageAuthError",
    "StorageBackend",
    "StorageConfigError",
    "StorageError",
    "StorageUnavailable",
    "SupabaseStorage",
    "ingest_bucket",
    "normalize_key",
    "object_path",
    "staging_bucket",
    "upload_key",
]

INGEST_BUCKET_ENVS = ("DATA_INGEST_BUCKET", "PREAUTH_BUCKET")
STAGING_BUCKET_ENV = "FLOW_STAGING_BUCKET"


def _first_set(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = (env.get(name) or "").strip()
        if value:
            return value
    return None


def ingest_bucket(env: Mapping[str, str] | None = None) -> str:
    """The snapshot ingest bucket: ``settings.ingest_bucket()`` (DATA_INGEST_BUCKET, else PREAUTH_BUCKET).

    ``env``: a mapping of those names read instead (TODO issue 10: drop it once operators/upload.py stops
    passing ``os.environ``).
    """
    value = settings.ingest_bucket() if env is None else _first_set(env, INGEST_BUCKET_ENVS)
    if value is None:
        raise StorageConfigError(
            "No ingest bucket configured: set DATA_INGEST_BUCKET (or the fallback PREAUTH_BUCKET) to the "
            "bucket that receives <uploadId>/flows.csv, campaigns.csv and subscribers.csv."
        )
    return value


def staging_bucket(env: Mapping[str, str] | None = None) -> str:
    """The staging bucket for single live writes: ``settings.staging_bucket()`` (FLOW_STAGING_BUCKET).

    ``env``: as for :func:`ingest_bucket`.
    """
    value = settings.staging_bucket() if env is None else _first_set(env, (STAGING_BUCKET_ENV,))
    if value is None:
        raise StorageConfigError(
            "No staging bucket configured: set FLOW_STAGING_BUCKET to the bucket that receives live writes."
        )
    return value


def upload_key(upload_id: str, filename: str) -> str:
    """The object key ``<uploadId>/<filename>`` for the three snapshot CSVs.

    The runbook's ``/<uploadId>/`` form is accepted (slashes around it dropped); the id itself must pass
    the one uploadId rule (``core.ids.check_upload_id``).
    """
    from flowsync_provider.core.uploads import object_paths

    return normalize_key(object_paths(str(upload_id).strip("/"), [filename])[filename])
