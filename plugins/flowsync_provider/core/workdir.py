"""The one home of a run's scratch files: a locked per-run work directory, and the sweep of dead ones.

Raw PII (audience sort runs, a half-written ``subscribers.csv``) must not outlive the run that made it.

- ``WorkDir`` creates ``.work-<label>-XXXX`` inside the run folder (same filesystem as the outputs, so
  the atomic ``os.replace`` of a finished file still works), holds an exclusive ``flock`` on the
  directory for its whole life, and removes it on every exit Python sees: return, exception,
  deferral, and SIGTERM (turned into ``WorkTerminated`` so the stack unwinds through the cleanup).
- ``atomic_temp`` opens the temp file of an atomic write: inside the work dir when one is given, else
  ``.<name>.XXXX.tmp`` beside the target; either way the file itself is flocked while it is written.
- ``sweep_dead_workdirs`` removes work dirs and temp files whose lock it can take (non-blocking):
  their owner is dead (a SIGKILL or a lost worker runs no cleanup). Age proves nothing, so a live run's
  files, however old, are never touched. Only paths inside ``FLOWSYNC_HOME`` are swept; symlinks are
  never followed or removed.

Pure standard library (no Airflow import): the operators, bench and scripts share it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.summary import flowsync_home

log = logging.getLogger(__name__)

WORK_PREFIX = ".work-"
LEGACY_PREFIXES = (".audience-work-",)  # unlocked work dirs of earlier versions: always dead once found
TEMP_SUFFIX = ".tmp"
_CREATE_ATTEMPTS = 5


class WorkTerminated(SystemExit):
    """SIGTERM arrived while a work dir was open: unwind (cleanup runs), exit like SIGTERM would (143)."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def _try_lock(fd: int) -> bool:
    """Take LOCK_EX without waiting; False when another open file (a live owner) holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _same_inode(fd: int, path: Path) -> bool:
    """The locked fd still names ``path`` (a sweep may have removed it between create and lock)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _locked_mkdtemp(parent: Path, prefix: str) -> tuple[int, Path]:
    """mkdtemp + flock on the directory, retried if a sweep took the fresh (still unlocked) dir."""
    for _ in range(_CREATE_ATTEMPTS):
        path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        if _try_lock(fd) and _same_inode(fd, path):
            return fd, path
        os.close(fd)
    raise OSError(f"could not create a locked work directory in {parent}")


def atomic_temp(target: str | os.PathLike[str], work_dir: str | os.PathLike[str] | None = None,
                ) -> tuple[int, Path]:
    """A new, flocked temp file for an atomic write of ``target``: (fd, path), to ``os.replace`` later.

    Inside ``work_dir`` when given and on the target's filesystem, else beside the target as
    ``.<name>.XXXX.tmp``. The lock lives as long as the fd, so a sweep never removes a file being written.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = target.parent
    if work_dir is not None and os.stat(work_dir).st_dev == os.stat(folder).st_dev:
        folder = Path(work_dir)
    for _ in range(_CREATE_ATTEMPTS):
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
        if _try_lock(fd) and _same_inode(fd, Path(name)):
            return fd, Path(name)
        os.close(fd)
    raise OSError(f"could not create a locked temp file for {target}")


class WorkDir:
    """``with WorkDir(run_folder, "audience") as wd:`` — scratch files go in ``wd.path``; gone on exit.

    The directory is flocked for the whole ``with`` block; a sweep in another run leaves it alone.
    In the main thread SIGTERM raises ``WorkTerminated`` (after any previous handler, e.g. Airflow's
    ``on_kill``), so a terminated task still removes its PII; the previous handler is restored on exit.
    """

    def __init__(self, parent: str | os.PathLike[str], label: str = "run") -> None:
        self.parent = Path(parent)
        self.label = label
        self._path: Path | None = None
        self._fd: int | None = None
        self._previous_sigterm: Any = None
        self._sigterm_installed = False

    @property
    def path(self) -> Path:
        """The directory (only inside the ``with`` block)."""
        if self._path is None:
            raise RuntimeError("WorkDir is not open: use it as a context manager")
        return self._path

    def __enter__(self) -> WorkDir:
        self.parent.mkdir(parents=True, exist_ok=True)
        self._fd, self._path = _locked_mkdtemp(self.parent, f"{WORK_PREFIX}{self.label}-")
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
            self._sigterm_installed = True
        return self

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous_sigterm
        if previous is signal.SIG_IGN:
            return
        if callable(previous):
            previous(signum, frame)
        log.warning("SIGTERM: removing the work directory %s before exiting", self._path)
        raise WorkTerminated()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Remove the directory (still holding the lock), then release it; idempotent."""
        if self._sigterm_installed:
            previous = self._previous_sigterm
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
            self._sigterm_installed = False
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)
            if self._path.exists():  # a straggling writer thread added a file mid-removal
                shutil.rmtree(self._path, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _is_work_dir(name: str) -> bool:
    return name.startswith(WORK_PREFIX) or name.startswith(LEGACY_PREFIXES)


def _is_temp_file(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _remove_if_dead(path: Path, *, is_dir: bool) -> int | None:
    """Remove ``path`` when its lock can be taken (owner dead); its size in bytes, or None if kept."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if is_dir else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # gone meanwhile, or a symlink (never followed)
        return None
    try:
        if not _try_lock(fd) or not _same_inode(fd, path):
            return None
        size = _size(path)
        if is_dir:
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        return size
    finally:
        os.close(fd)


def sweep_dead_workdirs(root: str | os.PathLike[str] | None = None, *,
                        home: Path | None = None) -> dict[str, Any]:
    """Remove the work dirs and atomic-write temp files under ``root`` whose owner is dead.

    ``root`` defaults to ``<home>/runs`` and must lie inside ``home`` (``settings.flowsync_home()``). A live run holds
    its lock, so its files survive whatever their age. Returns what was removed, how many were kept
    because live, the bytes freed and the sweep's duration.
    """
    started = time.monotonic()
    home = (flowsync_home() if home is None else Path(home)).resolve()
    base = (home / "runs") if root is None else Path(root)
    resolved = base.resolve()
    if resolved != home and home not in resolved.parents:
        raise ParamError(f"refusing to sweep {base}: it is not inside FLOWSYNC_HOME ({home}).")
    removed: list[str] = []
    live = 0
    freed = 0
    scanned = 0
    for dirpath, dirnames, filenames in os.walk(resolved):
        folder = Path(dirpath)
        scanned += 1
        work_dirs = [d for d in dirnames if _is_work_dir(d)]
        for name in work_dirs:
            dirnames.remove(name)  # never descend: a work dir goes whole or not at all
        candidates = [(name, True) for name in work_dirs] + [(n, False) for n in filenames if _is_temp_file(n)]
        for name, is_dir in candidates:
            path = folder / name
            # a temp file may vanish under us (its writer committed); a work dir's removal errors surface
            with contextlib.nullcontext() if is_dir else contextlib.suppress(OSError):
                if path.is_symlink():
                    continue
                size = _remove_if_dead(path, is_dir=is_dir)
                if size is None:
                    live += path.exists()
                else:
                    removed.append(str(path))
                    freed += size
    seconds = round(time.monotonic() - started, 4)
    if removed:
        log.warning("Removed %d work dir(s)/temp file(s) of dead runs (%d bytes, possibly PII): %s",
                    len(removed), freed, ", ".join(removed))
    return {"removed": removed, "live": live, "bytes": freed, "folders_scanned": scanned, "seconds": seconds}
