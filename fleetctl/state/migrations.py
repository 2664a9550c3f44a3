"""The state schema, as an append-only list of migrations.

A database records which versions it has in `schema_migrations`; opening it applies the
missing ones in order. A released migration is never edited: databases already past it
would silently keep the old shape. Change the schema by appending a new `Migration`, and
keep `fleetctl/state/models.py` in step (a unit test compares the two).

The statements are SQL that SQLite and PostgreSQL both run, with one translation
(`portable`): SQLite's `INTEGER PRIMARY KEY AUTOINCREMENT` is PostgreSQL's identity
column. Quote a column whose name PostgreSQL reserves (`"user"`). On PostgreSQL each
migration's transaction first takes an advisory lock, as SQLite's BEGIN IMMEDIATE
takes the write lock, so two processes opening a fresh database apply it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text

from fleetctl.errors import FleetctlError


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]  # one SQL statement each: sqlite3 runs one per execute


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "rollouts, their steps, and deployment revisions",
        (
            """
            CREATE TABLE rollout (
                id               INTEGER PRIMARY KEY AUTOINCREMENT,
                started_at       TEXT    NOT NULL,
                finished_at      TEXT,
                command          TEXT    NOT NULL,
                "user"           TEXT    NOT NULL,
                inventory_path   TEXT    NOT NULL,
                inventory_digest TEXT    NOT NULL,
                plan_json        TEXT    NOT NULL,
                outcome          TEXT    NOT NULL
                    CHECK (outcome IN ('running', 'succeeded', 'failed', 'partial', 'noop')),
                summary          TEXT    NOT NULL DEFAULT ''
            )
            """,
            """
            CREATE TABLE rollout_step (
                id          INTEGER PRIMARY KEY AUTOINCREMENT,
                rollout_id  INTEGER NOT NULL REFERENCES rollout (id),
                deployment  TEXT    NOT NULL,
                replica     INTEGER NOT NULL,
                host        TEXT    NOT NULL,
                action      TEXT    NOT NULL
                    CHECK (action IN ('create', 'recreate', 'remove', 'keep')),
                container   TEXT    NOT NULL,
                started_at  TEXT    NOT NULL,
                finished_at TEXT    NOT NULL,
                outcome     TEXT    NOT NULL CHECK (outcome IN ('ok', 'failed', 'skipped')),
                detail      TEXT    NOT NULL DEFAULT '',
                log_tail    TEXT    NOT NULL DEFAULT ''
            )
            """,
            "CREATE INDEX rollout_step_by_rollout ON rollout_step (rollout_id, id)",
            """
            CREATE TABLE revision (
                id             INTEGER PRIMARY KEY AUTOINCREMENT,
                deployment     TEXT    NOT NULL,
                model          TEXT    NOT NULL,
                version        TEXT    NOT NULL,
                number         INTEGER NOT NULL CHECK (number >= 1),
                spec_hash      TEXT    NOT NULL,
                spec_json      TEXT    NOT NULL,
                image          TEXT    NOT NULL,
                image_digest   TEXT,
                placement_json TEXT    NOT NULL,
                outcome        TEXT    NOT NULL
                    CHECK (outcome IN ('applied', 'failed', 'rolled_back')),
                rollout_id     INTEGER NOT NULL REFERENCES rollout (id),
                created_at     TEXT    NOT NULL,
                UNIQUE (deployment, number)
            )
            """,
            "CREATE INDEX revision_by_outcome ON revision (deployment, outcome, number)",
        ),
    ),
    Migration(
        2,
        "rollout steps may reload a front door's routes",
        (
            """
            CREATE TABLE rollout_step_v2 (
                id          INTEGER PRIMARY KEY AUTOINCREMENT,
                rollout_id  INTEGER NOT NULL REFERENCES rollout (id),
                deployment  TEXT    NOT NULL,
                replica     INTEGER NOT NULL,
                host        TEXT    NOT NULL,
                action      TEXT    NOT NULL
                    CHECK (action IN ('create', 'recreate', 'remove', 'keep', 'reload')),
                container   TEXT    NOT NULL,
                started_at  TEXT    NOT NULL,
                finished_at TEXT    NOT NULL,
                outcome     TEXT    NOT NULL CHECK (outcome IN ('ok', 'failed', 'skipped')),
                detail      TEXT    NOT NULL DEFAULT '',
                log_tail    TEXT    NOT NULL DEFAULT ''
            )
            """,
            "INSERT INTO rollout_step_v2 SELECT * FROM rollout_step",
            "DROP TABLE rollout_step",
            "ALTER TABLE rollout_step_v2 RENAME TO rollout_step",
            "CREATE INDEX rollout_step_by_rollout ON rollout_step (rollout_id, id)",
        ),
    ),
    Migration(
        3,
        "holds: a model kept at the version a rollback restored",
        (
            """
            CREATE TABLE hold (
                id                INTEGER PRIMARY KEY AUTOINCREMENT,
                model             TEXT    NOT NULL UNIQUE,
                version           TEXT    NOT NULL,
                revision          INTEGER NOT NULL CHECK (revision >= 1),
                spec_json         TEXT    NOT NULL,
                inventory_version TEXT    NOT NULL,
                created_at        TEXT    NOT NULL,
                rollout_id        INTEGER REFERENCES rollout (id),
                command           TEXT    NOT NULL
            )
            """,
        ),
    ),
    Migration(
        4,
        "health: each replica's streak between sweeps, and a log of its changes",
        (
            """
            CREATE TABLE health_streak (
                id            INTEGER PRIMARY KEY AUTOINCREMENT,
                fleet         TEXT    NOT NULL,
                deployment    TEXT    NOT NULL,
                replica       INTEGER NOT NULL,
                container_id  TEXT    NOT NULL DEFAULT '',
                restart_count INTEGER,
                started_at    TEXT,
                failures      INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
                crashes       INTEGER NOT NULL DEFAULT 0 CHECK (crashes >= 0),
                verdict       TEXT    NOT NULL,
                since         TEXT    NOT NULL,
                checked_at    TEXT    NOT NULL,
                reasons       TEXT    NOT NULL DEFAULT '',
                profile_id    TEXT,
                profile_name  TEXT,
                UNIQUE (fleet, deployment, replica)
            )
            """,
            """
            CREATE TABLE health_event (
                id         INTEGER PRIMARY KEY AUTOINCREMENT,
                at         TEXT    NOT NULL,
                fleet      TEXT    NOT NULL,
                deployment TEXT    NOT NULL,
                replica    INTEGER NOT NULL,
                host       TEXT    NOT NULL DEFAULT '',
                kind       TEXT    NOT NULL CHECK (kind IN ('verdict', 'heal')),
                verdict    TEXT    NOT NULL,
                detail     TEXT    NOT NULL DEFAULT '',
                latency_ms REAL
            )
            """,
            "CREATE INDEX health_event_by_deployment ON health_event (fleet, deployment, id)",
            "CREATE INDEX health_event_by_time ON health_event (at)",
        ),
    ),
    Migration(
        5,
        "the hosts each fleet has changed, so a host removed from the inventory is still cleared",
        (
            """
            CREATE TABLE known_host (
                fleet     TEXT NOT NULL,
                name      TEXT NOT NULL,
                host_json TEXT NOT NULL,
                last_used TEXT NOT NULL,
                PRIMARY KEY (fleet, name)
            )
            """,
        ),
    ),
)

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at TEXT    NOT NULL
)
"""


