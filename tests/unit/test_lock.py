"""The state lock, with real processes on both sides, on SQLite (flock) and PostgreSQL
(a session advisory lock on a real server)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetctl.errors import ExitCode, LockedError
from fleetctl.state.lock import StateLock, lock_path_for, read_holder
from fleetctl.state.paths import DatabaseURL, StateLocation

REPO_ROOT = Path(__file__).resolve().parents[2]

_HOLDER = """
import sys, time
from fleetctl.state.lock import StateLock
from fleetctl.state.paths import parse_state_location
with StateLock(parse_state_location(sys.argv[1]), sys.argv[2]):
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def state(state_location: StateLocation) -> StateLocation:
    """Every test here runs on both backends."""
    return state_location


def _holder_info(state: StateLocation) -> dict | None:
    """What the lock says about its holder, read as a refused process would."""
    if not isinstance(state, DatabaseURL):
        return read_holder(lock_path_for(state))
    from fleetctl.state.pg import connect

    with connect(state, autocommit=True) as conn:
        row = conn.execute("SELECT pid, command, started_at FROM fleetctl_lock_holder").fetchone()
    return None if row is None else {"pid": row[0], "command": row[1], "started_at": row[2]}


@pytest.fixture
def holder(state: StateLocation) -> Iterator[subprocess.Popen[str]]:
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


def test_holder_info_written_and_cleared(state: StateLocation) -> None:
    with StateLock(state, "apply") as lock:
        assert lock.held
        info = _holder_info(state)
        assert info is not None
        assert info["pid"] == os.getpid() and info["command"] == "apply" and info["started_at"]
        if not isinstance(state, DatabaseURL):
            assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600
    assert not lock.held
    if isinstance(state, DatabaseURL):
        assert _holder_info(state) is None
    else:
        # Kept on release: removing it would race with the next process to lock it.
        assert lock.path.exists()


def test_another_process_is_refused_within_a_second(
    state: StateLocation, holder: subprocess.Popen[str]
) -> None:
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


def test_killed_holder_leaves_lock_free(
    state: StateLocation, holder: subprocess.Popen[str]
) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    t0 = time.monotonic()
    # PostgreSQL ends the dead client's session when its socket closes: give it a moment.
    with StateLock(state, "apply", wait_s=0 if not isinstance(state, DatabaseURL) else 1.0) as lock:
        assert lock.held
        info = _holder_info(state)
        assert info is not None and info["pid"] == os.getpid()
    assert time.monotonic() - t0 < 1.0


def test_second_lock_in_same_process_is_refused(state: StateLocation) -> None:
    with StateLock(state, "apply"):
        with pytest.raises(LockedError, match=f"pid {os.getpid()} \\(apply\\)"):
            StateLock(state, "rollback", wait_s=0).acquire()


def test_waits_for_a_holder_that_finishes_soon(state: StateLocation) -> None:
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


def test_release_is_idempotent_and_clears_holder(state: StateLocation) -> None:
    lock = StateLock(state, "apply")
    lock.acquire()
    lock.release()
    lock.release()
    assert _holder_info(state) is None
    with StateLock(state, "apply again"):
        assert _holder_info(state)["command"] == "apply again"  # type: ignore[index]
        with pytest.raises(LockedError, match=r"\(apply again\)"):
            StateLock(state, "down", wait_s=0).acquire()


def test_a_killed_holders_row_is_never_named(postgres_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A SIGKILLed holder leaves its row; the next refusal names the live holder only."""
    from fleetctl.state.paths import parse_state_location

    state = parse_state_location(postgres_server.url(postgres_server.new_database()))
    first = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(state), "apply first"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert first.stdout is not None and first.stdout.readline().strip() == "locked"
    first.kill()
    first.wait(timeout=10)
    first.stdout.close()
    with StateLock(state, "apply second", wait_s=1.0):
        with pytest.raises(LockedError) as info:
            StateLock(state, "down", wait_s=0).acquire()
    assert "(apply second)" in str(info.value) and "apply first" not in str(info.value)
