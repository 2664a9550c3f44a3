"""The health sweep's memory in the state: each replica's streak, and a log of changes.

Read and written with the standard `sqlite3` module, like `peek.py`: a sweep from cron
must not pay for importing SQLAlchemy (about 0.5 s). Only a state file that does not
exist yet, or is not migrated as far as the health tables (migration 4), is opened once
through `StateStore`, which creates and migrates it; every later sweep reads in one
query and writes in one transaction.

The streaks are read, judged and written inside a single `BEGIN IMMEDIATE` transaction
(`update`), so two sweeps running at once each count from what the other wrote.
Events (a replica's verdict changed, a repair was made) are kept `retention_days`.

On a PostgreSQL state the same SQL runs through psycopg (`_PgConn` turns the `?`
placeholders into `%s`, and `BEGIN IMMEDIATE` into a transaction that first takes the
store's write lock, `pg.WRITE_KEY`).
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from fleetctl.core.fleet import ReplicaKey
from fleetctl.state.faults import sqlite_state_error
from fleetctl.state.paths import DatabaseURL, StateLocation

HEALTH_SCHEMA_VERSION = 4
BUSY_TIMEOUT_S = 5.0
DEFAULT_RETENTION_DAYS = 30.0

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Memory:
    """What the last sweep left for a replica."""

    container_id: str = ""
    restart_count: int | None = None
    started_at: float | None = None  # epoch seconds of the container's run then
    failures: int = 0  # failing sweeps in a row
    crashes: int = 0  # sweeps in a row whose restart count rose
    verdict: str = ""
    since: float = 0.0  # when that verdict began
    checked_at: float = 0.0
    reasons: tuple[str, ...] = ()
    profile_id: str | None = None  # from the start-up log of that run (a cache)
    profile_name: str | None = None


@dataclass(frozen=True)
class Event:
    at: float
    deployment: str
    replica: int
    host: str
    kind: str  # "verdict" (it changed) or "heal" (a repair was made)
    verdict: str
    detail: str = ""
    latency_ms: float | None = None


def _iso(t: float | None) -> str | None:
    """Epoch seconds as the store's timestamp text (the same as `models.UtcDateTime`)."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    parsed = datetime.fromisoformat(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


class _PgConn:
    """The few `sqlite3.Connection` calls this module makes, on a psycopg connection."""

    def __init__(self, url: DatabaseURL) -> None:
        from fleetctl.state.pg import connect

        self.url = url
        self._conn = connect(url, autocommit=True)

    def _run(self, fn: Callable[[], Any]) -> Any:
        import psycopg

        from fleetctl.state.pg import state_error

        try:
            return fn()
        except psycopg.errors.UndefinedTable:
            raise sqlite3.OperationalError("no such table") from None  # read as "not migrated"
        except psycopg.Error as exc:
            raise (state_error(self.url, exc) or exc) from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        from fleetctl.state.pg import WRITE_KEY, qmark

        if sql == "BEGIN IMMEDIATE":
            return self._run(
                lambda: (
                    self._conn.execute("BEGIN"),
                    self._conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_KEY})"),
                )
            )
        return self._run(lambda: self._conn.execute(qmark(sql), tuple(params)))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        from fleetctl.state.pg import qmark

        rows = list(rows)
        if rows:
            self._run(lambda: self._conn.cursor().executemany(qmark(sql), rows))

    def close(self) -> None:
        self._conn.close()


def _connect(path: StateLocation, read_only: bool) -> Any:
    if isinstance(path, DatabaseURL):
        return _PgConn(path)
    try:
        return _connect_sqlite(path, read_only)
    except sqlite3.OperationalError as exc:
        raise (sqlite_state_error(path, exc) or exc) from None


def _connect_sqlite(path: Path, read_only: bool) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    else:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S)
        # Same durability as the rest of the state; journal_mode=WAL is a property of the
        # file, set when the store created it.
        conn.execute("PRAGMA synchronous=FULL")
    conn.isolation_level = None  # transactions are begun explicitly
    return conn


