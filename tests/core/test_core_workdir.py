"""core.workdir: a live run's work files survive the sweep (its flock), a dead run's go, nothing outside home.

"Live" is a real second process holding the lock; "dead" is a process that was SIGKILLed (no cleanup ran).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.workdir import WorkDir, atomic_temp, sweep_dead_workdirs

HOLDER = """
import os, sys
from pathlib import Path
from flowsync_provider.core.workdir import WorkDir, atomic_temp
folder = Path(sys.argv[1])
with WorkDir(folder, "audience") as work:
    (work.path / "profiles.00000.jsonl").write_text("ada.rossi.0@example.com\\n")
    fd, tmp = atomic_temp(folder / "flows.csv")  # a loose temp file beside its target, also locked
    os.write(fd, b"partial")
    print(work.path, tmp, flush=True)
    sys.stdin.read()  # hold both locks until the parent closes stdin or kills us
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "home"
    monkeypatch.setenv("FLOWSYNC_HOME", str(root))
    return root


def _run_folder(home: Path, name: str = "run1") -> Path:
    folder = home / "runs" / "klaviyo_audience_sync" / "ACCT" / name
    folder.mkdir(parents=True)
    return folder


def _holder(folder: Path) -> tuple[subprocess.Popen, Path, Path]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    assert len(line) == 2, f"the holder process failed (exit {proc.wait()})"
    return proc, Path(line[0]), Path(line[1])


def test_a_live_process_keeps_its_work_dir_and_temp_file_then_a_kill_frees_them(home: Path) -> None:
    folder = _run_folder(home)
    proc, work, tmp = _holder(folder)
    try:
        outcome = sweep_dead_workdirs()
        assert work.is_dir() and (work / "profiles.00000.jsonl").exists() and tmp.exists()
        assert outcome["removed"] == [] and outcome["live"] == 2
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # the owner died without cleaning up: its locks died with it, so the next sweep removes both
    assert work.is_dir() and tmp.exists()
    outcome = sweep_dead_workdirs()
    assert not work.exists() and not tmp.exists()
    assert sorted(outcome["removed"]) == sorted([str(work), str(tmp)])
    assert outcome["bytes"] == len("ada.rossi.0@example.com\n") + len("partial")
    assert folder.is_dir()  # the run folder (dry-run outputs) stays


def test_unlocked_leftovers_are_removed_and_outputs_kept(home: Path) -> None:
    folder = _run_folder(home)
    legacy = folder / ".audience-work-abc123"  # what the unlocked pre-fix export left after a kill
    legacy.mkdir()
    (legacy / "profiles.00000.jsonl").write_text("leo.smith.1@example.com\n")
    dead = folder / ".work-audience-xyz"
    dead.mkdir()
    partial = folder / ".subscribers.csv.k2j3.tmp"
    partial.write_text("Profile ID,Email\n01ABC,leo.smith.1@example.com\n")
    (folder / "subscribers.csv").write_text("Profile ID,Email\n")
    (folder / "summary.json").write_text("{}\n")
    (folder / "notes.tmp").write_text("not a dotted temp file\n")
    outcome = sweep_dead_workdirs()
    assert not legacy.exists() and not dead.exists() and not partial.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["notes.tmp", "subscribers.csv", "summary.json"]
    assert len(outcome["removed"]) == 3 and outcome["live"] == 0


def test_paths_outside_flowsync_home_are_never_touched(home: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    dead_outside = outside / ".work-audience-out"
    dead_outside.mkdir(parents=True)
    (dead_outside / "profiles.00000.jsonl").write_text("x@example.com\n")
    loose_outside = outside / ".subscribers.csv.abc.tmp"
    loose_outside.write_text("x@example.com\n")
    with pytest.raises(ParamError, match="not inside FLOWSYNC_HOME"):
        sweep_dead_workdirs(outside)
    # symlinks inside home that point outside are neither followed nor removed
    folder = _run_folder(home)
    (folder / ".work-audience-link").symlink_to(dead_outside, target_is_directory=True)
    (folder / ".flows.csv.link.tmp").symlink_to(loose_outside)
    (folder / "escape").symlink_to(outside, target_is_directory=True)
    outcome = sweep_dead_workdirs()
    assert outcome["removed"] == []
    assert (dead_outside / "profiles.00000.jsonl").exists() and loose_outside.exists()
    assert (folder / ".work-audience-link").is_symlink() and (folder / ".flows.csv.link.tmp").is_symlink()


def test_work_dir_goes_on_return_and_on_exception(tmp_path: Path) -> None:
    with WorkDir(tmp_path, "audience") as work:
        (work.path / "a.jsonl").write_text("x")
    assert not work.path.exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="boom"), WorkDir(tmp_path, "audience") as work:
        (work.path / "a.jsonl").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


SIGTERMED = """
import os, signal, sys
from pathlib import Path
from flowsync_provider.core.workdir import WorkDir
signal.signal(signal.SIGTERM, lambda *_: print("on_kill", flush=True))  # stands in for Airflow's handler
with WorkDir(Path(sys.argv[1]), "audience") as work:
    (work.path / "profiles.00000.jsonl").write_text("ada.rossi.0@example.com\\n")
    print(work.path, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    sys.exit(3)  # never reached when SIGTERM unwinds
"""


def test_sigterm_runs_the_previous_handler_then_removes_the_work_dir(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", SIGTERMED, str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    lines = proc.stdout.split()
    assert lines[1:] == ["on_kill"], proc.stdout + proc.stderr
    assert proc.returncode == 128 + signal.SIGTERM
    assert not Path(lines[0]).exists() and list(tmp_path.iterdir()) == []


def test_atomic_temp_goes_in_the_work_dir_and_is_locked(tmp_path: Path) -> None:
    import fcntl

    with WorkDir(tmp_path, "audience") as work:
        fd, tmp = atomic_temp(tmp_path / "subscribers.csv", work.path)
        try:
            assert tmp.parent == work.path and tmp.name.startswith(".subscribers.csv.")
            other = os.open(tmp, os.O_RDONLY)
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.close(other)
        finally:
            os.close(fd)
