"""The state lock of a PostgreSQL state: a session-level advisory lock.

The lock belongs to one database connection that the holder keeps open from acquire to
release. When the holder dies for any reason, including SIGKILL, the kernel closes its
socket, the server ends the session and the lock is gone: as with `flock`, there is
never a stale lock to clean up. A second fleetctl, on this machine or another, is
refused within `wait_s` with exit 8.

Who holds it is written to a small table, `fleetctl_lock_holder`, keyed by the holder's
server-side backend pid; a refused process joins it with `pg_locks`, so it names only
the live holder, never the row a killed one left behind (those rows are swept by the
next holder). The table is not part of the migrated schema: the lock works before the
store has ever opened the database, and `state migrate` does not copy it.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from typing import Any

from fleetctl.errors import LockedError
from fleetctl.state.paths import DatabaseURL
from fleetctl.state.pg import FLEET_LOCK_KEY, connect, state_error

POLL_S = 0.05
HOLDER_TABLE = "fleetctl_lock_holder"
_SETUP_KEY = 0x666C656574633C53  # serialises the CREATE TABLE of two first-ever lockers

_CREATE = f"""
CREATE TABLE IF NOT EXISTS {HOLDER_TABLE} (
    backend_pid INTEGER PRIMARY KEY,
    pid         INTEGER NOT NULL,
    host        TEXT    NOT NULL,
    command     TEXT    NOT NULL,
    started_at  TEXT    NOT NULL
)
"""

# pg_locks shows a bigint advisory key as classid (high 32 bits), objid (low), objsubid 1.
_HOLDER = f"""
SELECT h.pid, h.host, h.command, h.started_at
FROM pg_locks l JOIN {HOLDER_TABLE} h ON h.backend_pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::bigint = %s AND l.objid::bigint = %s
"""


class AdvisoryLock:
    def __init__(self, url: DatabaseURL, command: str, wait_s: float) -> None:
        self.url = url
        self.command = command
        self.wait_s = wait_s
        self._conn: Any = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def acquire(self) -> None:
        import psycopg

        conn = connect(self.url, autocommit=True)
        try:
            self._setup(conn)
            self._lock(conn)
            self._write_holder(conn)
        except psycopg.Error as exc:
            conn.close()
            raise (state_error(self.url, exc) or exc) from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @staticmethod
    def _setup(conn: Any) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_KEY,))
            conn.execute(_CREATE)

    def _lock(self, conn: Any) -> None:
        deadline = time.monotonic() + self.wait_s
        while True:
            if conn.execute("SELECT pg_try_advisory_lock(%s)", (FLEET_LOCK_KEY,)).fetchone()[0]:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockedError(self._refusal(conn))
            time.sleep(min(POLL_S, remaining))

    def _refusal(self, conn: Any) -> str:
        high, low = (FLEET_LOCK_KEY >> 32) & 0xFFFFFFFF, FLEET_LOCK_KEY & 0xFFFFFFFF
        row = None
        for _ in range(5):  # the holder writes its row just after locking
            row = conn.execute(_HOLDER, (high, low)).fetchone()
            if row is not None:
                break
            time.sleep(0.02)
        pid, host, command, started = row or ("?", None, "unknown command", "an unknown time")
        where = f" on {host}" if host and host != socket.gethostname() else ""
        return (
            f"state {self.url} is locked by pid {pid}{where} ({command}) since {started}; "
            "wait for it to finish and retry (the lock is released as soon as that process exits)"
        )

    def _write_holder(self, conn: Any) -> None:
        started = datetime.now(UTC).isoformat(timespec="seconds")
        with conn.transaction():
            # Rows of holders whose sessions have ended (killed) go first.
            conn.execute(
                f"DELETE FROM {HOLDER_TABLE} WHERE backend_pid NOT IN (SELECT pid FROM pg_stat_activity)"
            )
            conn.execute(
                f"INSERT INTO {HOLDER_TABLE} (backend_pid, pid, host, command, started_at) "
                "VALUES (pg_backend_pid(), %s, %s, %s, %s) ON CONFLICT (backend_pid) DO UPDATE SET "
                "pid = EXCLUDED.pid, host = EXCLUDED.host, command = EXCLUDED.command, started_at = EXCLUDED.started_at",
                (os.getpid(), socket.gethostname(), self.command, started),
            )

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            # The row first, while still held, so a later refusal never names a finished holder.
            conn.execute(f"DELETE FROM {HOLDER_TABLE} WHERE backend_pid = pg_backend_pid()")
            conn.execute("SELECT pg_advisory_unlock(%s)", (FLEET_LOCK_KEY,))
        except Exception:  # noqa: BLE001 (closing the session below releases it anyway)
            pass
        finally:
            conn.close()
