"""Upload a sync's CSVs to object storage under ``<uploadId>/``: checked first, then upserted.

Backend choice (logged on every run): Supabase Storage through :class:`SupabaseHook` when a
Supabase connection or the runbook's env vars are configured, else a local folder
``$FLOWSYNC_HOME/storage`` (the embedded store of ``make demo``). ``FLOWSYNC_STORAGE_BACKEND``
(``auto`` | ``supabase`` | ``local``) or the operator's ``backend`` argument forces one.

Buckets: ``bucket_env="staging"`` → ``FLOW_STAGING_BUCKET`` (manual live runs of a single sync),
``"ingest"`` → ``DATA_INGEST_BUCKET`` / ``PREAUTH_BUCKET`` (the nightly snapshot). With Supabase the
env var is required (a wrong guess would write somewhere unexpected); with the local backend the
defaults ``flow-staging`` / ``data-ingest`` apply when the env var is unset.

Every file is checked (header, empty/all-zero guard, range output) before the first byte is
uploaded, so a refusal never leaves half a snapshot behind; uploads are upserts, so a re-run
overwrites its own objects instead of duplicating them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowNotFoundException

from flowsync_provider import settings
from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.summary import flowsync_home
from flowsync_provider.core.uploads import (
    active_messages,
    check_upload_id,
    check_uploadable,
    csv_stats,
    derive_upload_id,
    kind_of_file,
    object_paths,
    require_live_ready,
)
from flowsync_provider.errors import fail_fast
from flowsync_provider.storage import (
    LocalStorage,
    ObjectNotFound,
    StorageBackend,
    ingest_bucket,
    staging_bucket,
)

__all__ = [
    "BACKEND_ENV",
    "LOCAL_DEFAULT_BUCKETS",
    "UploadOperator",
    "check_live_ready",
    "resolve_bucket",
    "resolve_storage",
    "storage_configured",
    "supabase_configured",
    "upload_files",
    "upload_sync_output",
]

BACKEND_ENV = "FLOWSYNC_STORAGE_BACKEND"
BACKENDS = ("auto", "supabase", "local")
LOCAL_DEFAULT_BUCKETS = {"staging": "flow-staging", "ingest": "data-ingest"}
_log = logging.getLogger(__name__)


# ---------------------------------------------------------------- choosing storage and bucket

def _backend_choice(backend: str | None) -> str:
    choice = (backend or settings.storage_backend() or "auto").strip().lower()
    if choice not in BACKENDS:
        raise ParamError(f"{BACKEND_ENV}/backend must be one of {', '.join(BACKENDS)}, got {choice!r}.")
    return choice


def supabase_configured(supabase_conn_id: str = "supabase_default") -> bool:
    """Whether a Supabase connection (with a host or key) or the runbook's Supabase env vars exist."""

    try:
        conn = BaseHook.get_connection(supabase_conn_id)
    except AirflowNotFoundException:
        conn = None
    if conn is not None and (conn.host or conn.password):
        return True
    return settings.supabase_env_configured()


def storage_configured(supabase_conn_id: str = "supabase_default", backend: str | None = None) -> bool:
    """For live gating: Supabase is configured, or the local store was chosen explicitly (demo)."""
    choice = _backend_choice(backend)
    return choice == "local" or supabase_configured(supabase_conn_id)


def check_live_ready(
    *,
    supabase_conn_id: str = "supabase_default",
    dashboard_conn_id: str = "flowsync_dashboard",
    needs_admin_secret: bool = False,
    backend: str | None = None,
) -> None:
    """:func:`~flowsync_provider.core.uploads.require_live_ready` with the facts read from connections."""
    secret: bool | None = None
    if needs_admin_secret:
        try:
            conn = BaseHook.get_connection(dashboard_conn_id)
            secret = bool((conn.password or "").strip()) or None
        except AirflowNotFoundException:
            secret = None
    require_live_ready(
        storage_configured=storage_configured(supabase_conn_id, backend),
        needs_admin_secret=needs_admin_secret,
        admin_secret_configured=secret,
    )


