"""What the store hands out: frozen values with JSON already decoded.

ORM rows stay inside the store: they are bound to a session that is closed by the time a
caller looks at them, and mutating one would be a silent no-op.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleetctl.core.holds import Hold
from fleetctl.state.models import Hold as HoldRow
from fleetctl.state.models import Revision, Rollout, RolloutStep

ROLLOUT_OUTCOMES = ("running", "succeeded", "failed", "partial", "noop")
STEP_ACTIONS = ("create", "recreate", "remove", "keep", "reload")
# reload: a front door's routes, or a model in a shared Triton server (its detail says
# whether the model was loaded, reloaded or unloaded)
STEP_OUTCOMES = ("ok", "failed", "skipped")
REVISION_OUTCOMES = ("applied", "failed", "rolled_back")


@dataclass(frozen=True)
class RolloutRecord:
    id: int
    started_at: datetime  # aware, UTC
    finished_at: datetime | None  # None while outcome is "running"
    command: str
    user: str
    inventory_path: str
    inventory_digest: str
    plan: dict[str, Any]
    outcome: str  # one of ROLLOUT_OUTCOMES
    summary: str

    @classmethod
    def from_row(cls, row: Rollout) -> RolloutRecord:
        assert row.id is not None
        return cls(
            id=row.id,
            started_at=row.started_at,
            finished_at=row.finished_at,
            command=row.command,
            user=row.user,
            inventory_path=row.inventory_path,
            inventory_digest=row.inventory_digest,
            plan=json.loads(row.plan_json),
            outcome=row.outcome,
            summary=row.summary,
        )


@dataclass(frozen=True)
class StepRecord:
    id: int
    rollout_id: int
    deployment: str
    replica: int
    host: str
    action: str  # one of STEP_ACTIONS
    container: str
    started_at: datetime
    finished_at: datetime
    outcome: str  # one of STEP_OUTCOMES
    detail: str
    log_tail: str

    @classmethod
    def from_row(cls, row: RolloutStep) -> StepRecord:
        assert row.id is not None
        return cls(
            id=row.id,
            rollout_id=row.rollout_id,
            deployment=row.deployment,
            replica=row.replica,
            host=row.host,
            action=row.action,
            container=row.container,
            started_at=row.started_at,
            finished_at=row.finished_at,
            outcome=row.outcome,
            detail=row.detail,
            log_tail=row.log_tail,
        )


@dataclass(frozen=True)
class RevisionRecord:
    id: int
    deployment: str  # name@version
    model: str
    version: str
    number: int  # 1, 2, 3... per deployment
    spec_hash: str
    spec: dict[str, Any]
    image: str
    image_digest: str | None
    placement: list[dict[str, Any]]  # [{replica, host, gpus, port}, ...]
    outcome: str  # one of REVISION_OUTCOMES
    rollout_id: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: Revision) -> RevisionRecord:
        assert row.id is not None
        return cls(
            id=row.id,
            deployment=row.deployment,
            model=row.model,
            version=row.version,
            number=row.number,
            spec_hash=row.spec_hash,
            spec=json.loads(row.spec_json),
            image=row.image,
            image_digest=row.image_digest,
            placement=json.loads(row.placement_json),
            outcome=row.outcome,
            rollout_id=row.rollout_id,
            created_at=row.created_at,
        )


def hold_from_row(row: HoldRow) -> Hold:
    """A hold as the rest of fleetctl sees it (the same value `peek.read_holds` builds)."""
    return Hold(
        model=row.model,
        version=row.version,
        revision=row.revision,
        spec=json.loads(row.spec_json),
        inventory_version=row.inventory_version,
        created_at=row.created_at,
        rollout_id=row.rollout_id,
        command=row.command,
    )


def check_choice(field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)}; got {value!r}")
