"""A read-only look at revisions, holds and start times with the standard `sqlite3` module.

`apply` needs each deployment's revision number before it starts any container (the
number goes into the container's labels). Reading it here costs a few milliseconds,
so the SQLAlchemy-based store (about 0.4 s to import and open) can be opened while the
first containers start, instead of before. `plan` and `apply` read the holds here for
the same reason: a plan with nothing to change never imports SQLAlchemy. A stop-first
replacement's estimated time out of service comes from the start times here too.

On a PostgreSQL state the same queries go through psycopg directly (still no
SQLAlchemy); a database not migrated that far yet reads as empty, like a missing file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetctl.core.holds import Hold
from fleetctl.state.faults import sqlite_state_error
from fleetctl.state.paths import DatabaseURL, StateLocation


@dataclass(frozen=True)
class RevisionKey:
    deployment: str
    number: int
    spec_hash: str
    outcome: str


@dataclass(frozen=True)
class PeekRevision:
    """What rollback needs of a recorded revision, read without SQLAlchemy."""

    deployment: str
    number: int
    spec_hash: str
    outcome: str
    spec: dict[str, Any]


def _select(
    state_path: StateLocation, sql: str, params: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    """Rows of a read-only query; none when the file or the table does not exist yet."""
    if isinstance(state_path, DatabaseURL):
        return _select_pg(state_path, sql, params)
    if not Path(state_path).exists():
        return []
    path = Path(state_path).resolve()
    try:
        try:
            return _query(f"file:{path}?mode=ro", sql, params)
        except sqlite3.OperationalError as exc:
            # A WAL database on a read-only medium cannot make its -shm file; nobody can
            # write there either, so reading it as immutable is exact.
            if "unable to open" not in str(exc) or os.access(path.parent, os.W_OK):
                raise
            return _query(f"file:{path}?mode=ro&immutable=1", sql, params)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # created but not migrated (that far) yet
        raise (sqlite_state_error(Path(state_path), exc) or exc) from None


def _query(uri: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(uri, uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _select_pg(url: DatabaseURL, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    import psycopg

    from fleetctl.state.pg import connect, qmark, state_error

    with connect(url, autocommit=True) as conn:
        try:
            return list(conn.execute(qmark(sql), params).fetchall())
        except psycopg.errors.UndefinedTable:
            return []  # created but not migrated (that far) yet
        except psycopg.Error as exc:
            raise (state_error(url, exc) or exc) from None


def revisions(state_path: StateLocation, deployment: str) -> list[PeekRevision]:
    """One deployment's revisions, newest first: rollback chooses among them before the
    store (and SQLAlchemy) is needed, so a rollback to a running pin switches sooner."""
    rows = _select(
        state_path,
        "SELECT number, spec_hash, outcome, spec_json FROM revision WHERE deployment = ? ORDER BY number DESC",
        (deployment,),
    )
    return [PeekRevision(deployment, int(n), h, o, json.loads(spec)) for n, h, o, spec in rows]


def revision_keys(state_path: StateLocation) -> dict[str, list[RevisionKey]]:
    """Every revision's (number, spec hash, outcome) per deployment, newest first."""
    rows = _select(
        state_path,
        "SELECT deployment, number, spec_hash, outcome FROM revision ORDER BY deployment, number DESC",
    )
    out: dict[str, list[RevisionKey]] = {}
    for dep, number, spec_hash, outcome in rows:
        out.setdefault(dep, []).append(RevisionKey(dep, int(number), spec_hash, outcome))
    return out


def next_numbers(keys: dict[str, list[RevisionKey]], wanted: dict[str, str]) -> dict[str, int]:
    """The number each deployment's spec will be recorded under (the store's own rule):
    the latest applied revision's number when the spec is unchanged, else max + 1."""
    from fleetctl.core.revisions import revision_number

    out = {}
    for dep, spec_hash in wanted.items():
        revs = keys.get(dep, [])
        latest = next((r for r in revs if r.outcome == "applied"), None)
        applied = (latest.number, latest.spec_hash) if latest is not None else None
        out[dep] = revision_number(spec_hash, applied, max((r.number for r in revs), default=None))[
            0
        ]
    return out


def read_holds(state_path: StateLocation) -> list[Hold]:
    """Every hold in the state, by model (none without a state file or a hold table)."""
    rows = _select(
        state_path,
        "SELECT model, version, revision, spec_json, inventory_version, created_at, rollout_id, command "
        "FROM hold ORDER BY model",
    )
    return [
        Hold(
            model=model,
            version=version,
            revision=int(revision),
            spec=json.loads(spec_json),
            inventory_version=inventory_version,
            created_at=_utc(created_at),
            rollout_id=None if rollout_id is None else int(rollout_id),
            command=command,
        )
        for model, version, revision, spec_json, inventory_version, created_at, rollout_id, command in rows
    ]


def _utc(text: str) -> datetime:
    """The store's timestamp text (`UtcDateTime`) as an aware datetime."""
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


RECENT_STARTS = 5


def start_seconds(state_path: StateLocation, deployments: list[str]) -> dict[str, float]:
    """deployment -> median seconds of its last successful create or recreate steps."""
    out: dict[str, float] = {}
    for dep in deployments:
        rows = _select(
            state_path,
            "SELECT started_at, finished_at FROM rollout_step WHERE deployment = ? AND outcome = 'ok' "
            "AND action IN ('create', 'recreate') ORDER BY id DESC LIMIT ?",
            (dep, RECENT_STARTS),
        )
        took = [
            (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() for a, b in rows
        ]
        if took:
            out[dep] = statistics.median(took)
    return out


def known_hosts(state_path: Path, fleet: str) -> list[dict[str, Any]]:
    """The inventory entries of the hosts `fleet`'s rollouts changed (none without a state)."""
    rows = _select(
        state_path, "SELECT host_json FROM known_host WHERE fleet = ? ORDER BY name", (fleet,)
    )
    return [json.loads(h) for (h,) in rows]


def abandoned_rollouts(state_path: StateLocation) -> int:
    """How many rollouts are still marked running (under the lock: killed ones)."""
    rows = _select(state_path, "SELECT count(*) FROM rollout WHERE outcome = 'running'")
    return int(rows[0][0]) if rows else 0
