"""Live-write safety, pure: upload ids, object paths, the empty-upload guard and live-mode gating.

The snapshot processor deletes a window's series and re-inserts what the CSVs hold, so an empty or
all-zero file uploaded by mistake silently wipes the dashboard. Every decision about whether a file
may be uploaded lives here (no Airflow, no HTTP), so it is tested bare and the operators only
orchestrate.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

from flowsync_provider.core import ids
from flowsync_provider.core.errors import FlowsyncError
from flowsync_provider.core.params import legacy_settings, require_klaviyo_enabled
from flowsync_provider.core.schemas import (
    ADDITIVE_COLUMNS,
    CAMPAIGNS_COLUMNS,
    FLOWS_COLUMNS,
    SUBSCRIBERS_COLUMNS,
    to_decimal,
)

__all__ = [
    "FILE_KINDS",
    "SNAPSHOT_FILES",
    "CsvStats",
    "LiveNotReady",
    "UploadRefused",
    "active_messages",
    "check_uploadable",
    "csv_stats",
    "derive_upload_id",
    "kind_of_file",
    "object_paths",
    "require_live_ready",
]

SNAPSHOT_FILES: tuple[str, ...] = ("flows.csv", "campaigns.csv", "subscribers.csv")
FILE_KINDS: dict[str, str] = {"flows.csv": "flows", "campaigns.csv": "campaigns", "subscribers.csv": "subscribers"}
KIND_COLUMNS: dict[str, tuple[str, ...]] = {
    "flows": FLOWS_COLUMNS, "campaigns": CAMPAIGNS_COLUMNS, "subscribers": SUBSCRIBERS_COLUMNS,
}
# What "the catalog says there should be data" means for each file, for the refusal message.
_EXPECTED_WHAT = {
    "flows": "active flow email messages",
    "campaigns": "campaign messages sent in the window",
    "subscribers": "profiles expected",
}

_RUN_STAMP_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?"
)
_FILE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # fullmatch: no trailing-newline hole


class UploadRefused(FlowsyncError):
    """A file must not be uploaded (empty where data is expected, range output, wrong header)."""


class LiveNotReady(FlowsyncError):
    """Live mode is missing a prerequisite (storage connection, admin secret)."""


# ---------------------------------------------------------------- ids and paths
# The id → segment rule and the uploadId rule live in core.ids (one rule each, used everywhere).


def _run_stamp(run_id: str) -> str | None:
    """``YYYYmmddTHHMMSSZ`` (UTC) from the timestamp inside an Airflow run id, if there is one."""
    match = _RUN_STAMP_RE.search(run_id)
    if not match:
        return None
    year, month, day, hour, minute, second, offset = match.groups()
    try:
        instant = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        return None
    if offset and offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        instant = instant.replace(tzinfo=timezone(sign * delta))
    else:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def derive_upload_id(account_id: str | None, dag_id: str, run_id: str) -> str:
    """The upload id used when no ``uploadId`` param is given: ``<account>-<stamp>-<hash>``.

    - ``<account>``: :func:`flowsync_provider.core.ids.safe_segment` of the account id (``account``
      when unknown), so two accounts never share a folder (``acme/eu`` → ``acme_eu--<hash>``).
    - ``<stamp>``: the run id's timestamp in UTC as ``YYYYmmddTHHMMSSZ`` (Airflow run ids embed the
      logical date / run-after instant, e.g. ``scheduled__2025-09-17T01:00:00+00:00``); run ids
      without a timestamp use ``r`` + 10 hex digits of the run id's sha256 instead.
    - ``<hash>``: 6 hex digits of sha256(``dag_id`` + newline + ``run_id``), so two DAGs (or two
      manual runs in the same second) never collide.

    Only the account and the run go in, so every retry and re-run of the same DAG run derives the
    same id and overwrites its own objects instead of adding new ones. The result passes
    :func:`check_upload_id` and contains only ``[A-Za-z0-9._-]`` (a safe path segment).
    Example: ``acc_canary_1-20250917T010000Z-3fa1c2``.
    """
    if not run_id or not str(run_id).strip():
        raise ValueError("run_id is required to derive an upload id")
    run = str(run_id).strip()
    stamp = _run_stamp(run) or f"r{ids.short_hash(run, 10)}"
    run_hash = ids.short_hash(f"{dag_id}\n{run}")
    account = "account" if account_id in (None, "") else ids.safe_segment(account_id, fallback="account")
    return ids.check_upload_id(f"{account}-{stamp}-{run_hash}", error=ValueError)


def check_upload_id(upload_id: str) -> str:
    """The uploadId rule of the plan (:func:`flowsync_provider.core.ids.check_upload_id`), at upload time."""
    return ids.check_upload_id(upload_id, error=UploadRefused)


def kind_of_file(name: str) -> str:
    """``flows.csv`` → ``flows``; anything else is refused (only the processor's three CSVs go up)."""
    if name not in FILE_KINDS:
        raise UploadRefused(
            f"Cannot upload {name!r}: only {', '.join(SNAPSHOT_FILES)} are snapshot files (rename or drop it)."
        )
    return FILE_KINDS[name]


def object_paths(upload_id: str, files: Iterable[str] | Mapping[str, Any]) -> dict[str, str]:
    """``{"flows.csv": "<uploadId>/flows.csv", ...}`` (keys relative to the bucket, no leading slash)."""
    folder = check_upload_id(upload_id)
    paths: dict[str, str] = {}
    for name in files:
        if not isinstance(name, str) or not _FILE_NAME_RE.fullmatch(name) or ".." in name:
            raise UploadRefused(f"Object name {name!r} must be a plain file name such as 'flows.csv'.")
        paths[name] = f"{folder}/{name}"
    return paths


# ---------------------------------------------------------------- the empty-upload guard

def active_messages(catalog: Mapping[str, Any]) -> int:
    """Messages a catalog says should produce data: the ``catalog_active_messages`` of the guard.

    Flow catalog (``{"flows": [...]}``): email messages of flows that are not drafts (live and
    manual flows send). Campaign catalog (``{"campaigns": [...]}``): email messages of the campaigns
    sent inside the window (the catalog only holds those).
    """
    if "flows" in catalog:
        return sum(len(f.get("messages") or []) for f in catalog["flows"] if f.get("status") != "draft")
    if "campaigns" in catalog:
        return sum(len(c.get("messages") or []) for c in catalog["campaigns"])
    raise ValueError("catalog must be a flow catalog ({'flows': ...}) or a campaign catalog ({'campaigns': ...})")


@dataclass(frozen=True)
class CsvStats:
    """What a CSV holds, counted in one streaming pass (memory bounded by one row)."""

    header: tuple[str, ...]
    rows: int
    nonzero_rows: int
    additive_columns: tuple[str, ...]

    @property
    def has_data(self) -> bool:
        """Rows with a non-zero additive value, or any row for files without additive columns."""
        if self.additive_columns:
            return self.nonzero_rows > 0
        return self.rows > 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "header": list(self.header), "additive_columns": list(self.additive_columns),
                "has_data": self.has_data}