def resolve_storage(
    supabase_conn_id: str = "supabase_default",
    backend: str | None = None,
    *,
    log: Any = _log,
) -> tuple[StorageBackend, str]:
    """``(storage, "supabase" | "local")`` following the rules in the module docstring."""
    choice = _backend_choice(backend)
    if choice == "supabase" or (choice == "auto" and supabase_configured(supabase_conn_id)):
        from flowsync_provider.hooks.supabase import SupabaseHook

        storage = SupabaseHook(supabase_conn_id=supabase_conn_id).get_storage()
        log.info("Storage backend: %s (connection %s / Supabase env vars).", storage.describe(), supabase_conn_id)
        return storage, "supabase"
    local = LocalStorage(flowsync_home() / "storage")
    if choice == "local":
        log.info("Storage backend: %s (chosen by %s=local).", local.describe(), BACKEND_ENV)
    else:
        log.info(
            "Storage backend: %s: no Supabase connection %r or NEXT_PUBLIC_SUPABASE_URL configured, "
            "so the embedded local store is used.", local.describe(), supabase_conn_id,
        )
    return local, "local"


def resolve_bucket(
    bucket: str | None, bucket_env: str, backend: str, env: Mapping[str, str] | None = None
) -> str:
    """An explicit bucket wins; else the env var for ``bucket_env``; local backends fall back to defaults."""
    if bucket:
        return bucket
    if bucket_env not in LOCAL_DEFAULT_BUCKETS:
        raise ParamError(f"bucket_env must be 'staging' or 'ingest', got {bucket_env!r}.")
    resolve = staging_bucket if bucket_env == "staging" else ingest_bucket
    if backend == "local":
        try:
            return resolve(env)
        except ValueError:
            return LOCAL_DEFAULT_BUCKETS[bucket_env]
    return resolve(env)


# ---------------------------------------------------------------- the upload itself

