"""`fleetctl state migrate --to postgresql://…`: copy a SQLite state into PostgreSQL.

Every table of the migrated schema is copied row for row, ids kept (steps, revisions and
holds refer to rollouts by id), in foreign-key order, in one transaction on the target:
either all of it lands or none. The target must hold no rows yet; it is migrated to the
same schema version first. Each identity column then continues after the highest id
copied. Both states are locked meanwhile, so no apply writes to either mid-copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetctl.errors import FleetctlError
from fleetctl.state.paths import DatabaseURL, StateLocation

# Foreign-key order: rollouts before what refers to them. A table added by a later
# migration and not listed here is copied after these.
TABLE_ORDER = ("rollout", "rollout_step", "revision", "hold", "health_streak", "health_event")
SKIPPED = ("schema_migrations",)


@dataclass(frozen=True)
class Copied:
    source: str
    target: str
    schema_version: int
    rows: dict[str, int]


def _source_tables(conn) -> list[str]:
    names = [
        n
        for (n,) in conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    names = [n for n in names if n not in SKIPPED]
    return [t for t in TABLE_ORDER if t in names] + sorted(n for n in names if n not in TABLE_ORDER)


def migrate_state(source: StateLocation, target: StateLocation) -> Copied:
    """Copy the SQLite state at `source` into the empty PostgreSQL state at `target`."""
    from sqlalchemy import text

    from fleetctl.state.lock import StateLock
    from fleetctl.state.store import StateStore

    if not isinstance(target, DatabaseURL):
        raise FleetctlError(f"state migrate --to needs a postgresql:// URL; got the path {target}")
    if isinstance(source, DatabaseURL):
        raise FleetctlError("state migrate copies a SQLite state: give its file with --state")
    if not Path(source).exists():
        raise FleetctlError(f"no state at {source}: nothing to migrate (pass --state FILE)")
    with StateLock(source, "state migrate"), StateLock(target, "state migrate"):
        with StateStore(source) as src, StateStore(target) as dst:
            rows: dict[str, int] = {}
            with (
                src._reader.connect() as s,
                dst._engine.begin() as d,
            ):  # one transaction on the target
                tables = _source_tables(s)
                busy = [
                    t for t in tables if d.execute(text(f'SELECT count(*) FROM "{t}"')).scalar()
                ]
                if busy:
                    raise FleetctlError(
                        f"state {target} is not empty ({', '.join(busy)} have rows): migrate into an empty database"
                    )
                for table in tables:
                    # Tables keyed by id are copied in id order; the others (known_host,
                    # keyed by fleet and name) have no order to keep.
                    has_id = any(
                        r[1] == "id" for r in s.exec_driver_sql(f'PRAGMA table_info("{table}")')
                    )
                    result = s.exec_driver_sql(
                        f'SELECT * FROM "{table}"' + (" ORDER BY id" if has_id else "")
                    )
                    columns = list(result.keys())
                    data = [
                        dict(zip((f"c{i}" for i in range(len(columns))), row)) for row in result
                    ]
                    rows[table] = len(data)
                    if not data:
                        continue
                    names = ", ".join(f'"{c}"' for c in columns)
                    values = ", ".join(f":c{i}" for i in range(len(columns)))
                    d.execute(text(f'INSERT INTO "{table}" ({names}) VALUES ({values})'), data)
                    if "id" in columns:
                        d.execute(
                            text(
                                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), (SELECT max(id) FROM \"{table}\"))"
                            )
                        )
            return Copied(str(source), str(target), dst.schema_version, rows)
