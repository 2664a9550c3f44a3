"""`rollback NAME@VERSION [--to N]`: restore an exact earlier revision of one deployment.

A revision records the resolved deployment spec (image, sizes, runtime settings, never
secret values). Rollback plans the fleet with that recorded spec in place of the
inventory's for this one deployment, executes only that deployment's changes through the
same health-gated rollout as apply, and records the result as a new revision. The
inventory is not rewritten: until it is changed to match, `plan` shows the roll-forward.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

from fleetctl.core.fleet import Deployment
from fleetctl.core.plan import Plan
from fleetctl.core.resolve import deployments
from fleetctl.errors import AbortedError, FleetctlError, InfeasibleError, NotFoundError
from fleetctl.ops.applying import ApplyResult, HostFactory, Observer, docker_hosts, execute_plan
from fleetctl.core.loader import load
from fleetctl.ops.planning import PlanResult, build_plan, inventory_digest
from fleetctl.ops.rollout import Reporter, SilentReporter
from fleetctl.runtimes.registry import runtime_names
from fleetctl.state.lock import StateLock


def deployment_from_record(spec: Mapping[str, Any]) -> Deployment:
    """Rebuild the exact deployment a revision recorded (the inverse of deployment_record)."""
    data = dict(spec)
    data["customers"] = tuple(data.get("customers") or ())
    data["selector"] = dict(data.get("selector") or {})
    data["settings"] = dict(data.get("settings") or {})
    return Deployment(**data)


def rollback(
    inventory_path: str | Path,
    deployment: str,
    *,
    to: int | None,
    state_path: Path,
    observe: Observer,
    confirm: Callable[[Plan, int], bool],
    hosts: HostFactory = docker_hosts,
    reporter: Reporter | None = None,
    interval_s: float = 0.5,
) -> tuple[ApplyResult, int]:
    """Returns the apply result and the revision number that was restored."""
    from fleetctl.state.store import StateStore

    command = f"rollback {deployment}" + (f" --to {to}" if to is not None else "")
    with StateLock(state_path, command):
        loaded = load(inventory_path, runtime_names())
        inv = loaded.inventory
        with StateStore(state_path) as store:
            applied = [r for r in store.revisions(deployment) if r.outcome == "applied"]
            if not applied:
                raise NotFoundError(f"no applied revision of {deployment} in {state_path}")
            current = applied[0]
            if to is None:
                if len(applied) < 2:
                    raise NotFoundError(f"{deployment} has only revision {current.number}: nothing earlier to roll back to")
                target = applied[1]
            else:
                found = store.revision(deployment, to)
                if found is None:
                    known = ", ".join(str(r.number) for r in store.revisions(deployment))
                    raise NotFoundError(f"{deployment} has no revision {to} (known: {known})")
                target = found
        restored = deployment_from_record(target.spec)
        wanted = [restored if d.name == deployment else d for d in deployments(inv)]
        if restored.name not in {d.name for d in wanted}:
            wanted.append(restored)  # rolled back to a version the inventory no longer lists
        observed = observe(inv)
        plan = build_plan(loaded, observed, wanted)
        if not plan.placement.feasible:
            raise InfeasibleError(f"revision {target.number} of {deployment} cannot be placed now")
        # Only this deployment moves; everything else is left exactly as it runs.
        plan = replace(plan, actions=tuple(a for a in plan.actions if a.deployment == deployment))
        if not plan.has_changes:
            return ApplyResult(plan), target.number
        if not confirm(plan, target.number):
            raise AbortedError("rollback cancelled; nothing was changed")
        result = PlanResult(loaded, observed, plan, inventory_digest(inventory_path))
        outcome = execute_plan(result, inv, state_path, hosts(inv), reporter or SilentReporter(), command, interval_s)
        if not outcome.failed and current.spec_hash != target.spec_hash:
            with StateStore(state_path) as store:
                store.set_revision_outcome(deployment, current.number, "rolled_back")
        return outcome, target.number


def history(state_path: Path, deployment: str | None, limit: int = 20) -> dict[str, Any]:
    """Rollouts, or one deployment's revisions, as plain data for rendering."""
    from fleetctl.state.store import StateStore

    if not Path(state_path).exists():
        raise FleetctlError(f"no state at {state_path}: nothing has been applied yet (or pass --state)")
    with StateStore(state_path) as store:
        if deployment:
            revs = store.revisions(deployment)
            if not revs:
                raise NotFoundError(f"no revision of {deployment} in {state_path}")
            return {
                "deployment": deployment,
                "revisions": [
                    {
                        "number": r.number,
                        "created_at": r.created_at.isoformat(timespec="seconds"),
                        "outcome": r.outcome,
                        "image": r.image,
                        "image_digest": r.image_digest,
                        "spec_hash": r.spec_hash,
                        "placement": r.placement,
                        "rollout_id": r.rollout_id,
                    }
                    for r in revs
                ],
            }
        return {
            "rollouts": [
                {
                    "id": r.id,
                    "started_at": r.started_at.isoformat(timespec="seconds"),
                    "finished_at": r.finished_at.isoformat(timespec="seconds") if r.finished_at else None,
                    "command": r.command,
                    "user": r.user,
                    "outcome": r.outcome,
                    "summary": r.summary,
                }
                for r in store.rollouts(limit)
            ]
        }