def _as_bool(value: Any) -> bool:
    """Templated flags arrive as strings ("True", "false") unless rendered natively."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _expected(catalog_active_messages: Mapping[str, Any] | int | None, name: str) -> int:
    if catalog_active_messages is None:
        return 0
    if isinstance(catalog_active_messages, Mapping):
        value = catalog_active_messages.get(name, catalog_active_messages.get(kind_of_file(name), 0))
    else:
        value = catalog_active_messages
    if isinstance(value, Mapping):  # a catalog task's output, passed as is
        return active_messages(value)
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        raise ParamError(f"catalog_active_messages for {name} must be a whole number, got {value!r}.") from None


def _had_data(storage: StorageBackend, bucket: str, key: str) -> bool:
    """Whether an existing object at ``bucket/key`` holds data (False when there is none)."""
    try:
        if not storage.exists(bucket, key):
            return False
        return csv_stats(storage.download(bucket, key), stop_at_data=True).has_data
    except ObjectNotFound:
        return False


def upload_files(
    storage: StorageBackend,
    bucket: str,
    upload_id: str,
    files: Mapping[str, str | os.PathLike[str]],
    *,
    catalog_active_messages: Mapping[str, Any] | int | None = None,
    allow_empty: bool = False,
    previous_upload_id: str | None = None,
    aggregation: str | None = None,
    backend: str | None = None,
    log: Any = _log,
) -> dict[str, Any]:
    """Check every file, then upsert each to ``bucket/<uploadId>/<name>``; return the object paths.

    The previous upload for the same window is the object already at the target key (a re-run of
    the same upload id) and, when given, the same file under ``previous_upload_id``; it is only read
    when the new file has no data (the only case where it matters).
    """
    if not files:
        raise ParamError("files is empty: give at least one of flows.csv, campaigns.csv, subscribers.csv.")
    upload_id = check_upload_id(upload_id)
    keys = object_paths(upload_id, files)
    previous_keys = object_paths(previous_upload_id, files) if previous_upload_id else {}
    checks: dict[str, dict[str, Any]] = {}
    for name, local in files.items():
        kind = kind_of_file(name)
        path = Path(local)
        if not path.is_file():
            raise ParamError(f"{name}: local file {path} does not exist; did the build task write it?")
        stats = csv_stats(path)
        previous = False
        if not stats.has_data and not allow_empty:
            previous = _had_data(storage, bucket, keys[name]) or (
                name in previous_keys and _had_data(storage, bucket, previous_keys[name])
            )
        check_uploadable(
            stats, kind=kind, catalog_active_messages=_expected(catalog_active_messages, name),
            previous_had_data=previous, allow_empty=allow_empty, aggregation=aggregation,
        )
        checks[name] = {"rows": stats.rows, "nonzero_rows": stats.nonzero_rows, "has_data": stats.has_data,
                        "previous_had_data": previous, "bytes": path.stat().st_size}
        if not stats.has_data:
            log.warning("%s has no data (%d rows); uploading it anyway (allowEmpty=%s, nothing expected).",
                        name, stats.rows, allow_empty)
    objects: dict[str, str] = {}
    for name, local in files.items():
        objects[name] = storage.upload(bucket, keys[name], Path(local), "text/csv", upsert=True)
        log.info("Uploaded %s (%d rows, %d bytes) → %s", name, checks[name]["rows"], checks[name]["bytes"],
                 objects[name])
    return {"bucket": bucket, "upload_id": upload_id, "objects": objects, "backend": backend or
            type(storage).__name__, "checks": checks}


def _context_ids(context: Mapping[str, Any]) -> tuple[str, str]:
    dag = context.get("dag")
    dag_run = context.get("dag_run")
    ti = context.get("ti")
    dag_id = getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None) or getattr(ti, "dag_id", None)
    run_id = context.get("run_id") or getattr(dag_run, "run_id", None) or getattr(ti, "run_id", None)
    if not dag_id or not run_id:
        raise ParamError("uploadId is not set and the run has no dag_id/run_id to derive one from: pass uploadId.")
    return str(dag_id), str(run_id)


def _upload_id(upload_id: str | None, account_id: str | None, context: Mapping[str, Any], log: Any) -> str:
    if upload_id not in (None, "", "None"):
        return check_upload_id(str(upload_id))
    dag_id, run_id = _context_ids(context)
    derived = derive_upload_id(account_id, dag_id, run_id)
    log.info("No uploadId given: derived %s from account %s and run %s (stable across retries).",
             derived, account_id or "(unknown)", run_id)
    return derived


def upload_sync_output(
    output: Mapping[str, Any],
    context: Mapping[str, Any],
    *,
    account_id: str | None,
    upload_id: str | None = None,
    supabase_conn_id: str = "supabase_default",
    bucket: str | None = None,
    bucket_env: str = "staging",
    catalog_active_messages: Mapping[str, Any] | int | None = None,
    allow_empty: bool = False,
    backend: str | None = None,
    log: Any = _log,
) -> dict[str, Any]:
    """Live mode of a single sync: upload its build output's CSV to the staging bucket.

    ``output`` is a build task's result: ``files.csv`` (or ``files.data`` when it is a ``.csv``) is
    the file, named after it (``flows.csv``...); ``aggregation`` (range output is refused). Returns
    the same dict as :func:`upload_files` (the runbook: "Live JSON output confirms the object paths").
    """
    files = output.get("files") or {}
    data = files.get("csv") or files.get("data")
    if not data or not str(data).endswith(".csv"):
        raise ParamError(
            "Live mode uploads the CSV, but the build wrote no .csv file: build the CSV (format=csv) "
            "before uploading."
        )
    path = Path(str(data))
    storage, chosen = resolve_storage(supabase_conn_id, backend, log=log)
    try:
        target = resolve_bucket(bucket, bucket_env, chosen)
        uid = _upload_id(upload_id, account_id, context, log)
        return upload_files(
            storage, target, uid, {path.name: path},
            catalog_active_messages=catalog_active_messages, allow_empty=allow_empty,
            aggregation=output.get("aggregation"), backend=chosen, log=log,
        )
    finally:
        close = getattr(storage, "close", None)
        if callable(close):
            close()


class UploadOperator(BaseOperator):
    """Upload CSVs to ``<bucket>/<uploadId>/<name>`` (checked, then upserted).

    :param files: ``{"flows.csv": "/path/flows.csv", ...}`` (templated; XComArgs resolve).
    :param bucket: explicit bucket; default from ``bucket_env``.
    :param bucket_env: ``"staging"`` (``FLOW_STAGING_BUCKET``) or ``"ingest"`` (``DATA_INGEST_BUCKET``,
        fallback ``PREAUTH_BUCKET``).
    :param upload_id: folder name; empty → derived from the account and the run
        (:func:`~flowsync_provider.core.uploads.derive_upload_id`).
    :param account_id: the Klaviyo account id (part of a derived upload id).
    :param allow_empty: upload empty/all-zero files even where data is expected.
    :param catalog_active_messages: ``{"flows.csv": n, ...}`` or one int: how many messages the
        catalog says should have data (an empty file is refused when > 0); a value may also be the
        catalog task's output itself (counted by :func:`~flowsync_provider.core.uploads.active_messages`).
    :param previous_upload_id: an earlier upload of the same window whose files are compared too.
    :param aggregation: the build's aggregation; ``"range"`` output is never uploaded.
    :param backend: ``auto`` (default, or ``FLOWSYNC_STORAGE_BACKEND``), ``supabase`` or ``local``.

    Returns ``{"bucket", "upload_id", "objects": {"flows.csv": "bucket/<uploadId>/flows.csv"}, "backend",
    "checks"}``.
    """

    template_fields: Sequence[str] = (
        "files", "bucket", "upload_id", "account_id", "allow_empty", "catalog_active_messages",
        "previous_upload_id", "aggregation",
    )
    ui_color = "#3ecf8e"

    def __init__(
        self,
        *,
        files: Any,
        bucket: str | None = None,
        bucket_env: str = "ingest",
        upload_id: str | None = None,
        account_id: str | None = None,
        supabase_conn_id: str = "supabase_default",
        allow_empty: Any = False,
        catalog_active_messages: Any = None,
        previous_upload_id: str | None = None,
        aggregation: str | None = None,
        backend: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if bucket_env not in LOCAL_DEFAULT_BUCKETS:
            raise ValueError(f"bucket_env must be 'staging' or 'ingest', got {bucket_env!r}")
        self.files = files
        self.bucket = bucket
        self.bucket_env = bucket_env
        self.upload_id = upload_id
        self.account_id = account_id
        self.supabase_conn_id = supabase_conn_id
        self.allow_empty = allow_empty
        self.catalog_active_messages = catalog_active_messages
        self.previous_upload_id = previous_upload_id
        self.aggregation = aggregation
        self.backend = backend

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        files = {str(name): str(path) for name, path in dict(self.files or {}).items()}
        account = None if self.account_id in (None, "", "None") else str(self.account_id)
        storage, chosen = resolve_storage(self.supabase_conn_id, self.backend, log=self.log)
        try:
            with fail_fast():  # a refusal or a missing bucket fails the same way on every try
                result = self._upload(storage, chosen, files, account, context)
        finally:
            close = getattr(storage, "close", None)
            if callable(close):
                close()
        self.log.info("Upload %s complete: %s", result["upload_id"], ", ".join(result["objects"].values()))
        return result

    def _upload(
        self, storage: StorageBackend, chosen: str, files: dict[str, str], account: str | None,
        context: Mapping[str, Any],
    ) -> dict[str, Any]:
        bucket = resolve_bucket(self.bucket or None, self.bucket_env, chosen)
        upload_id = _upload_id(self.upload_id, account, context, self.log)
        previous = None if self.previous_upload_id in (None, "", "None") else str(self.previous_upload_id)
        return upload_files(
            storage, bucket, upload_id, files,
            catalog_active_messages=self.catalog_active_messages,
            allow_empty=_as_bool(self.allow_empty),
            previous_upload_id=previous,
            aggregation=self.aggregation or None,
            backend=chosen,
            log=self.log,
        )
