"""Where the state database lives and how every connection to it is configured.

The database is one SQLite file shared by concurrent fleetctl processes (each holding
`StateLock` only while it changes the fleet) and by the worker threads of one apply.
WAL lets readers run beside the single writer; `busy_timeout` makes a second writer wait
instead of failing; `BEGIN IMMEDIATE` takes the write lock up front, because a deferred
transaction that later tries to write in WAL mode fails at once with SQLITE_BUSY, with
no retry from the busy handler.

A PostgreSQL state (`DatabaseURL`) gets its engine from `pg.py`; the rest of the store
is the same SQL on both. Failures of the medium (a read-only or full disk, a file that
cannot be opened, an unreachable server) become one-line `StateError`s here.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.pool import ConnectionPoolEntry

from fleetctl.errors import FleetctlError
from fleetctl.state.begin import BEGIN_DEFERRED, BEGIN_IMMEDIATE, BEGIN_OPTION
from fleetctl.state.faults import os_state_error, sqlite_state_error
from fleetctl.state.paths import (  # noqa: F401 (re-exported)
    DEFAULT_STATE_PATH,
    STATE_ENV,
    DatabaseURL,
    StateLocation,
    resolve_state_path,
)

BUSY_TIMEOUT_MS = 5000
FILE_MODE = 0o600


SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")


def _tighten(path: Path) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    if stat.S_IMODE(st.st_mode) != FILE_MODE:
        try:
            os.chmod(path, FILE_MODE)
        except PermissionError:
            # Owned by another user: we can still use it if SQLite can, and refusing to
            # open over a mode we cannot change would only block the operator.
            pass


def ensure_private_file(path: Path) -> None:
    """Create `path` (and its directory) with mode 0600 if missing; tighten it if not.

    Done before SQLite opens the file because SQLite would create it with the umask's
    mode, and later creates its -wal/-shm files with the main file's mode.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        raise os_state_error(path, exc) from None
    os.close(fd)
    _tighten(path)


def secure_sidecars(path: StateLocation) -> None:
    """Tighten SQLite's -wal/-shm files, which an older or foreign writer may have left 0644."""
    if isinstance(path, DatabaseURL):
        return
    _tighten(path)
    for suffix in SIDECAR_SUFFIXES:
        _tighten(path.with_name(path.name + suffix))


def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
    # Turn off pysqlite's own transaction handling (it would issue a plain deferred
    # BEGIN, and COMMIT before DDL); `_on_begin` issues BEGIN itself.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    try:
        # busy_timeout first, so switching to WAL waits for a concurrent opener too.
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        mode = _switch_to_wal(cur)
        if mode != "wal":
            raise FleetctlError(
                f"state database cannot use WAL journaling (got {mode!r}); "
                f"put it on a local filesystem (set --state or ${STATE_ENV})"
            )
        # FULL: a rollout record must survive a power cut once apply reports it.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
    finally:
        cur.close()


def _switch_to_wal(cur: sqlite3.Cursor) -> str:
    """`PRAGMA journal_mode=WAL`, retried while another first opener holds the file.

    The switch upgrades a shared lock to an exclusive one; when two connections do that at
    once SQLite answers SQLITE_BUSY at once instead of calling the busy handler (waiting
    would deadlock), so the wait is done here, up to the same busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return str(cur.fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(BEGIN_OPTION, BEGIN_IMMEDIATE)
    if mode not in (BEGIN_IMMEDIATE, BEGIN_DEFERRED):
        raise ValueError(f"unknown BEGIN mode {mode!r}")
    conn.exec_driver_sql(f"BEGIN {mode}")


def as_location(location: StateLocation | str) -> StateLocation:
    return location if isinstance(location, DatabaseURL) else Path(location)


def open_engine(path: StateLocation, **engine_kwargs: Any) -> Engine:
    """An engine on the state file with the pragmas and BEGIN IMMEDIATE on every connection.

    Transactions are IMMEDIATE unless the connection carries
    `execution_options(fleetctl_begin="DEFERRED")`. A `DatabaseURL` gets `pg.open_engine`.
    """
    if isinstance(path, DatabaseURL):
        from fleetctl.state import pg

        return pg.open_engine(path, **engine_kwargs)
    path = Path(path)
    ensure_private_file(path)
    engine = create_engine(
        URL.create("sqlite", database=str(path)),
        # Apply's worker threads share the pool; pooled connections move between threads.
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        **engine_kwargs,
    )
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)

    def on_error(ctx: Any) -> None:
        err = sqlite_state_error(path, ctx.original_exception)
        if err is not None:
            raise err from None

    event.listen(engine, "handle_error", on_error)
    return engine


def reader(engine: Engine) -> Engine:
    """The same engine, but its transactions begin DEFERRED (for read-only work)."""
    return engine.execution_options(**{BEGIN_OPTION: BEGIN_DEFERRED})
