"""The record of every rollout, its per-replica steps, and each deployment's revisions.

`StateStore` is the only way the rest of fleetctl touches the state file. It may be
shared by the worker threads of one apply (writes are serialized in-process by a lock,
and across processes by SQLite's write lock), and it hands out frozen records, never
ORM rows.

Revision numbers: a deployment's revisions are numbered 1, 2, 3... in the order they were
recorded. Recording a spec whose hash equals the deployment's latest *applied* revision
records nothing and returns that revision, so re-running apply does not grow history;
any other spec gets the next number, whatever its outcome, so a failed attempt and a
rollback each stay visible.

Holds (at most one per model, see `fleetctl.core.holds`) live in `hold_store.py`.
"""

from __future__ import annotations

import getpass
import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from fleetctl.core.revisions import revision_number
from fleetctl.crashpoints import mutation
from fleetctl.state.db import as_location, open_engine, reader, secure_sidecars
from fleetctl.state.guard import refuse_forbidden
from fleetctl.state.hold_store import HoldsMixin
from fleetctl.state.migrations import migrate
from fleetctl.state.models import KnownHost, Revision, Rollout, RolloutStep
from fleetctl.state.paths import DatabaseURL
from fleetctl.state.records import (
    REVISION_OUTCOMES,
    ROLLOUT_OUTCOMES,
    STEP_ACTIONS,
    STEP_OUTCOMES,
    RevisionRecord,
    RolloutRecord,
    StepRecord,
    check_choice,
)

#: The detail of a step recorded before it ran, until its outcome is recorded.
STEP_IN_PROGRESS = "in progress"
STEP_INTERRUPTED = (
    "interrupted: outcome unknown (the next run reconciled it from the hosts' labels)"
)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value


def _dumps(value: Any) -> str:
    # Sorted keys: the same plan or spec always stores the same text, so rows can be
    # compared and diffed directly.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        # Containers often run as a uid with no passwd entry and no $USER.
        return f"uid:{os.getuid()}"


