"""`history`: past rollouts, or the revisions of one deployment, as plain data.

Kept apart from `rollback` so that `fleetctl history` imports only the state store, and
without a state (nothing applied yet) not even that: it says so before SQLAlchemy loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetctl.errors import FleetctlError, NotFoundError

if TYPE_CHECKING:
    from fleetctl.state.records import RevisionRecord

__all__ = ["history"]


def _failure(store: Any, rev: RevisionRecord, steps: dict[int, list[Any]]) -> dict[str, Any] | None:
    """Why a failed revision failed: its rollout's failed step for that deployment."""
    if rev.outcome != "failed":
        return None
    if rev.rollout_id not in steps:
        steps[rev.rollout_id] = store.steps(rev.rollout_id)
    failed = [
        s for s in steps[rev.rollout_id] if s.deployment == rev.deployment and s.outcome == "failed"
    ]
    if not failed:
        return None
    s = failed[0]
    return {
        "replica": s.replica,
        "host": s.host,
        "action": s.action,
        "reason": s.detail,
        "log_tail": s.log_tail,
    }


def history(state_path: Path, deployment: str | None, limit: int = 20) -> dict[str, Any]:
    """Rollouts, or one deployment's revisions (a failed one with its failed step's reason
    and log tail), as plain data for rendering."""
    from fleetctl.state.paths import DatabaseURL

    if not isinstance(state_path, DatabaseURL) and not Path(state_path).exists():
        raise FleetctlError(
            f"no state at {state_path}: nothing has been applied yet (or pass --state)"
        )
    from fleetctl.state.store import StateStore  # SQLAlchemy: only once there is a state

    with StateStore(state_path) as store:
        if deployment:
            revs = store.revisions(deployment)
            if not revs:
                raise NotFoundError(f"no revision of {deployment} in {state_path}")
            steps: dict[int, list[Any]] = {}
            rows = []
            for r in revs:
                failure = _failure(store, r, steps)
                rows.append(
                    {
                        "number": r.number,
                        "created_at": r.created_at.isoformat(timespec="seconds"),
                        "outcome": r.outcome,
                        "image": r.image,
                        "image_digest": r.image_digest,
                        "spec_hash": r.spec_hash,
                        "placement": r.placement,
                        "rollout_id": r.rollout_id,
                        "reason": failure["reason"] if failure else None,
                        "log_tail": failure["log_tail"] if failure else None,
                        "failed_step": failure,
                    }
                )
            hold = store.hold(deployment.partition("@")[0])
            return {
                "deployment": deployment,
                "revisions": rows,
                "hold": hold.to_json()
                if hold is not None and hold.deployment == deployment
                else None,
            }
        return {
            "rollouts": [
                {
                    "id": r.id,
                    "started_at": r.started_at.isoformat(timespec="seconds"),
                    "finished_at": r.finished_at.isoformat(timespec="seconds")
                    if r.finished_at
                    else None,
                    "command": r.command,
                    "user": r.user,
                    "outcome": r.outcome,
                    "summary": r.summary,
                }
                for r in store.rollouts(limit)
            ]
        }
