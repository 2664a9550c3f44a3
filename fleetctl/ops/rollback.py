"""`rollback MODEL[@VERSION]`: make one recorded revision the version every customer gets.

A revision records the resolved deployment spec (image, sizes, runtime settings, never
secret values). `rollback chat-llm@v3` takes the latest stable ("applied") revision of
chat-llm@v3 (or `--to-revision N`), and plans the fleet with it as chat-llm's current
version, in place of the current one (fleetctl.core.holds.hold_model). `rollback chat-llm`
goes back one stable revision of the model's current deployment. Only the model's changes
are executed, through the same health-gated rollout as apply.

The inventory is not rewritten. A successful rollback records a hold, so that `plan` and
`apply` keep the model where the rollback put it until `fleetctl release MODEL`, or until
the inventory's version of the model changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from fleetctl.core.fleet import Deployment
from fleetctl.core.holds import (
    Hold,
    apply_holds,
    current_deployment,
    deployment_from_record,
    hold_model,
    rollback_note,
)
from fleetctl.core.loader import LoadedInventory
from fleetctl.core.observed import ObservedFleet
from fleetctl.core.plan import ActionKind, Plan
from fleetctl.core.recovery import recoveries
from fleetctl.core.resolve import deployments
from fleetctl.errors import (
    AbortedError,
    FleetctlError,
    InfeasibleError,
    NotFoundError,
    UnstableRevisionError,
)
from fleetctl.ops import downtime
from fleetctl.ops.execution import ApplyResult, execute_plan
from fleetctl.ops.fleet_lock import fleet_lease
from fleetctl.ops.planning import (
    PlanResult,
    build_plan,
    inventory_digest,
    read_holds,
    with_retired_hosts,
)
from fleetctl.ops.recording import settle_abandoned
from fleetctl.ops.recovery import finish_interrupted
from fleetctl.ops.rollout import Reporter, SilentReporter
from fleetctl.ops.secrets import refuse_secret_values
from fleetctl.ports import Outside
from fleetctl.runtimes.inventory import load
from fleetctl.runtimes.registry import runtime_names
from fleetctl.state.lock import StateLock

if TYPE_CHECKING:  # the store pulls in SQLAlchemy: imported where it is used
    pass

__all__ = [
    "RollbackResult",
    "choose_revision",
    "deployment_from_record",
    "parse_target",
    "rollback",
]

STABLE = "applied"


@dataclass(frozen=True)
class RollbackResult:
    result: ApplyResult
    model: str
    deployment: str  # the restored deployment, name@version
    revision: int  # its restored revision number
    hold: Hold | None  # the hold recorded (None when the rollout failed)


def parse_target(text: str) -> tuple[str, str | None]:
    """`chat-llm@v3` -> ("chat-llm", "v3"); `chat-llm` -> ("chat-llm", None)."""
    model, sep, version = text.partition("@")
    if not model or (sep and not version):
        raise FleetctlError(f"{text!r}: name MODEL or MODEL@VERSION (e.g. chat-llm@v3)")
    return model, version or None


class _Revision(Protocol):
    """What choosing needs of a revision (the store's record or peek's)."""

    @property
    def number(self) -> int: ...
    @property
    def outcome(self) -> str: ...


R = TypeVar("R", bound=_Revision)


def choose_revision(
    revisions: Sequence[R],
    deployment: str,
    *,
    to: int | None,
    force: bool,
    previous: bool,
) -> R:
    """Which recorded revision a rollback restores (pure; `revisions` newest first).

    `to`: that number, refused unless stable or `force`. Otherwise `previous` (`rollback
    MODEL`): the stable revision before the latest stable one; else the latest stable one
    (with `force` and none stable: the latest of any outcome).
    """
    if not revisions:
        raise NotFoundError(f"no revision of {deployment} is recorded in the state")
    known = ", ".join(f"{r.number} ({r.outcome})" for r in revisions)
    if to is not None:
        found = next((r for r in revisions if r.number == to), None)
        if found is None:
            raise NotFoundError(f"{deployment} has no revision {to} (known: {known})")
        if found.outcome != STABLE and not force:
            raise UnstableRevisionError(
                f"revision {to} of {deployment} is {found.outcome}, not stable; --force restores it anyway"
            )
        return found
    stable = [r for r in revisions if r.outcome == STABLE]
    if previous:
        if len(stable) < 2:
            raise NotFoundError(
                f"{deployment} has no stable revision before its current one (known: {known})"
            )
        return stable[1]
    if stable:
        return stable[0]
    if force:
        return revisions[0]
    raise NotFoundError(
        f"{deployment} has no stable revision (known: {known}); --to-revision N --force restores one"
    )


def _model_only(plan: Plan, model: str, target: str) -> Plan:
    """The plan with only `model`'s replica actions (its retired versions' removals too):
    everything else is left exactly as it runs."""
    wanted = {d.name for d in plan.deployments}
    actions = tuple(
        replace(a, reason=f"retired: every customer moves to {target}")
        if a.kind is ActionKind.REMOVE and a.deployment not in wanted
        else a
        for a in plan.actions
        if a.deployment.partition("@")[0] == model
    )
    counts = {k.value: sum(1 for a in actions if a.kind is k) for k in ActionKind}
    return replace(plan, actions=actions, summary=replace(plan.summary, changes=counts))


def _running(observed: ObservedFleet, deployment: str) -> bool:
    return any(
        c.deployment == deployment and c.running and not (c.temporary or c.parked)
        for c in observed.containers()
    )


def plan_rollback(
    loaded: LoadedInventory,
    observed: ObservedFleet,
    holds: Sequence[Hold],
    before: Deployment,
    restored: Deployment,
    revision: int,
) -> Plan:
    """The rollback's plan: `restored` (revision `revision`) replaces `before` as its
    model's current version.

    The fleet is the inventory with every other model's hold honoured (their routes must
    not change), and `restored` as the model's current version (`hold_model`).
    """
    model = before.model
    base = list(
        apply_holds(
            deployments(loaded.inventory), [h for h in holds if h.model != model]
        ).deployments
    )
    wanted = hold_model(base, model, restored)
    target = restored.name
    plan = _model_only(build_plan(loaded, observed, wanted), model, target)
    retired = before.name if before.name not in {d.name for d in wanted} else None
    plan = replace(plan, notes=plan.notes + (rollback_note(model, target, revision, retired),))
    if target != before.name and _running(observed, target):
        # The target already serves (a pin): clients move to it at once, and the old
        # current version drains only after the target has scaled up.
        plan = replace(plan, switch_at_once=frozenset({model}))
    return plan


def rollback(
    inventory_path: str | Path,
    target: str,
    *,
    to: int | None,
    state_path: Path,
    outside: Outside,
    confirm: Callable[[Plan, int], bool],
    force: bool = False,
    reporter: Reporter | None = None,
    interval_s: float = 0.5,
    allow_downtime: bool = False,
) -> RollbackResult:
    """Plan, confirm, execute and record a rollback (see the module doc). The store (and
    SQLAlchemy, ~0.4 s) is only imported after the switch: choosing reads `peek`."""

    model, version = parse_target(target)
    command = (
        f"rollback {target}"
        + (f" --to-revision {to}" if to is not None else "")
        + (" --force" if force else "")
    )
    with StateLock(state_path, command):
        loaded = load(inventory_path, runtime_names())
        refuse_secret_values(loaded)  # a secret's value spelled out in the inventory
        inv = loaded.inventory
        asked = current_deployment(deployments(inv), model)
        if asked is None:
            raise NotFoundError(f"model {model} is not in the inventory {inventory_path}")
        holds = read_holds(state_path)
        # The version customers get now: the inventory's, or the one a hold keeps.
        current = current_deployment(apply_holds(deployments(inv), holds).deployments, model)
        assert current is not None
        name = f"{model}@{version}" if version else current.name
        from fleetctl.state import peek

        chosen = choose_revision(
            peek.revisions(state_path, name), name, to=to, force=force, previous=version is None
        )
        # What runs now, before anything is recorded: its latest applied revision.
        replaced = next(
            (r for r in peek.revisions(state_path, current.name) if r.outcome == "applied"), None
        )
        restored = deployment_from_record(chosen.spec)
        reach = with_retired_hosts(inv, state_path)
        observe = outside.observe
        host_apis = outside.hosts(reach)
        seen = observe(reach)  # which hosts answer: the lease skips the others
        with fleet_lease(
            reach, host_apis, command, unreachable={h.name for h in seen.unreachable()}
        ):
            observed = observe(reach)
            if recoveries(observed):  # a killed run's replicas first: finished forward or restored
                observed, _ = finish_interrupted(
                    loaded,
                    observed,
                    lambda _inv: observe(reach),
                    host_apis,
                    state_path,
                    clock=outside.clock,
                    check=outside.probes.probe,
                    interval_s=interval_s,
                )
            plan = plan_rollback(loaded, observed, holds, current, restored, chosen.number)
            if not plan.placement.feasible:
                raise InfeasibleError(f"revision {chosen.number} of {name} cannot be placed now")
            plan = downtime.gate(
                plan, inv, state_path, allow_downtime
            )  # before asking: it would be refused
            if plan.has_changes and not confirm(plan, chosen.number):
                raise AbortedError("rollback cancelled; nothing was changed")
            outcome = ApplyResult(plan)
            if plan.has_changes:
                result = PlanResult(loaded, observed, plan, inventory_digest(inventory_path))
                outcome = execute_plan(
                    result,
                    inv,
                    state_path,
                    host_apis,
                    outside,
                    reporter or SilentReporter(),
                    command,
                    interval_s,
                    allow_downtime,
                )
        if outcome.failed:
            return RollbackResult(outcome, model, name, chosen.number, None)
        if not plan.has_changes:
            settle_abandoned(state_path, observed)  # a killed earlier run's records
        from fleetctl.state.store import StateStore

        with StateStore(state_path) as store:
            retired = current.name not in {d.name for d in plan.deployments}
            if replaced is not None and (
                retired or (current.name == name and replaced.spec_hash != chosen.spec_hash)
            ):
                store.set_revision_outcome(current.name, replaced.number, "rolled_back")
            same = store.hold(model)
            if same is not None and (same.version, same.revision, same.inventory_version) == (
                restored.version,
                chosen.number,
                asked.version,
            ):
                return RollbackResult(
                    outcome, model, name, chosen.number, same
                )  # already held there
            hold = store.set_hold(
                model=model,
                version=restored.version,
                revision=chosen.number,
                spec=chosen.spec,
                inventory_version=asked.version,
                rollout_id=outcome.rollout_id,
                command=command,
            )
        return RollbackResult(outcome, model, name, chosen.number, hold)
