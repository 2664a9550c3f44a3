"""The state lock, with real processes on both sides."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from fleetctl.errors import ExitCode, LockedError
from fleetctl.state.lock import StateLock, lock_path_for, read_holder

REPO_ROOT = Path(__file__).resolve().parents[2]

_HOLDER = """
import sys, time
from fleetctl.state.lock import StateLock
with StateLock(sys.argv[1], sys.argv[2]):
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state" / "fleetctl.db"


@pytest.fixture
def holder(state: Path) -> Iterator[subprocess.Popen[str]]:
    """A separate process holding the lock as `apply chat-llm@v3`."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(state), "apply chat-llm@v3"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_holder_info_written_and_file_private(state: Path) -> None:
    with StateLock(state, "apply") as lock:
        assert lock.held
        info = read_holder(lock_path_for(state))
        assert info is not None
        assert info["pid"] == os.getpid() and info["command"] == "apply" and info["started_at"]
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600
    assert not lock.held
    # Kept on release: removing it would race with the next process to lock it.
    assert lock.path.exists()


def test_another_process_is_refused_within_a_second(state: Path, holder: subprocess.Popen[str]) -> None:
    t0 = time.monotonic()
    with pytest.raises(LockedError) as info:
        with StateLock(state, "down"):
            pytest.fail("acquired a lock held by another process")
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0
    message = str(info.value)
    assert f"pid {holder.pid}" in message
    assert "(apply chat-llm@v3)" in message
    assert str(state) in message
    assert info.value.exit_code is ExitCode.LOCKED


def test_killed_holder_leaves_lock_free(state: Path, holder: subprocess.Popen[str]) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    t0 = time.monotonic()
    with StateLock(state, "apply", wait_s=0) as lock:
        assert lock.held
        info = read_holder(lock.path)
        assert info is not None and info["pid"] == os.getpid()
    assert time.monotonic() - t0 < 0.5


def test_second_lock_in_same_process_is_refused(state: Path) -> None:
    with StateLock(state, "apply"):
        with pytest.raises(LockedError, match=f"pid {os.getpid()} \\(apply\\)"):
            StateLock(state, "rollback", wait_s=0).acquire()


def test_waits_for_a_holder_that_finishes_soon(state: Path) -> None:
    first = StateLock(state, "apply")
    first.acquire()
    timer = threading.Timer(0.1, first.release)
    timer.start()
    try:
        with StateLock(state, "down", wait_s=2) as second:
            assert second.held
    finally:
        timer.cancel()
        first.release()


def test_release_is_idempotent_and_clears_holder(state: Path) -> None:
    lock = StateLock(state, "apply")
    lock.acquire()
    lock.release()
    lock.release()
    assert lock.path.read_text() == ""
    with StateLock(state, "apply again"):
        assert json.loads(lock.path.read_text())["command"] == "apply again"
