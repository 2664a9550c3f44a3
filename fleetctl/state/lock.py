"""One fleet-changing fleetctl at a time, per state file.

The lock is `flock(2)` on `<state>.lock`: the kernel drops it when its holder exits for
any reason, including SIGKILL, so there is never a stale lock to clean up. The file
itself stays; it only carries the holder's pid, command and start time so a refused
process can say who holds it. Deleting it on release would let a newcomer lock a fresh
inode while a waiter still locks the old one, and both would proceed.

A PostgreSQL state is locked with a session-level advisory lock instead (`pg_lock.py`),
with the same refusal (exit 8, the holder's pid, command and start time).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from fleetctl.errors import LockedError
from fleetctl.state.faults import os_state_error as _medium_error
from fleetctl.state.paths import DatabaseURL, StateLocation

DEFAULT_WAIT_S = 0.5
POLL_S = 0.05
LOCK_MODE = 0o600
_HOLDER_MAX_BYTES = 64 * 1024


def lock_path_for(state_path: Path) -> Path:
    state_path = Path(state_path)
    return state_path.with_name(state_path.name + ".lock")


def read_holder(lock_path: Path) -> dict[str, Any] | None:
    """The holder info written by the current (or last) holder, if readable."""
    try:
        with open(lock_path, "rb") as fh:
            raw = fh.read(_HOLDER_MAX_BYTES)
    except OSError:
        return None
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) else None


class StateLock:
    """Exclusive lock on a state file, held from `__enter__` to `__exit__`.

    Locks belong to the open file, not the process: a second `StateLock` on the same
    state in the same process is refused too.
    """

    def __init__(
        self, state_path: StateLocation, command: str, *, wait_s: float = DEFAULT_WAIT_S
    ) -> None:
        self.command = command
        self.wait_s = wait_s
        self._fd: int | None = None
        self._advisory = None
        if isinstance(state_path, DatabaseURL):
            from fleetctl.state.pg_lock import AdvisoryLock

            self.state_path: StateLocation = state_path
            self._advisory = AdvisoryLock(state_path, command, wait_s)
            return
        self.state_path = Path(state_path)
        self.path = lock_path_for(self.state_path)

    @property
    def held(self) -> bool:
        return self._advisory.held if self._advisory is not None else self._fd is not None

    def acquire(self) -> None:
        if self._advisory is not None:
            if self._advisory.held:
                raise RuntimeError(f"{self.state_path} is already held by this StateLock")
            self._advisory.acquire()
            return
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this StateLock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_CLOEXEC: a child process (ssh, docker CLI) must not inherit the descriptor,
            # or it would keep the lock alive after this process dies.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, LOCK_MODE)
        except OSError as exc:
            raise _medium_error(self.path, exc) from None
        try:
            self._lock(fd)
            self._write_holder(fd)
        except OSError as exc:
            os.close(fd)
            raise _medium_error(self.path, exc) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _lock(self, fd: int) -> None:
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockedError(self._refusal())
            time.sleep(min(POLL_S, remaining))

    def _refusal(self) -> str:
        # The holder writes its info just after locking; give a brand-new holder a moment.
        info = read_holder(self.path)
        for _ in range(5):
            if info is not None:
                break
            time.sleep(0.02)
            info = read_holder(self.path)
        info = info or {}
        pid = info.get("pid", "?")
        command = info.get("command", "unknown command")
        started = info.get("started_at", "an unknown time")
        host = info.get("host")
        where = f" on {host}" if host and host != socket.gethostname() else ""
        return (
            f"state {self.state_path} is locked by pid {pid}{where} ({command}) since {started}; "
            "wait for it to finish and retry (the lock is released as soon as that process exits)"
        )

    def _write_holder(self, fd: int) -> None:
        info = {
            "pid": os.getpid(),
            "command": self.command,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
        }
        data = (json.dumps(info) + "\n").encode("utf-8")
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        # A file made by an older or foreign run may be wider than 0600.
        try:
            os.fchmod(fd, LOCK_MODE)
        except PermissionError:
            pass

    def release(self) -> None:
        if self._advisory is not None:
            self._advisory.release()
            return
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            # Cleared while still held, so a later refusal never names a finished holder.
            os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
