"""Carrying out a confirmed plan: secrets read, intent recorded, front doors, replicas,
model changes in shared Triton servers, then the outcome recorded.

Shared by `apply`, `rollback` and `health --heal` (which restricts the plan first)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fleetctl.core.inventory import Inventory
from fleetctl.core.plan import ActionKind, Plan
from fleetctl.core.schedule import RolloutPolicy
from fleetctl.ops import downtime, interrupt
from fleetctl.ops.planning import PlanResult
from fleetctl.ops.recording import (
    Journal,
    front_door_step,
    intend_revisions,
    open_rollout,
    record_steps,
    remember_hosts,
    settle_rollout,
)
from fleetctl.ops.rendering import Rendered, render_action, shared_gpus
from fleetctl.ops.rollout import Executor, Reporter, StepOutcome
from fleetctl.ops.routing import FrontDoorOutcome, Router
from fleetctl.ops.secrets import read_secret
from fleetctl.ports import HostAPI, Outside


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    outcomes: tuple[StepOutcome, ...] = ()
    rollout_id: int | None = None
    revisions: Mapping[str, int] = field(default_factory=dict)
    front_doors: tuple[FrontDoorOutcome, ...] = ()
    routing_problems: tuple[str, ...] = ()

    @property
    def noop(self) -> bool:
        return not self.plan.has_changes

    @property
    def failed(self) -> list[StepOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def failed_front_doors(self) -> list[FrontDoorOutcome]:
        return [o for o in self.front_doors if not o.ok]


def resolve_secrets(
    rendered: Mapping[tuple[str, int], Rendered],
) -> dict[tuple[str, int], dict[str, str]]:
    """Read every secret reference now, before anything changes; name a missing one, never a value."""
    cache: dict[str, str] = {}
    out: dict[tuple[str, int], dict[str, str]] = {}
    for key, r in rendered.items():
        values: dict[str, str] = {}
        for s in r.spec.secret_env:
            if s.source not in cache:
                cache[s.source] = read_secret(s, key[0])
            values[s.name] = cache[s.source]
        out[key] = values
    return out


def policies(inv: Inventory) -> dict[str, RolloutPolicy]:
    return {
        m.name: RolloutPolicy(
            m.rollout.max_surge, m.rollout.max_unavailable, m.rollout.allow_downtime
        )
        for m in inv.models
    }


def execute_plan(
    result: PlanResult,
    inv: Inventory,
    state_path: Path,
    host_apis: Mapping[str, HostAPI],
    outside: Outside,
    reporter: Reporter,
    command: str,
    interval_s: float = 0.5,
    allow_downtime: bool = False,
) -> ApplyResult:
    """Run the plan's steps, each recorded before it runs and its outcome after.

    Intent comes first: the rollout and the revision of every deployment it changes are
    committed before the first container moves, so each container's revision label
    names a row of the state even if this process dies at any point after."""
    plan = result.plan
    downtime.check_permitted(plan, inv, allow_downtime)
    changing = [a for a in plan.actions if a.kind in (ActionKind.CREATE, ActionKind.RECREATE)]
    model_changes = [a for a in plan.actions if a.model_change]
    shared = shared_gpus(plan)
    # Secrets are read before anything is recorded or changed: a missing one stops here.
    secrets_by_replica = resolve_secrets(
        {(a.deployment, a.replica): render_action(plan, inv, a, None, shared) for a in changing}
    )
    secret_values = sorted({v for s in secrets_by_replica.values() for v in s.values()})
    store, rollout_id = open_rollout(state_path, command, result, secret_values)
    with store:
        try:
            numbers = intend_revisions(
                store,
                rollout_id,
                plan,
                {a.deployment for a in [*changing, *model_changes]},
                result.observed,
                secret_values,
            )
        except BaseException:
            store.finish_rollout(rollout_id, "failed", "stopped before any change")
            raise
        rendered = {
            (a.deployment, a.replica): render_action(plan, inv, a, numbers[a.deployment], shared)
            for a in changing
        }
        probes = outside.probes
        router = Router(
            plan,
            inv,
            host_apis,
            result.observed,
            status=probes.front_door_status,
            clock=outside.clock,
            check=probes.probe,
        )
        journal = Journal(store, rollout_id, reporter)
        executor = Executor(
            hosts=host_apis,
            rendered=rendered,
            secrets=secrets_by_replica,
            reporter=journal,
            max_parallel={h.name: h.max_parallel for h in inv.hosts},
            clock=outside.clock,
            check=probes.probe,
            port_taken=probes.port_answers,
            interval_s=interval_s,
            router=router,
        )
        try:
            # Front doors first, so traffic has somewhere to go while replicas move, and
            # their routes as they stand: a rollback to a running version takes its
            # clients here, at once.
            door_outcomes = router.converge_front_doors(plan.front_doors)
            router.push()
            outcomes = executor.run(
                [a for a in plan.actions if not a.model_change], plan.deployments, policies(inv)
            )
            if model_changes:  # models in running shared Triton servers, once the containers stand
                from fleetctl.ops.triton_models import run_model_changes

                addresses = {h.name: h.address for h in inv.hosts}
                failed = [(o.action.deployment, o.action.replica) for o in outcomes if not o.ok]
                outcomes += run_model_changes(
                    model_changes,
                    plan,
                    addresses,
                    journal,
                    outside.triton,
                    failed,
                    stop_requested=interrupt.requested,
                )
            router.push()  # the routes once more, as they end
        except BaseException:
            store.finish_rollout(rollout_id, "failed", "interrupted")
            raise
        with store.batch():
            record_steps(store, rollout_id, [front_door_step(o) for o in door_outcomes])
            settle_rollout(store, rollout_id, plan, outcomes, host_apis, numbers, journal.recorded)
            remember_hosts(store, inv, host_apis, outcomes)
    return ApplyResult(
        plan, tuple(outcomes), rollout_id, numbers, tuple(door_outcomes), tuple(router.problems)
    )