# Serialises migrations on PostgreSQL (a transaction-scoped advisory lock).
MIGRATION_LOCK_KEY = 0x666C656574633C4D


def latest_version() -> int:
    return MIGRATIONS[-1].version if MIGRATIONS else 0


def portable(statement: str, dialect: str) -> str:
    """`statement` as `dialect` ("sqlite" or "postgresql") runs it."""
    if dialect == "postgresql":
        return statement.replace(
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        )
    return statement


def _serialise(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})


def applied_versions(engine: Engine) -> list[int]:
    with engine.begin() as conn:
        _serialise(conn)
        conn.exec_driver_sql(_BOOTSTRAP)
        return [
            int(v)
            for (v,) in conn.exec_driver_sql(
                "SELECT version FROM schema_migrations ORDER BY version"
            )
        ]


def migrate(engine: Engine) -> int:
    """Apply the missing migrations in order; return the schema version now in effect.

    Each migration runs in its own IMMEDIATE transaction that re-checks whether it is
    still missing, so two processes opening a fresh database at once apply it once.
    """
    known = {m.version for m in MIGRATIONS}
    done = set(applied_versions(engine))
    unknown = sorted(done - known)
    if unknown:
        raise FleetctlError(
            f"state database has schema version {unknown[-1]}, newer than this fleetctl "
            f"knows ({latest_version()}); upgrade fleetctl or point --state elsewhere"
        )
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        with engine.begin() as conn:
            _serialise(conn)
            row = conn.execute(
                text("SELECT 1 FROM schema_migrations WHERE version = :v"), {"v": migration.version}
            ).first()
            if row is not None:
                continue
            for statement in migration.statements:
                conn.exec_driver_sql(portable(statement, conn.dialect.name))
            conn.execute(
                text("INSERT INTO schema_migrations (version, applied_at) VALUES (:v, :at)"),
                {"v": migration.version, "at": datetime.now(UTC).isoformat(timespec="seconds")},
            )
    return latest_version()
