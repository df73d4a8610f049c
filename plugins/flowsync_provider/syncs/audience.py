"""Audience sync steps: list walk + profile stream → subscribers.csv ordered by Profile ID, bounded memory.

The heaviest export (100k profiles = 1,000 pages of ``GET /api/profiles``), so nothing here holds the
audience: rows go to disk as they arrive and only counts, paths and diagnostics are returned.

- List membership is gathered by walking each list's members (``GET /api/lists/{id}/profiles``,
  ids only) — a few hundred calls, not one per profile. It runs in a second thread, overlapping the
  profile stream: the two endpoints have separate rate-limit buckets.
- Rows are ordered by Profile ID with a bounded-memory external sort (sorted runs of at most
  ``chunk_rows`` rows + a k-way merge), joined on the fly with the equally sorted membership pairs.
  Profiles are requested with ``sort=id`` (allowed by the spec), so the runs are already in order
  and the merge is one sequential pass; the sort only matters if a server ignores ``sort``.
- PII: ``fields[profile]`` asks only for what the CSV needs (names not even fetched with dropNames);
  ``hashEmails`` writes a keyed HMAC-SHA256; previews are masked; local run folders are removed after a
  successful upload (``cleanup_run_folder``, retention setting ``FLOWSYNC_PII_RETENTION_HOURS``). Sort runs and
  the half-written data file live in one flocked ``core.workdir.WorkDir``, removed on every exit Python
  sees; a SIGKILLed run's is removed by the next run's ``sweep_dead_workdirs``.

No Airflow import: the operators, the benchmark and scripts all run these functions.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from flowsync_provider import settings
from flowsync_provider.core import catalog as catalog_core
from flowsync_provider.core.csvio import CsvStreamWriter, csv_text, format_row, sample, write_json
from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.params import SyncRequest
from flowsync_provider.core.schemas import SUBSCRIBERS_COLUMNS
from flowsync_provider.core.subscribers import profile_row
from flowsync_provider.core.workdir import WorkDir, atomic_temp
from flowsync_provider.klaviyo import KlaviyoClient
from flowsync_provider.syncs.output import base_diagnostics, check_budget, client_diagnostics

log = logging.getLogger(__name__)

DAG_ID = "klaviyo_audience_sync"
PROFILES_PATH = "/api/profiles"
PAGE_SIZE = 100  # the spec's maximum for /api/profiles and /api/lists/{id}/profiles
DEFAULT_CHUNK_ROWS = 5_000
UPLOADED_MARKER = ".uploaded"
BUDGET_ADVICE = "use audienceMode=incremental, or raise rowBudget (hard maximum FLOWSYNC_MAX_ROW_BUDGET)"
UNKEYED_HASH_WARNING = (
    "hashEmails without FLOWSYNC_HASH_KEY: emails are plain SHA-256, which a dictionary of known "
    "addresses can reverse; set FLOWSYNC_HASH_KEY for a keyed HMAC."
)
ROW_COLUMNS = tuple(c for c in SUBSCRIBERS_COLUMNS if c != "Lists")


# ---------------------------------------------------------------- settings

def hash_key_from_env() -> bytes | None:
    """``settings.hash_key()`` (FLOWSYNC_HASH_KEY; None: hashing falls back to plain SHA-256).

    TODO issue 10: remove when operators/audience.py and operators/snapshot_runs.py (its callers) are rewritten.
    """
    return settings.hash_key()


def default_updated_since(instant: datetime, lookback_hours: float | None = None) -> str:
    """Incremental default: ``lookback_hours`` (setting FLOWSYNC_AUDIENCE_LOOKBACK_HOURS, 24) before the run."""
    hours = settings.audience_lookback_hours() if lookback_hours is None else lookback_hours
    aware = instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)
    return (aware.astimezone(UTC) - timedelta(hours=hours)).replace(microsecond=0).isoformat()


def profile_query_params(*, updated_after: str | None, drop_names: bool) -> dict[str, Any]:
    """``GET /api/profiles`` params: max page, ``sort=id``, subscriptions, only the fields the CSV needs."""
    fields = ["email", "created", "updated", "subscriptions.email.marketing"]
    if not drop_names:
        fields[1:1] = ["first_name", "last_name"]
    params: dict[str, Any] = {
        "additional-fields[profile]": "subscriptions",
        "fields[profile]": ",".join(fields),
        "page[size]": PAGE_SIZE,
        "sort": "id",
    }
    if updated_after:
        params["filter"] = f"greater-than(updated,{updated_after})"
    return params


def audience_plan(client: KlaviyoClient, request: SyncRequest, *, now: datetime,
                  hash_key_set: bool | None = None) -> dict[str, Any]:
    """Account, incremental cut-off (``updatedSince`` or the lookback default before ``now``), warnings."""
    account = catalog_core.account_info(client.get_account())
    updated_since = None
    if request.audienceMode == "incremental":
        updated_since = request.updatedSince or default_updated_since(now)
    warnings = list(request.warnings)
    keyed = bool(settings.hash_key()) if hash_key_set is None else hash_key_set
    if request.hashEmails and not keyed:
        warnings.append(UNKEYED_HASH_WARNING)
    log.info("Audience plan: %s export%s for account %s", request.audienceMode,
             f" of profiles updated after {updated_since}" if updated_since else "", account["id"])
    for warning in warnings:
        log.warning(warning)
    return {"sync": "audience", "request": request.to_dict(), "account": account,
            "timezone": account["timezone"], "updated_since": updated_since, "warnings": warnings}


# ---------------------------------------------------------------- bounded-memory sorting

class RunSorter:
    """External sort of ``(key, payload)`` items: sorted runs of ≤ ``chunk_rows`` on disk, k-way merge.

    Items come back ordered by (key, arrival), so for a repeated key the last one is the freshest.
    Payloads are JSON-encoded one per line (newlines in names stay safe). Memory: one chunk.
    """

    def __init__(self, directory: Path, name: str, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        self.directory = directory
        self.name = name
        self.chunk_rows = chunk_rows
        self.count = 0
        self.runs: list[Path] = []
        self.max_buffered = 0
        self._buffer: list[tuple[str, int, Any]] = []

    def add(self, key: str, payload: Any) -> None:
        self._buffer.append((key, self.count, payload))
        self.count += 1
        if len(self._buffer) >= self.chunk_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        self.max_buffered = max(self.max_buffered, len(self._buffer))
        self._buffer.sort(key=lambda item: (item[0], item[1]))
        path = self.directory / f"{self.name}.{len(self.runs):05d}.jsonl"
        with path.open("w", encoding="utf-8", newline="\n") as stream:
            for item in self._buffer:
                stream.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")))
                stream.write("\n")
        self.runs.append(path)
        self._buffer = []

    @staticmethod
    def _read(path: Path) -> Iterator[tuple[str, int, Any]]:
        with path.open(encoding="utf-8") as stream:
            for line in stream:
                key, seq, payload = json.loads(line)
                yield key, seq, payload

    def merged(self) -> Iterator[tuple[str, int, Any]]:
        """All items ordered by (key, arrival); flushes the last chunk first."""
        self._flush()
        return heapq.merge(*(self._read(p) for p in self.runs), key=lambda item: (item[0], item[1]))


def latest_per_key(items: Iterator[tuple[str, int, Any]]) -> Iterator[tuple[str, Any]]:
    """(key, payload) once per key, keeping the last arrival (a profile seen twice: its fresher copy)."""
    for key, group in itertools.groupby(items, key=lambda item: item[0]):
        last = deque(group, maxlen=1)[0]
        yield key, last[2]


def join_lists(profiles: Iterator[tuple[str, Any]], members: Iterator[tuple[str, int, Any]],
               ) -> Iterator[tuple[str, Any, list[str]]]:
    """Merge-join two id-ordered streams: (profile id, payload, names of its lists)."""
    pending = next(members, None)
    for key, payload in profiles:
        while pending is not None and pending[0] < key:
            pending = next(members, None)
        names: list[str] = []
        while pending is not None and pending[0] == key:
            names.append(str(pending[2]))
            pending = next(members, None)
        yield key, payload, names


# ---------------------------------------------------------------- writers

class JsonArrayStreamWriter:
    """``format=json``: a JSON array of row objects streamed to disk, byte-identical to ``write_json``."""

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str], *,
                 work_dir: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self.rows_written = 0
        fd, self._tmp = atomic_temp(self.path, work_dir)
        self._stream: IO[str] | None = os.fdopen(fd, "w", encoding="utf-8", newline="")

    def write_row(self, row: dict) -> None:
        if self._stream is None:
            raise RuntimeError("JsonArrayStreamWriter is closed")
        obj = dict(zip(self.columns, format_row(self.columns, row), strict=True))
        text = json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False)
        self._stream.write(("[\n" if self.rows_written == 0 else ",\n") + "\n".join("  " + line
                                                                                   for line in text.split("\n")))
        self.rows_written += 1

    def commit(self) -> int:
        if self._stream is None:
            raise RuntimeError("JsonArrayStreamWriter is closed")
        self._stream.write("\n]\n" if self.rows_written else "[]\n")
        self._stream.flush()
        os.fsync(self._stream.fileno())
        self._stream.close()
        self._stream = None
        os.replace(self._tmp, self.path)
        return self.rows_written

    def abort(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> JsonArrayStreamWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def mask_row(row: Mapping[str, Any], *, hashed: bool) -> dict[str, Any]:
    """A row fit for XCom and summary.json: email reduced to its first letter and domain, names to initials."""
    out = dict(row)
    email = str(out.get("Email") or "")
    if email and not hashed:
        local, _, domain = email.partition("@")
        out["Email"] = f"{local[:1]}***@{domain}" if domain else "***"
    for column in ("First Name", "Last Name"):
        name = str(out.get(column) or "")
        out[column] = f"{name[:1]}." if name else ""
    return out


# ---------------------------------------------------------------- the export

def export_audience(client: KlaviyoClient, plan: Mapping[str, Any], folder: Path, *,
                    hash_key: bytes | None, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> dict[str, Any]:
    """Walk lists, stream profiles, write ``subscribers.csv``/``.json`` ordered by Profile ID.

    Returns counts, the file path, masked preview rows and timing — never the audience itself.
    The row budget is checked while profiles arrive, so a breach fails before the final file exists.
    """
    request = SyncRequest.from_dict(plan["request"])
    updated_after = plan.get("updated_since") if request.audienceMode == "incremental" else None
    warnings: list[str] = []
    if request.hashEmails and not hash_key:
        warnings.append(UNKEYED_HASH_WARNING)
    timings: dict[str, float] = {}
    with WorkDir(folder, "audience") as work:
        work_dir = work.path
        lists = sorted(client.get_lists(), key=lambda r: str(r.get("id")))
        names = catalog_core.list_names(lists)
        members = RunSorter(work_dir, "members", chunk_rows * 4)
        stop = threading.Event()

        def walk_lists() -> None:
            """Membership pairs of every list (its own rate-limit bucket, so it overlaps the profile stream)."""
            started = time.monotonic()
            for resource in lists:
                list_id = str(resource.get("id"))
                for ids in client.iter_list_profile_ids(list_id):
                    if stop.is_set():
                        return
                    for profile_id in ids:
                        members.add(profile_id, names.get(list_id) or list_id)
            timings["lists_seconds"] = round(time.monotonic() - started, 3)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audience-lists") as pool:
            walking = pool.submit(walk_lists)
            try:
                started = time.monotonic()
                profiles = RunSorter(work_dir, "profiles", chunk_rows)
                pages = 0
                params = profile_query_params(updated_after=updated_after, drop_names=request.dropNames)
                for doc in client.iter_pages(PROFILES_PATH, params):
                    pages += 1
                    for profile in doc.get("data") or []:
                        row = profile_row(profile, (), hash_emails=request.hashEmails, hash_key=hash_key,
                                          drop_names=request.dropNames)
                        profiles.add(row["Profile ID"], format_row(ROW_COLUMNS, row))
                    check_budget(profiles.count, request.rowBudget, what="profiles", advice=BUDGET_ADVICE)
                    if walking.done() and walking.exception() is not None:
                        break  # the list walk failed: stop paging, its error is raised below
                profile_seconds = time.monotonic() - started
                timings["profiles_seconds"] = round(profile_seconds, 3)
                walking.result()
            finally:
                stop.set()  # any exit (SIGTERM included) stops the walker before its work dir is removed

        started = time.monotonic()
        data_path = folder / ("subscribers.csv" if request.format == "csv" else "subscribers.json")
        writer_cls = (partial(CsvStreamWriter, escape_formulas=request.escapeFormulas) if request.format == "csv"
                      else JsonArrayStreamWriter)
        head: list[dict[str, Any]] = []
        with writer_cls(data_path, SUBSCRIBERS_COLUMNS, work_dir=work_dir) as writer:
            for _key, cells, list_names in join_lists(latest_per_key(profiles.merged()), members.merged()):
                row = dict(zip(ROW_COLUMNS, cells, strict=True))
                row["Lists"] = ";".join(sorted(set(list_names)))
                writer.write_row(row)
                if len(head) < 5:
                    head.append(mask_row(row, hashed=request.hashEmails))
        timings["write_seconds"] = round(time.monotonic() - started, 3)

    duplicates = profiles.count - writer.rows_written
    if duplicates:
        warnings.append(f"{duplicates} profile(s) came twice from the API; kept the last copy of each.")
    stats = {
        "profiles": writer.rows_written,
        "profile_pages": pages,
        "pages_per_second": round(pages / profile_seconds, 2) if profile_seconds > 0 else None,
        "lists": len(lists),
        "list_memberships": members.count,
        "sort_runs": len(profiles.runs),
        "max_rows_in_memory": max(profiles.max_buffered, members.max_buffered),
        **timings,
    }
    log.info("Exported %d profiles (%d pages, %s pages/s) with %d list memberships to %s",
             stats["profiles"], pages, stats["pages_per_second"], members.count, data_path)
    for warning in warnings:
        log.warning(warning)
    return {
        "rows": writer.rows_written,
        "data_path": str(data_path),
        "folder": str(folder),
        "head": head,
        "stats": stats,
        "warnings": warnings,
        "hash": {"hashEmails": request.hashEmails, "keyed": bool(request.hashEmails and hash_key)},
    }


def write_audience_summary(plan: Mapping[str, Any], export: Mapping[str, Any]) -> dict[str, Any]:
    """The summary document (same shape as the other syncs); written to summary.json next to the data."""
    request = SyncRequest.from_dict(plan["request"])
    folder = Path(export["folder"])
    head = list(export.get("head") or [])
    warnings = list(dict.fromkeys([*plan.get("warnings", []), *export.get("warnings", [])]))
    diagnostics = {
        **base_diagnostics(client_diagnostics([plan, export]), warnings),
        "export": dict(export.get("stats") or {}),
        "privacy": {**dict(export.get("hash") or {}), "dropNames": request.dropNames,
                    "sampleMasked": True, "retentionHours": settings.pii_retention_hours()},
    }
    output = {
        "mode": request.mode,
        "rows": export["rows"],
        "days": None,
        "profiles": export["rows"],
        "audienceMode": request.audienceMode,
        "updatedSince": plan.get("updated_since") if request.audienceMode == "incremental" else None,
        "window": None,
        "sample": sample(SUBSCRIBERS_COLUMNS, head, n=5),
        "csvPreview": csv_text(SUBSCRIBERS_COLUMNS, head[:5], escape_formulas=request.escapeFormulas),
        "diagnostics": diagnostics,
        "files": {"data": export["data_path"], "summary": str(folder / "summary.json")},
    }
    write_json(folder / "summary.json", output)
    return output


# ---------------------------------------------------------------- PII retention

def _runs_root(home: Path | None = None) -> Path:
    return ((settings.flowsync_home() if home is None else Path(home)) / "runs").resolve()


def _inside_runs(path: Path, home: Path | None = None) -> bool:
    root = _runs_root(home)
    resolved = path.resolve()
    return resolved != root and root in resolved.parents


def purge_expired_run_folders(dag_folder: Path, retention_hours: float, *, now: float | None = None,
                              home: Path | None = None) -> list[str]:
    """Remove the uploaded run folders under ``dag_folder`` whose upload is older than the retention."""
    now = time.time() if now is None else now
    removed: list[str] = []
    if not dag_folder.is_dir() or not _inside_runs(dag_folder, home):
        return removed
    for marker in sorted(dag_folder.rglob(UPLOADED_MARKER)):
        try:
            uploaded_at = float(marker.read_text().strip() or "0")
        except (OSError, ValueError):
            continue
        run_dir = marker.parent
        if now - uploaded_at >= retention_hours * 3600 and _inside_runs(run_dir, home):
            shutil.rmtree(run_dir, ignore_errors=True)
            removed.append(str(run_dir))
    return removed


def cleanup_run_folder(folder: str | os.PathLike[str], retention_hours: float | None = None, *,
                       now: float | None = None, home: Path | None = None) -> dict[str, Any]:
    """Call after a successful upload: mark ``folder`` uploaded, then remove every expired PII run folder.

    With the default retention 0 the folder itself goes at once; with N hours it stays N hours and a
    later run's cleanup removes it. Only folders inside ``<home>/runs`` are ever touched (``home``:
    ``settings.flowsync_home()``); ``retention_hours`` defaults to ``settings.pii_retention_hours()``.
    """
    path = Path(folder)
    if not _inside_runs(path, home):
        raise ParamError(f"refusing to clean {path}: it is not a run folder under {_runs_root(home)}.")
    hours = settings.pii_retention_hours() if retention_hours is None else float(retention_hours)
    now = time.time() if now is None else now
    if path.is_dir():
        (path / UPLOADED_MARKER).write_text(f"{now:.3f}\n")
    removed: list[str] = []
    if hours <= 0 and path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path.resolve()))
    runs_root = _runs_root(home)
    dag_folder = runs_root / path.resolve().relative_to(runs_root).parts[0]
    removed += purge_expired_run_folders(dag_folder, hours, now=now, home=home)
    return {"removed": removed, "kept": path.is_dir(), "retentionHours": hours}