def _scan(stream: IO[str], stop_at_data: bool) -> CsvStats:
    reader = csv.reader(stream)
    header = tuple(next(reader, ()))
    additive = tuple(c for c in header if c in ADDITIVE_COLUMNS)
    positions = [i for i, c in enumerate(header) if c in ADDITIVE_COLUMNS]
    rows = nonzero = 0
    for row in reader:
        if not row or all(not cell.strip() for cell in row):
            continue
        rows += 1
        if any(i < len(row) and to_decimal(row[i]) != 0 for i in positions):
            nonzero += 1
        if stop_at_data and (nonzero or not positions):
            break
    return CsvStats(header=header, rows=rows, nonzero_rows=nonzero, additive_columns=additive)


def csv_stats(source: str | os.PathLike[str] | bytes, *, stop_at_data: bool = False) -> CsvStats:
    """Count data rows and non-zero additive rows of a CSV file (path) or of CSV bytes.

    ``stop_at_data=True`` stops at the first row that has data: enough to answer "did the previous
    upload have data?" without reading a large object to the end.
    """
    if isinstance(source, bytes | bytearray):
        with io.TextIOWrapper(io.BytesIO(source), encoding="utf-8-sig", errors="replace", newline="") as text:
            return _scan(text, stop_at_data)
    with open(Path(source), encoding="utf-8-sig", errors="replace", newline="") as handle:
        return _scan(handle, stop_at_data)


