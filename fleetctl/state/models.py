"""SQLModel mappings of the tables that `migrations.py` creates.

These classes are for queries inside `store.py` only; callers get frozen records. The
schema itself comes from the migrations, never from `metadata.create_all`, so a column
added here must also be added by a new migration.
"""

from datetime import UTC, datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as ISO 8601 text in UTC.

    SQLAlchemy's SQLite DateTime drops the offset; storing it keeps the file readable
    with the sqlite3 shell and keeps ordering by text equal to ordering by time.
    """

    impl = String
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("state timestamps must be timezone-aware")
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    def process_result_value(self, value: str | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# No `from __future__ import annotations` here: SQLModel reads these annotations at
# class-creation time to derive columns and nullability.


class Rollout(SQLModel, table=True):
    __tablename__ = "rollout"

    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    command: str
    user: str
    inventory_path: str
    inventory_digest: str
    plan_json: str
    outcome: str
    summary: str = ""


class RolloutStep(SQLModel, table=True):
    __tablename__ = "rollout_step"

    id: int | None = Field(default=None, primary_key=True)
    rollout_id: int = Field(foreign_key="rollout.id")
    deployment: str
    replica: int
    host: str
    action: str
    container: str
    started_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    finished_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    outcome: str
    detail: str = ""
    log_tail: str = ""


class Revision(SQLModel, table=True):
    __tablename__ = "revision"

    id: int | None = Field(default=None, primary_key=True)
    deployment: str
    model: str
    version: str
    number: int
    spec_hash: str
    spec_json: str
    image: str
    image_digest: str | None = None
    placement_json: str
    outcome: str
    rollout_id: int = Field(foreign_key="rollout.id")
    created_at: datetime = Field(sa_type=UtcDateTime, nullable=False)


class Hold(SQLModel, table=True):
    __tablename__ = "hold"

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(unique=True)
    version: str
    revision: int
    spec_json: str
    inventory_version: str
    created_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    rollout_id: int | None = Field(default=None, foreign_key="rollout.id", nullable=True)
    command: str


class HealthStreak(SQLModel, table=True):
    """A replica's memory between health sweeps (written by `fleetctl.state.health_store`)."""

    __tablename__ = "health_streak"
    __table_args__ = (UniqueConstraint("fleet", "deployment", "replica"),)

    id: int | None = Field(default=None, primary_key=True)
    fleet: str
    deployment: str
    replica: int
    container_id: str = ""
    restart_count: int | None = None
    started_at: datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    failures: int = 0
    crashes: int = 0
    verdict: str
    since: datetime = Field(sa_type=UtcDateTime, nullable=False)
    checked_at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    reasons: str = ""
    profile_id: str | None = None
    profile_name: str | None = None


class HealthEvent(SQLModel, table=True):
    """A change of a replica's health verdict, or a repair `health --heal` made."""

    __tablename__ = "health_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UtcDateTime, nullable=False)
    fleet: str
    deployment: str
    replica: int
    host: str = ""
    kind: str
    verdict: str
    detail: str = ""
    latency_ms: float | None = None


class KnownHost(SQLModel, table=True):
    """A host a fleet's rollouts changed (its inventory entry, without secrets)."""

    __tablename__ = "known_host"

    fleet: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    host_json: str
    last_used: datetime = Field(sa_type=UtcDateTime, nullable=False)
