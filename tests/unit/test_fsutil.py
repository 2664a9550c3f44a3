"""Atomic writes: a reader sees the old file or the new one, never part of one; the file
keeps its permissions; a failed write leaves the old file and no temporary behind."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fleetctl import fsutil
from fleetctl.fsutil import atomic_write_bytes, atomic_write_text

SIZE = 4 << 20  # large enough that one write takes many system calls


def test_writes_the_content_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "plan.json"
    atomic_write_text(target, "{}\n")
    assert target.read_text() == "{}\n"
    atomic_write_bytes(target, b"\x00\xff")
    assert target.read_bytes() == b"\x00\xff"
    assert os.listdir(target.parent) == ["plan.json"]


def test_a_concurrent_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "fleetctl.prom"
    versions = [bytes([65 + i]) * SIZE for i in range(4)]
    atomic_write_bytes(target, versions[0])
    seen: list[bytes] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(target.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(1, 25):
            atomic_write_bytes(target, versions[i % len(versions)])
    finally:
        stop.set()
        reader.join()
    assert seen
    assert all(data in versions for data in seen), {len(d) for d in seen}


def test_a_process_killed_mid_write_leaves_the_old_or_the_new_file(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    old, new = b"o" * SIZE, b"n" * SIZE
    atomic_write_bytes(target, old)
    # The writer rewrites the file for as long as it lives; it dies by SIGKILL, mid-write
    # most of the time (a write of SIZE bytes takes longer than the loop's rest).
    code = (
        "import sys\n"
        "from fleetctl.fsutil import atomic_write_bytes\n"
        f"new = b'n' * {SIZE}\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    atomic_write_bytes(sys.argv[1], new)\n"
    )
    for delay in (0.05, 0.13, 0.21):
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert target.read_bytes() in (old, new)
    # What a killed writer can leave is a hidden temporary, never a half-written target.
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")} == {"report.html"}


def test_an_existing_files_permissions_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    target.write_text("old")
    target.chmod(0o600)
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    target.chmod(0o640)
    atomic_write_text(target, "newer")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_a_new_file_gets_the_umask_mode_and_mode_overrides(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "new.json", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o640
    atomic_write_text(tmp_path / "new.json", "y", mode=0o600)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "fleet.schema.json"
    target.write_text("old")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(target, "new" * 1000)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["fleet.schema.json"]


def test_a_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    real = tmp_path / "real.prom"
    real.write_text("old")
    link = tmp_path / "link.prom"
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink()
    assert real.read_text() == "new"


def test_a_rename_that_fails_leaves_the_target_and_no_temporary(tmp_path: Path) -> None:
    # A directory where the file should go: the rename is refused after the data is written.
    target = tmp_path / "report.html"
    target.mkdir()
    (target / "keep").write_text("old")
    with pytest.raises(IsADirectoryError):
        atomic_write_text(target, "new")
    assert (target / "keep").read_text() == "old"
    assert os.listdir(tmp_path) == ["report.html"]
