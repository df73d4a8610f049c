"""A folder-per-bucket storage backend: the embedded default for ``make demo`` and for tests.

Writes are atomic (temp file + ``os.replace`` in the same folder), so a reader never sees half a
CSV and a crashed task leaves either the old object or the new one.
"""

from __future__ import annotations

import builtins
import os
import tempfile
from pathlib import Path

from flowsync_provider.storage.base import (
    BucketNotFound,
    ObjectExists,
    ObjectNotFound,
    StorageBackend,
    StorageError,
    normalize_bucket,
    normalize_key,
    normalize_prefix,
    read_payload,
)

__all__ = ["LocalStorage"]


class LocalStorage(StorageBackend):
    """Objects as files under ``root/<bucket>/<key>``.

    ``create_buckets=True`` (the demo default) makes a bucket folder on first upload; with
    ``False`` a missing bucket folder is :class:`BucketNotFound`, mirroring Supabase.
    """

    def __init__(self, root: Path | str, *, create_buckets: bool = True) -> None:
        self.root = Path(root).expanduser().resolve()
        self.create_buckets = create_buckets

    def describe(self) -> str:
        return f"LocalStorage({self.root})"

    def create_bucket(self, bucket: str) -> None:
        """Create the bucket folder (idempotent)."""
        (self.root / normalize_bucket(bucket)).mkdir(parents=True, exist_ok=True)

    def _bucket_dir(self, bucket: str, *, for_write: bool = False) -> Path:
        folder = self.root / normalize_bucket(bucket)
        if folder.is_dir():
            return folder
        if for_write and self.create_buckets:
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        raise BucketNotFound(
            f"Storage failed: bucket '{bucket}' not found under {self.root} "
            "(create the folder or set the bucket env var to an existing bucket)."
        )

    def _file(self, bucket: str, path: str, *, for_write: bool = False) -> tuple[Path, str]:
        key = normalize_key(path)
        folder = self._bucket_dir(bucket, for_write=for_write)
        target = folder.joinpath(*key.split("/"))
        if folder != target and folder not in target.parents:  # defence in depth after normalize_key
            raise StorageError(f"Object path {path!r} escapes bucket '{bucket}'.")
        return target, key

    def upload(
        self,
        bucket: str,
        path: str,
        data: bytes | Path,
        content_type: str = "text/csv",
        *,
        upsert: bool = True,
    ) -> str:
        payload = read_payload(data)
        target, key = self._file(bucket, path, for_write=True)
        if target.is_dir():
            raise StorageError(f"Upload failed: '{bucket}/{key}' is a folder, not an object.")
        if not upsert and target.exists():
            raise ObjectExists(
                f"Upload failed: '{bucket}/{key}' already exists (upload with upsert to replace it)."
            )
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp_name, target)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(
                f"Upload failed: cannot write '{bucket}/{key}' under {self.root}: {exc.strerror or exc}."
            ) from exc
        return f"{normalize_bucket(bucket)}/{key}"

    def download(self, bucket: str, path: str) -> bytes:
        target, key = self._file(bucket, path)
        if not target.is_file():
            raise ObjectNotFound(f"Download failed: object '{bucket}/{key}' not found.")
        return target.read_bytes()

    def list(self, bucket: str, prefix: str = "") -> builtins.list[str]:
        folder = self._bucket_dir(bucket)
        start = normalize_prefix(prefix)
        base = folder.joinpath(*start.split("/")) if start else folder
        if not base.is_dir():
            return []
        keys = [
            file.relative_to(folder).as_posix()
            for file in base.rglob("*")
            if file.is_file() and not (file.name.startswith(".") and file.name.endswith(".tmp"))
        ]
        return sorted(keys)

    def exists(self, bucket: str, path: str) -> bool:
        target, _ = self._file(bucket, path)
        return target.is_file()

    def list_buckets(self) -> builtins.list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())
