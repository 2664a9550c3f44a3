"""`apply`: lock, load, observe, plan, confirm, execute (fleetctl.ops.execution), and
forget the holds the inventory has moved past."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fleetctl.core.plan import Plan
from fleetctl.errors import AbortedError, InfeasibleError
from fleetctl.ops import downtime
from fleetctl.ops.execution import ApplyResult, execute_plan
from fleetctl.ops.fleet_lock import fleet_lease
from fleetctl.ops.planfile import check_fresh, read_plan
from fleetctl.ops.planning import (
    PlanResult,
    build_plan,
    held_deployments,
    inventory_digest,
    read_holds,
    with_retired_hosts,
)
from fleetctl.ops.recording import forget_holds, settle_abandoned
from fleetctl.ops.recovery import finish_interrupted
from fleetctl.ops.rollout import Reporter, SilentReporter
from fleetctl.ops.secrets import refuse_secret_values
from fleetctl.ports import Outside
from fleetctl.runtimes.inventory import load
from fleetctl.runtimes.registry import runtime_names
from fleetctl.state.lock import StateLock

__all__ = ["ApplyResult", "apply"]


def apply(
    inventory_path: str | Path,
    *,
    state_path: Path,
    outside: Outside,
    confirm: Callable[[Plan], bool],
    reporter: Reporter | None = None,
    plan_file: Path | None = None,
    command: str = "apply",
    interval_s: float = 0.5,
    allow_downtime: bool = False,
) -> ApplyResult:
    with StateLock(state_path, command):
        loaded = load(inventory_path, runtime_names())
        refuse_secret_values(loaded)  # a secret's value spelled out in the inventory
        inv = loaded.inventory
        # The hosts to observe and act on: the inventory's and any it no longer lists.
        reach = with_retired_hosts(inv, state_path)
        observe = outside.observe
        observed = observe(reach)
        holds = read_holds(state_path)
        plan = build_plan(loaded, observed, holds=holds)
        if plan_file is not None:
            check_fresh(
                read_plan(plan_file),
                PlanResult(loaded, observed, plan, inventory_digest(inventory_path)),
                plan_file,
            )
        # Holds the inventory has moved past (its version of the model changed since the
        # rollback): the plan already follows the inventory; a successful apply forgets them.
        lifted = held_deployments(inv, holds).lifted
        _refuse_infeasible(plan)
        if not plan.has_changes:
            forget_holds(state_path, lifted)  # writes only when there are lifted holds
            settle_abandoned(state_path, observed)  # writes only after a killed run
            return ApplyResult(plan)  # nothing to do: no Docker mutation, no state write
        host_apis = outside.hosts(reach)
        with fleet_lease(
            reach, host_apis, command, unreachable={h.name for h in observed.unreachable()}
        ):
            # Under the fleet's lease the fleet is ours: plan once more from what it is now.
            observed = observe(reach)
            plan = build_plan(loaded, observed, holds=holds)
            if plan.recovery:  # a killed run's replicas first: finished forward or restored
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
                plan = build_plan(loaded, observed, holds=holds)
            _refuse_infeasible(plan)
            if not plan.has_changes:
                forget_holds(state_path, lifted)
                settle_abandoned(state_path, observed)
                return ApplyResult(plan)
            plan = downtime.gate(
                plan, inv, state_path, allow_downtime
            )  # before asking: it would be refused
            result = PlanResult(loaded, observed, plan, inventory_digest(inventory_path))
            if not confirm(plan):
                raise AbortedError("apply cancelled; nothing was changed")
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
        if not outcome.failed:
            forget_holds(state_path, lifted)
        return outcome


def _refuse_infeasible(plan: Plan) -> None:
    if not plan.placement.feasible:
        reasons = "; ".join(
            f"{u.deployment}#{u.replica}: {', '.join(u.reasons)}" for u in plan.placement.unplaced
        )
        raise InfeasibleError(f"the inventory cannot be placed: {reasons}")