def check_uploadable(
    stats: CsvStats | str | os.PathLike[str],
    *,
    kind: str,
    catalog_active_messages: int,
    previous_had_data: bool,
    allow_empty: bool,
    aggregation: str | None = None,
) -> None:
    """Raise :class:`UploadRefused` (one sentence) when uploading this file would harm the dashboard.

    Refused: ``aggregation=range`` output (a window total is not a day), a header that is not the
    processor's contract, and, unless ``allow_empty``, an empty or all-zero file while the catalog
    expects data (``catalog_active_messages`` > 0) or the previous upload for the same window had
    data: the processor deletes the window's series and re-inserts what the file holds.
    """
    if aggregation == "range":
        raise UploadRefused(
            f"Refusing to upload {kind}.csv: aggregation=range output is a whole-window total, never a day, "
            "so it is dry-run only; run live with aggregation=per-day."
        )
    if kind not in KIND_COLUMNS:
        raise UploadRefused(f"Unknown file kind {kind!r}: expected one of {', '.join(KIND_COLUMNS)}.")
    if not isinstance(stats, CsvStats):
        stats = csv_stats(stats)
    expected = KIND_COLUMNS[kind]
    if stats.header != expected:
        found = ", ".join(stats.header[:4]) + ("..." if len(stats.header) > 4 else "") if stats.header else "none"
        raise UploadRefused(
            f"Refusing to upload {kind}.csv: its header (found: {found}) is not the processor's "
            f"{len(expected)}-column {kind} header; regenerate the file with this version of flowsync."
        )
    if stats.has_data or allow_empty:
        return
    if catalog_active_messages > 0:
        reason = f"the catalog has {catalog_active_messages} {_EXPECTED_WHAT[kind]}"
    elif previous_had_data:
        reason = "the previous upload for the same window had data"
    else:
        return
    content = "no data rows" if stats.rows == 0 else f"{stats.rows} data rows that are all zero"
    raise UploadRefused(
        f"Refusing to upload {kind}.csv: it has {content} while {reason}, and the processor would delete "
        "the window's series and re-insert nothing; check the sync (conversion metric, limits, window) "
        "or set allowEmpty=true if an empty window is really expected."
    )


# ---------------------------------------------------------------- live gating

def require_live_ready(
    *,
    storage_configured: bool,
    needs_admin_secret: bool,
    admin_secret_configured: bool | None = None,
    klaviyo_enabled: bool | None = None,
) -> None:
    """Live mode gating (runbook), checked before anything is fetched; the first missing piece raises.

    1. ``klaviyo_enabled`` (``settings.klaviyo_enabled()``: KLAVIYO_ENABLE=true;
       :class:`~flowsync_provider.core.params.KlaviyoDisabled`, the runbook's 501);
    2. a storage connection (:class:`LiveNotReady`, the runbook's "verify Supabase envs");
    3. for the snapshot trigger, the admin secret (:class:`LiveNotReady`, the runbook's 401).
       ``admin_secret_configured`` is whether the dashboard connection or ``settings.admin_job_secret()``
       holds it.

    A ``None`` fact is looked up in the settings (TODO issue 10: callers pass both after the operator rewrite).
    """
    require_klaviyo_enabled(klaviyo_enabled)
    if not storage_configured:
        raise LiveNotReady(
            "Live mode needs storage: verify Supabase envs and staging bucket permissions (set the "
            "supabase_default connection, or NEXT_PUBLIC_SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY; "
            "FLOWSYNC_STORAGE_BACKEND=local selects the embedded demo store)."
        )
    if needs_admin_secret:
        present = (
            bool(legacy_settings().admin_job_secret())
            if admin_secret_configured is None else admin_secret_configured
        )
        if not present:
            raise LiveNotReady(
                "Unauthorized: admin secret missing/invalid, and the snapshot trigger needs it (set the "
                "flowsync_dashboard connection password or ADMIN_JOB_SECRET)."
            )