@contextmanager
def _medium(path: StateLocation) -> Iterator[None]:
    """A SQLite failure of the medium (disk full, read-only) as one line."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if isinstance(path, DatabaseURL):
            raise
        raise (sqlite_state_error(path, exc) or exc) from None


def _guarded(method: F) -> F:
    @functools.wraps(method)
    def run(self: HealthMemory, *args: Any, **kwargs: Any) -> Any:
        with _medium(self.path):
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


class HealthMemory:
    """The health tables of the state at `path`, for the inventory's `fleet`."""

    def __init__(self, path: StateLocation | str, fleet: str) -> None:
        self.path: StateLocation = path if isinstance(path, DatabaseURL) else Path(path)
        self.fleet = fleet

    # -- schema ----------------------------------------------------------------------
    def _migrated(self) -> bool:
        if not isinstance(self.path, DatabaseURL) and not self.path.exists():
            return False
        try:
            conn = _connect(self.path, read_only=True)
            try:
                row = conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (HEALTH_SCHEMA_VERSION,)
                ).fetchone()
            finally:
                conn.close()
        except sqlite3.OperationalError:
            return False  # no schema_migrations table yet
        return row is not None

    def ensure(self) -> None:
        """Create or migrate the state file if the health tables are not there yet."""
        if self._migrated():
            return
        from fleetctl.state.store import StateStore

        StateStore(self.path).close()

    # -- reading -----------------------------------------------------------------------
    @_guarded
    def read(self) -> dict[ReplicaKey, Memory]:
        """Every replica's memory for this fleet (none before the first sweep)."""
        if not self._migrated():
            return {}
        conn = _connect(self.path, read_only=True)
        try:
            return self._read(conn)
        finally:
            conn.close()

    def _read(self, conn: sqlite3.Connection) -> dict[ReplicaKey, Memory]:
        rows = conn.execute(
            "SELECT deployment, replica, container_id, restart_count, started_at, failures, crashes, verdict, since, "
            "checked_at, reasons, profile_id, profile_name FROM health_streak WHERE fleet = ?",
            (self.fleet,),
        ).fetchall()
        out = {}
        for (
            dep,
            rep,
            cid,
            restarts,
            started,
            failures,
            crashes,
            verdict,
            since,
            checked,
            reasons,
            pid,
            pname,
        ) in rows:
            out[ReplicaKey(dep, int(rep))] = Memory(
                container_id=cid,
                restart_count=None if restarts is None else int(restarts),
                started_at=_epoch(started),
                failures=int(failures),
                crashes=int(crashes),
                verdict=verdict,
                since=_epoch(since) or 0.0,
                checked_at=_epoch(checked) or 0.0,
                reasons=tuple(json.loads(reasons)) if reasons else (),
                profile_id=pid,
                profile_name=pname,
            )
        return out

    @_guarded
    def events(
        self, deployment: str | None = None, replica: int | None = None, limit: int = 50
    ) -> list[Event]:
        """The newest events, newest first (of one deployment, or of one model: NAME
        without `@` matches every version)."""
        if not self._migrated():
            return []
        sql = "SELECT at, deployment, replica, host, kind, verdict, detail, latency_ms FROM health_event WHERE fleet = ?"
        args: list[object] = [self.fleet]
        if deployment:
            if "@" in deployment:
                sql += " AND deployment = ?"
                args.append(deployment)
            else:
                sql += " AND (deployment = ? OR deployment LIKE ? ESCAPE '\\')"
                escaped = deployment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                args += [deployment, escaped + "@%"]
        if replica is not None:
            sql += " AND replica = ?"
            args.append(replica)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        conn = _connect(self.path, read_only=True)
        try:
            rows = conn.execute(sql, args).fetchall()
        finally:
            conn.close()
        return [
            Event(_epoch(at) or 0.0, d, int(r), h, k, v, det, lat)
            for at, d, r, h, k, v, det, lat in rows
        ]

    # -- writing ---------------------------------------------------------------------
    @_guarded
    def update(
        self,
        judge: Callable[
            [Mapping[ReplicaKey, Memory]], tuple[Mapping[ReplicaKey, Memory], Sequence[Event], T]
        ],
        retention_days: float = DEFAULT_RETENTION_DAYS,
    ) -> T:
        """Read the memory, `judge` it (a pure function: memory -> new memory for every
        replica swept, events, result) and write what it returns, in one transaction.
        Replicas of this fleet that `judge` did not return are forgotten (they are no
        longer in the inventory). Returns `judge`'s result."""
        self.ensure()
        conn = _connect(self.path, read_only=False)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                new, events, result = judge(self._read(conn))
                self._write(conn, new)
                self._append(conn, events)
                cutoff = _iso(time.time() - retention_days * 86400)
                conn.execute("DELETE FROM health_event WHERE at < ?", (cutoff,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()
        return result

    @_guarded
    def record(self, events: Iterable[Event]) -> None:
        """Append events (heal's repairs) in one transaction."""
        events = list(events)
        if not events:
            return
        self.ensure()
        conn = _connect(self.path, read_only=False)
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._append(conn, events)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, new: Mapping[ReplicaKey, Memory]) -> None:
        conn.execute("DELETE FROM health_streak WHERE fleet = ?", (self.fleet,))
        conn.executemany(
            "INSERT INTO health_streak (fleet, deployment, replica, container_id, restart_count, started_at, failures, "
            "crashes, verdict, since, checked_at, reasons, profile_id, profile_name) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    self.fleet,
                    dep,
                    rep,
                    m.container_id,
                    m.restart_count,
                    _iso(m.started_at),
                    m.failures,
                    m.crashes,
                    m.verdict,
                    _iso(m.since),
                    _iso(m.checked_at),
                    json.dumps(list(m.reasons)),
                    m.profile_id,
                    m.profile_name,
                )
                for (dep, rep), m in sorted(new.items())
            ],
        )

    def _append(self, conn: sqlite3.Connection, events: Iterable[Event]) -> None:
        conn.executemany(
            "INSERT INTO health_event (at, fleet, deployment, replica, host, kind, verdict, detail, latency_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    _iso(e.at),
                    self.fleet,
                    e.deployment,
                    e.replica,
                    e.host,
                    e.kind,
                    e.verdict,
                    e.detail[:2000],
                    e.latency_ms,
                )
                for e in events
            ],
        )