class StateStore(HoldsMixin):
    """The state database at `path` (a SQLite file or a PostgreSQL `DatabaseURL`),
    created and migrated on open (holds: `HoldsMixin`)."""

    def __init__(self, path: Path | str | DatabaseURL) -> None:
        self.path = as_location(path)
        self._engine = open_engine(self.path)
        self._reader = reader(self._engine)
        self._write_lock = threading.Lock()
        self._batch = threading.local()
        self._closed = False
        try:
            self.schema_version = migrate(self._engine)
            secure_sidecars(self.path)
        except BaseException:
            self._engine.dispose()
            raise

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        self._closed = True
        self._engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"state store {self.path} is closed")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group this thread's writes into one transaction: one sync to disk instead of
        one per record (with synchronous=FULL each commit costs an fsync)."""
        with self._write() as session:
            self._batch.session = session
            try:
                yield
            finally:
                self._batch.session = None

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One IMMEDIATE transaction, committed on success, rolled back on error."""
        self._check_open()
        current = getattr(self._batch, "session", None)
        if current is not None:
            yield current  # inside batch(): its transaction commits everything at once
            return
        # SQLite would serialize these too, but threads of one process would then spin
        # on busy_timeout against each other; a mutex queues them fairly and cheaply.
        with self._write_lock, Session(self._engine, expire_on_commit=False) as session:
            with mutation("commit", getattr(self.path, "name", "state")), session.begin():
                yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        self._check_open()
        with Session(self._reader) as session:
            yield session

    # -- rollouts ------------------------------------------------------------------

    def begin_rollout(
        self,
        command: str,
        inventory_path: str | Path,
        inventory_digest: str,
        plan: dict[str, Any],
        *,
        user: str | None = None,
        forbidden_values: Sequence[str] = (),
    ) -> int:
        """Record a rollout as "running" and return its id."""
        refuse_forbidden({"plan": plan, "command": command}, forbidden_values, "rollout")
        row = Rollout(
            started_at=_now(),
            command=command,
            user=user or current_user(),
            inventory_path=str(inventory_path),
            inventory_digest=inventory_digest,
            plan_json=_dumps(plan),
            outcome="running",
        )
        with self._write() as session:
            session.add(row)
            session.flush()
            assert row.id is not None
            return row.id

    def finish_rollout(self, rollout_id: int, outcome: str, summary: str = "") -> None:
        """Close a running rollout with its final outcome."""
        check_choice("outcome", outcome, tuple(o for o in ROLLOUT_OUTCOMES if o != "running"))
        with self._write() as session:
            row = session.get(Rollout, rollout_id)
            if row is None:
                raise ValueError(f"no rollout {rollout_id}")
            if row.outcome != "running":
                raise ValueError(f"rollout {rollout_id} already finished ({row.outcome})")
            row.outcome = outcome
            row.summary = summary
            row.finished_at = _now()
            session.add(row)

    def fail_abandoned_rollouts(self, summary: str = "interrupted before it finished") -> list[int]:
        """Mark every "running" rollout "failed"; return their ids.

        Call only while holding `StateLock`: then no live process can be running one, so
        any left "running" belonged to a process that was killed mid-rollout.
        """
        with self._write() as session:
            rows = list(session.exec(select(Rollout).where(Rollout.outcome == "running")))
            for row in rows:
                row.outcome = "failed"
                row.summary = summary
                row.finished_at = _now()
                session.add(row)
            ids = [row.id for row in rows if row.id is not None]
            if ids:
                steps = session.exec(
                    select(RolloutStep).where(
                        col(RolloutStep.rollout_id).in_(ids), RolloutStep.detail == STEP_IN_PROGRESS
                    )
                )
                for step in steps:
                    step.detail = STEP_INTERRUPTED
                    session.add(step)
            return ids

    # -- the journal: each step recorded before it runs, its outcome after ----------------

    def begin_step(
        self,
        rollout_id: int,
        *,
        deployment: str,
        replica: int,
        host: str,
        action: str,
        container: str,
    ) -> int:
        """Record a step about to run; `end_step` records its outcome. A step left like
        this belonged to a killed process: `fail_abandoned_rollouts` says so."""
        now = _now()
        return self.record_step(
            rollout_id,
            deployment=deployment,
            replica=replica,
            host=host,
            action=action,
            container=container,
            outcome="failed",
            detail=STEP_IN_PROGRESS,
            started_at=now,
            finished_at=now,
        )

    def end_step(
        self,
        step_id: int,
        *,
        outcome: str,
        detail: str,
        container: str,
        log_tail: str = "",
        finished_at: datetime | None = None,
    ) -> None:
        check_choice("outcome", outcome, STEP_OUTCOMES)
        with self._write() as session:
            row = session.get(RolloutStep, step_id)
            if row is None:
                raise ValueError(f"no step {step_id}")
            row.outcome, row.detail, row.log_tail = outcome, detail, log_tail
            row.container = container or row.container
            row.finished_at = _aware("finished_at", finished_at) or _now()
            session.add(row)

    def remember_hosts(self, fleet: str, hosts: Sequence[dict[str, Any]]) -> None:
        """Note the hosts a rollout of `fleet` worked on (their inventory entries)."""
        with self._write() as session:
            for h in hosts:
                row = session.get(KnownHost, (fleet, h["name"])) or KnownHost(
                    fleet=fleet, name=h["name"], host_json="", last_used=_now()
                )
                row.host_json, row.last_used = _dumps(h), _now()
                session.add(row)

    def forget_host(self, fleet: str, name: str) -> None:
        with self._write() as session:
            row = session.get(KnownHost, (fleet, name))
            if row is not None:
                session.delete(row)

    def settle_revision(
        self,
        deployment: str,
        number: int,
        *,
        outcome: str,
        rollout_id: int,
        image_digest: str | None,
        placement: list[dict[str, Any]],
    ) -> None:
        """Record how a revision recorded at a rollout's start ended (only a revision that
        rollout created: an unchanged spec keeps its earlier revision as it was)."""
        check_choice("outcome", outcome, REVISION_OUTCOMES)
        with self._write() as session:
            row = self._get_revision(session, deployment, number)
            if row is None or row.rollout_id != rollout_id:
                return
            row.outcome = outcome
            row.image_digest = image_digest
            row.placement_json = _dumps(list(placement))
            session.add(row)

    def confirm_running(self, running: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
        """Revisions that verified containers run, yet the state calls failed: a rollout
        killed before it recorded its end. Containers take their final name only after
        their readiness gate, so these revisions were applied; mark them so."""
        fixed = []
        with self._write() as session:
            for deployment, number in sorted(set(running)):
                row = self._get_revision(session, deployment, number)
                if row is not None and row.outcome == "failed":
                    row.outcome = "applied"
                    session.add(row)
                    fixed.append((deployment, number))
        return fixed

    def record_step(
        self,
        rollout_id: int,
        *,
        deployment: str,
        replica: int,
        host: str,
        action: str,
        container: str,
        outcome: str,
        detail: str = "",
        log_tail: str = "",
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
    ) -> int:
        """Record one replica's step of a rollout (after it ran); return the step id.

        `finished_at` defaults to now and `started_at` to `finished_at`.
        """
        check_choice("action", action, STEP_ACTIONS)
        check_choice("outcome", outcome, STEP_OUTCOMES)
        finished = _aware("finished_at", finished_at) or _now()
        started = _aware("started_at", started_at) or finished
        row = RolloutStep(
            rollout_id=rollout_id,
            deployment=deployment,
            replica=replica,
            host=host,
            action=action,
            container=container,
            started_at=started,
            finished_at=finished,
            outcome=outcome,
            detail=detail,
            log_tail=log_tail,
        )
        with self._write() as session:
            if session.get(Rollout, rollout_id) is None:
                raise ValueError(f"no rollout {rollout_id}")
            session.add(row)
            session.flush()
            assert row.id is not None
            return row.id

    def rollouts(self, limit: int = 20) -> list[RolloutRecord]:
        """The most recent rollouts, newest first."""
        with self._read() as session:
            rows = session.exec(select(Rollout).order_by(col(Rollout.id).desc()).limit(limit))
            return [RolloutRecord.from_row(r) for r in rows]

    def rollout(self, rollout_id: int) -> RolloutRecord | None:
        with self._read() as session:
            row = session.get(Rollout, rollout_id)
            return RolloutRecord.from_row(row) if row is not None else None

    def steps(self, rollout_id: int) -> list[StepRecord]:
        """A rollout's steps in the order they were recorded."""
        with self._read() as session:
            stmt = (
                select(RolloutStep)
                .where(RolloutStep.rollout_id == rollout_id)
                .order_by(col(RolloutStep.id))
            )
            return [StepRecord.from_row(r) for r in session.exec(stmt)]

    # -- revisions -----------------------------------------------------------------

    def record_revision(
        self,
        *,
        deployment: str,
        model: str,
        version: str,
        spec_hash: str,
        spec: dict[str, Any],
        image: str,
        image_digest: str | None,
        placement: list[dict[str, Any]],
        outcome: str,
        rollout_id: int,
        forbidden_values: Sequence[str] = (),
    ) -> RevisionRecord:
        """Record what a rollout did to a deployment; see the module doc for numbering.

        Raises ValueError, naming only the field path, if any stored string equals (or,
        for values of 8+ characters, contains) one of `forbidden_values`.
        """
        check_choice("outcome", outcome, REVISION_OUTCOMES)
        refuse_forbidden(
            {
                "deployment": deployment,
                "model": model,
                "version": version,
                "spec": spec,
                "image": image,
                "image_digest": image_digest,
                "placement": placement,
            },
            forbidden_values,
            f"revision of {deployment}",
        )
        spec_json = _dumps(spec)
        placement_json = _dumps(list(placement))
        with self._write() as session:
            if session.get(Rollout, rollout_id) is None:
                raise ValueError(f"no rollout {rollout_id}")
            latest = self._latest(session, deployment, "applied")
            # Read and insert inside one IMMEDIATE transaction: no other writer can take
            # the same number in between (UNIQUE(deployment, number) backs this up).
            top = session.exec(
                select(func.max(Revision.number)).where(Revision.deployment == deployment)
            ).one()
            number, exists = revision_number(
                spec_hash, (latest.number, latest.spec_hash) if latest is not None else None, top
            )
            if exists and latest is not None:
                return RevisionRecord.from_row(latest)
            row = Revision(
                deployment=deployment,
                model=model,
                version=version,
                number=number,
                spec_hash=spec_hash,
                spec_json=spec_json,
                image=image,
                image_digest=image_digest,
                placement_json=placement_json,
                outcome=outcome,
                rollout_id=rollout_id,
                created_at=_now(),
            )
            session.add(row)
            session.flush()
            return RevisionRecord.from_row(row)

    def set_revision_outcome(self, deployment: str, number: int, outcome: str) -> RevisionRecord:
        """Change a revision's outcome, e.g. mark the revision a rollback replaced as "rolled_back"."""
        check_choice("outcome", outcome, REVISION_OUTCOMES)
        with self._write() as session:
            row = self._get_revision(session, deployment, number)
            if row is None:
                raise ValueError(f"no revision {number} of {deployment}")
            row.outcome = outcome
            session.add(row)
            session.flush()
            return RevisionRecord.from_row(row)

    def revisions(self, deployment: str | None = None) -> list[RevisionRecord]:
        """All revisions (of one deployment, or of all), newest first."""
        with self._read() as session:
            stmt = select(Revision)
            if deployment is not None:
                stmt = stmt.where(Revision.deployment == deployment)
            stmt = stmt.order_by(col(Revision.id).desc())
            return [RevisionRecord.from_row(r) for r in session.exec(stmt)]

    def revision(self, deployment: str, number: int) -> RevisionRecord | None:
        with self._read() as session:
            row = self._get_revision(session, deployment, number)
            return RevisionRecord.from_row(row) if row is not None else None

    def latest_revision(
        self, deployment: str, outcome: str | None = "applied"
    ) -> RevisionRecord | None:
        """The highest-numbered revision with `outcome` (any outcome if None)."""
        if outcome is not None:
            check_choice("outcome", outcome, REVISION_OUTCOMES)
        with self._read() as session:
            row = self._latest(session, deployment, outcome)
            return RevisionRecord.from_row(row) if row is not None else None

    @staticmethod
    def _get_revision(session: Session, deployment: str, number: int) -> Revision | None:
        stmt = select(Revision).where(Revision.deployment == deployment, Revision.number == number)
        return session.exec(stmt).first()

    @staticmethod
    def _latest(session: Session, deployment: str, outcome: str | None) -> Revision | None:
        stmt = select(Revision).where(Revision.deployment == deployment)
        if outcome is not None:
            stmt = stmt.where(Revision.outcome == outcome)
        return session.exec(stmt.order_by(col(Revision.number).desc()).limit(1)).first()
