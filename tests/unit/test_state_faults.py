"""The state on a read-only or full disk: one line and exit 1, never a traceback.

Real faults, not simulated ones: a tmpfs of a few hundred KB mounted by the test (root),
filled until the kernel answers ENOSPC, or remounted read-only.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetctl.errors import ExitCode, StateError
from fleetctl.state.health_store import Event, HealthMemory, Memory
from fleetctl.state.lock import StateLock
from fleetctl.state.store import StateStore

REPO_ROOT = Path(__file__).resolve().parents[2]
FLEETCTL = str(Path(sys.executable).with_name("fleetctl"))
SEED = REPO_ROOT / "inventory" / "fleet.yaml"


@pytest.fixture
def small_disk() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = Path("/tmp") / f"fleetctl-disk-{uuid.uuid4().hex[:8]}"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=384k,mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        where.rmdir()


def _fill(disk: Path) -> None:
    """Write until the disk is full (ENOSPC); the last partial block stays written."""
    with open(disk / "filler", "wb", buffering=0) as fh:
        chunk = b"\0" * 4096
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    for small in (512, 64, 1):
        try:
            with open(disk / "filler", "ab", buffering=0) as fh:
                while True:
                    fh.write(b"\0" * small)
        except OSError:
            pass


def _read_only(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)


def _fleetctl(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FLEETCTL_STATE"}
    return subprocess.run(
        [FLEETCTL, *args], capture_output=True, text=True, timeout=60, env=env, cwd=REPO_ROOT
    )


def _one_line(done: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert needle in done.stderr, done.stderr


def _rollout(store: StateStore) -> int:
    return store.begin_rollout("apply", "inventory/fleet.yaml", "sha", {"actions": list(range(50))})


def test_a_full_disk_before_the_state_exists(small_disk: Path) -> None:
    _fill(small_disk)
    state = small_disk / "state" / "fleetctl.db"
    with pytest.raises(
        StateError, match="state .*fleetctl.db: .*(disk is full|No space left)"
    ) as info:
        StateStore(state).close()
    assert info.value.exit_code is ExitCode.ERROR
    # apply takes the lock first: refused there, before any host is contacted.
    _one_line(
        _fleetctl("apply", "-f", str(SEED), "--yes", "--state", str(state)),
        1,
        "No space left on device",
    )
    with pytest.raises(StateError):
        HealthMemory(state, "f").update(lambda old: ({}, [], None))


def test_a_disk_that_fills_while_the_state_is_open(small_disk: Path) -> None:
    state = small_disk / "fleetctl.db"
    with StateStore(state) as store:
        rid = _rollout(store)
        _fill(small_disk)
        with pytest.raises(StateError, match="disk is full"):
            for i in range(2000):  # rows until the database must grow a page
                store.record_step(
                    rid,
                    deployment="d@1",
                    replica=i,
                    host="h",
                    action="create",
                    container="c" * 200,
                    outcome="ok",
                    detail="x" * 500,
                )
        (small_disk / "filler").unlink()  # space again: the store works on, nothing half-written
        store.finish_rollout(rid, "failed", "disk was full")
        assert store.rollout(rid).outcome == "failed"  # type: ignore[union-attr]
    conn = __import__("sqlite3").connect(state)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def test_health_memory_on_a_full_disk(small_disk: Path) -> None:
    state = small_disk / "fleetctl.db"
    memory = HealthMemory(state, "f")
    memory.ensure()
    _fill(small_disk)
    now = time.time()
    many = {
        (f"d{i}@1", 0): Memory(verdict="failing", since=now, checked_at=now, reasons=("x" * 300,))
        for i in range(400)
    }
    with pytest.raises(StateError, match="disk is full|disk I/O error"):
        memory.update(
            lambda old: (
                many,
                [Event(now, "d@1", 0, "h", "verdict", "failing", "x" * 1500)] * 50,
                None,
            )
        )
    assert memory.read() == {}  # rolled back whole


def test_a_read_only_state(small_disk: Path) -> None:
    state = small_disk / "fleetctl.db"
    with StateStore(state) as store:
        store.finish_rollout(_rollout(store), "succeeded")
    with StateLock(state, "apply"):  # the lock file exists, as after any apply
        pass
    _read_only(small_disk)
    with pytest.raises(StateError, match="Read-only file system"):
        StateStore(state)
    with pytest.raises(StateError, match="Read-only file system"):
        StateLock(state, "apply").acquire()
    _one_line(
        _fleetctl("apply", "-f", str(SEED), "--yes", "--state", str(state)),
        1,
        "Read-only file system",
    )
    _one_line(_fleetctl("history", "--state", str(state)), 1, "Read-only file system")
    # Reading needs no write: plan reads the holds of a read-only state.
    plan = _fleetctl("plan", "--offline", "-f", str(SEED), "--state", str(state))
    assert plan.returncode == 0 and "Traceback" not in plan.stderr, plan.stderr
    with pytest.raises(StateError):
        HealthMemory(state, "f").update(lambda old: ({}, [], None))


def test_a_read_only_directory_for_a_new_state(small_disk: Path) -> None:
    _read_only(small_disk)
    state = small_disk / "state" / "fleetctl.db"
    _one_line(
        _fleetctl("apply", "-f", str(SEED), "--yes", "--state", str(state)),
        1,
        "Read-only file system",
    )
    _one_line(
        _fleetctl("release", "chat-llm", "-f", str(SEED), "--state", str(state)), 12, "has no hold"
    )


def test_an_unreachable_postgresql_state_is_one_line_not_a_hang() -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://fleet@127.0.0.1:{port}/fleet"
    t0 = time.monotonic()
    for args in (
        ("history", "--state", url),
        ("apply", "-f", str(SEED), "--yes", "--state", url),
        ("plan", "--offline", "-f", str(SEED), "--state", url),
    ):
        _one_line(_fleetctl(*args), 1, f"state {url}: cannot connect")
    assert time.monotonic() - t0 < 30
