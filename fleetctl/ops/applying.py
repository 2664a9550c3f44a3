"""`apply` and `down`: lock, observe, plan, confirm, act, record."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from fleetctl.adapters.docker_host import DockerHost, HostAPI
from fleetctl.core.fleet import Deployment
from fleetctl.core.inventory import Inventory
from fleetctl.core.loader import load
from fleetctl.core.observed import ObservedFleet
from fleetctl.core.plan import Action, ActionKind, Plan, plan_to_json
from fleetctl.core.schedule import RolloutPolicy
from fleetctl.errors import AbortedError, InfeasibleError
from fleetctl.ops import downtime, interrupt
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
from fleetctl.ops.recovery import finish_interrupted
from fleetctl.ops.rendering import Rendered, render_action, shared_gpus
from fleetctl.ops.rollout import Executor, Reporter, SilentReporter, StepOutcome
from fleetctl.ops.routing import FrontDoorOutcome, Router
from fleetctl.ops.secrets import read_secret, refuse_secret_values
from fleetctl.runtimes.registry import runtime_names
from fleetctl.state.lock import StateLock

if TYPE_CHECKING:  # the store pulls in SQLAlchemy (~0.5 s): only import it to write
    from fleetctl.state.store import StateStore

Observer = Callable[[Inventory], ObservedFleet]
HostFactory = Callable[[Inventory], Mapping[str, HostAPI]]


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


def deployment_hash(d: Deployment) -> str:
    """The identity of a deployment's spec for revisions (placement excluded)."""
    blob = json.dumps(deployment_record(d), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def deployment_record(d: Deployment) -> dict:
    rec = asdict(d)
    rec["selector"] = dict(d.selector)
    rec["customers"] = list(d.customers)
    return rec


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


def docker_hosts(inventory: Inventory) -> dict[str, HostAPI]:
    return {h.name: DockerHost(h, inventory.fleet) for h in inventory.hosts}


def apply(
    inventory_path: str | Path,
    *,
    state_path: Path,
    observe: Observer,
    confirm: Callable[[Plan], bool],
    hosts: HostFactory = docker_hosts,
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
        host_apis = hosts(reach)
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
                reporter or SilentReporter(),
                command,
                interval_s,
                allow_downtime,
            )
        if not outcome.failed:
            forget_holds(state_path, lifted)
        return outcome


def settle_abandoned(state_path: Path, observed: ObservedFleet) -> None:
    """A run killed after its last change but before its last commit left its rollout
    "running" and its revisions marked failed: close the one, mark the others applied
    (their containers run under final names, so they passed their gates)."""
    from fleetctl.state.peek import abandoned_rollouts

    if not abandoned_rollouts(state_path):
        return
    from fleetctl.state.store import StateStore

    with StateStore(state_path) as store, store.batch():
        store.fail_abandoned_rollouts()
        store.confirm_running(_verified_revisions(observed))


def _verified_revisions(observed: ObservedFleet) -> list[tuple[str, int]]:
    return [
        (c.deployment, c.revision)
        for c in observed.containers()
        if c.running and not (c.temporary or c.parked) and c.revision is not None
    ]


def _refuse_infeasible(plan: Plan) -> None:
    if not plan.placement.feasible:
        reasons = "; ".join(
            f"{u.deployment}#{u.replica}: {', '.join(u.reasons)}" for u in plan.placement.unplaced
        )
        raise InfeasibleError(f"the inventory cannot be placed: {reasons}")


def forget_holds(state_path: Path, models: Sequence[str]) -> None:
    """Delete these models' holds (the caller holds the state lock)."""
    if not models:
        return
    from fleetctl.state.store import StateStore

    with StateStore(state_path) as store:
        for model in models:
            store.delete_hold(model)


def execute_plan(
    result: PlanResult,
    inv: Inventory,
    state_path: Path,
    host_apis: Mapping[str, HostAPI],
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
    store, rollout_id = _open_rollout(state_path, command, result, secret_values)
    with store:
        try:
            numbers = _intend_revisions(
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
        router = Router(plan, inv, host_apis, result.observed)
        journal = Journal(store, rollout_id, reporter)
        executor = Executor(
            hosts=host_apis,
            rendered=rendered,
            secrets=secrets_by_replica,
            reporter=journal,
            max_parallel={h.name: h.max_parallel for h in inv.hosts},
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
                    failed,
                    stop_requested=interrupt.requested,
                )
            router.push()  # the routes once more, as they end
        except BaseException:
            store.finish_rollout(rollout_id, "failed", "interrupted")
            raise
        with store.batch():
            _record_front_doors(store, rollout_id, door_outcomes)
            _record(
                store,
                rollout_id,
                plan,
                outcomes,
                host_apis,
                secret_values,
                numbers,
                journal.recorded,
            )
            _remember_hosts(store, inv, host_apis, outcomes)
    return ApplyResult(
        plan, tuple(outcomes), rollout_id, numbers, tuple(door_outcomes), tuple(router.problems)
    )


class Journal:
    """The executor's reporter that writes each step to the state as it starts and as
    it ends (then passes it on to the reporter the user sees)."""

    def __init__(self, store: StateStore, rollout_id: int, inner: Reporter) -> None:
        self.store, self.rollout_id, self.inner = store, rollout_id, inner
        self._open: dict[tuple[str, int, str, str], list[int]] = {}
        self.recorded: set[int] = set()  # id() of the outcomes already written

    def step_started(self, action: Action) -> None:
        step = self.store.begin_step(
            self.rollout_id,
            deployment=action.deployment,
            replica=action.replica,
            host=action.host,
            action=step_action(action),
            container=action.container or "",
        )
        self._open.setdefault(_key(action), []).append(step)
        self.inner.step_started(action)

    def step_finished(self, outcome: StepOutcome) -> None:
        from datetime import datetime

        opened = self._open.get(_key(outcome.action))
        if opened:
            a = outcome.action
            self.store.end_step(
                opened.pop(0),
                outcome="ok" if outcome.ok else ("skipped" if a.blocked else "failed"),
                detail=outcome.detail,  # outcomes come scrubbed from the executor
                container=outcome.container or a.container or "",
                log_tail=outcome.log_tail,
                finished_at=datetime.fromtimestamp(outcome.finished_at, UTC)
                if outcome.finished_at
                else None,
            )
            self.recorded.add(id(outcome))
        self.inner.step_finished(outcome)


def step_action(a: Action) -> str:
    """The step's action as the state records it: a model loaded, reloaded or unloaded in
    a shared Triton server is a `reload` of that server (its detail says which)."""
    return "reload" if a.model_change else a.kind.value


def _key(a: Action) -> tuple[str, int, str, str]:
    return (a.deployment, a.replica, a.host, a.kind.value)


def _intend_revisions(
    store: StateStore,
    rollout_id: int,
    plan: Plan,
    changing: set[str],
    observed: ObservedFleet,
    secret_values: Sequence[str],
) -> dict[str, int]:
    """Record (as failed, until the end says otherwise) the revision of each deployment
    this rollout changes, and return their numbers. Revisions that verified containers
    run but a killed rollout left marked failed are marked applied first."""
    running = _verified_revisions(observed)
    numbers: dict[str, int] = {}
    with store.batch():
        store.confirm_running(running)
        for d in plan.deployments:
            if d.name not in changing:
                continue
            rec = store.record_revision(
                deployment=d.name,
                model=d.model,
                version=d.version,
                spec_hash=deployment_hash(d),
                spec=deployment_record(d),
                image=d.image,
                image_digest=None,
                placement=[],
                outcome="failed",
                rollout_id=rollout_id,
                forbidden_values=secret_values,
            )
            numbers[d.name] = rec.number
    return numbers


def _remember_hosts(
    store: StateStore,
    inv: Inventory,
    host_apis: Mapping[str, HostAPI],
    outcomes: Sequence[StepOutcome],
) -> None:
    """The state knows every host the fleet uses; a retired one is forgotten once every
    removal on it succeeded."""
    store.remember_hosts(inv.fleet, [h.model_dump(mode="json") for h in inv.hosts])
    listed = {h.name for h in inv.hosts}
    for name in sorted(set(host_apis) - listed):
        if all(o.ok for o in outcomes if o.action.host == name):
            store.forget_host(inv.fleet, name)


def _open_rollout(
    state_path: Path, command: str, result: PlanResult, secret_values: Sequence[str]
) -> tuple[StateStore, int]:
    """Open the store and record the rollout as running; the caller closes the store."""
    from fleetctl.state.store import StateStore

    store = StateStore(state_path)
    try:
        # Under the lock, a rollout still marked running belonged to a killed process.
        store.fail_abandoned_rollouts()
        rollout_id = store.begin_rollout(
            command,
            str(result.loaded.path),
            result.inventory_digest,
            plan_to_json(result.plan),
            forbidden_values=secret_values,
        )
    except BaseException:
        store.close()
        raise
    return store, rollout_id


def _record_steps(store: StateStore, rollout_id: int, outcomes: Sequence[StepOutcome]) -> None:
    from datetime import datetime

    def ts(t: float) -> datetime | None:
        return datetime.fromtimestamp(t, UTC) if t else None

    for o in outcomes:
        a = o.action
        store.record_step(
            rollout_id,
            deployment=a.deployment,
            replica=a.replica,
            host=a.host,
            action=step_action(a),
            container=o.container or a.container or "",
            outcome="ok" if o.ok else ("skipped" if a.blocked else "failed"),
            detail=o.detail,
            log_tail=o.log_tail,
            started_at=ts(o.started_at),
            finished_at=ts(o.finished_at),
        )


def _record_front_doors(
    store: StateStore, rollout_id: int, outcomes: Sequence[FrontDoorOutcome]
) -> None:
    from fleetctl.core.front_door import FRONT_DOOR

    for o in outcomes:
        a = o.action
        store.record_step(
            rollout_id,
            deployment=FRONT_DOOR,
            replica=0,
            host=a.host,
            action=a.kind.value,
            container=a.container or "",
            outcome="ok" if o.ok else ("skipped" if a.blocked else "failed"),
            detail=o.detail,
            log_tail="",
            started_at=None,
            finished_at=None,
        )


def _record(
    store: StateStore,
    rollout_id: int,
    plan: Plan,
    outcomes: Sequence[StepOutcome],
    host_apis: Mapping[str, HostAPI],
    secret_values: Sequence[str],
    numbers: Mapping[str, int],
    journaled: set[int] = frozenset(),  # type: ignore[assignment]
) -> None:
    _record_steps(store, rollout_id, [o for o in outcomes if id(o) not in journaled])
    touched: dict[str, list[StepOutcome]] = {}
    for o in outcomes:
        if o.action.kind is not ActionKind.REMOVE:
            touched.setdefault(o.action.deployment, []).append(o)
    digests: dict[tuple[str, str], str | None] = {}
    for d in plan.deployments:
        if d.name not in touched:
            continue
        ok = all(o.ok for o in touched[d.name])
        placement = [
            {"replica": a.replica, "host": a.host, "gpus": list(a.gpus), "port": a.port}
            for a in plan.actions
            if a.deployment == d.name and a.kind is not ActionKind.REMOVE
        ]
        image = d.image
        host = next((x.host for x in plan.actions if x.deployment == d.name), "")
        if host in host_apis and (host, image) not in digests:
            digests[(host, image)] = host_apis[host].image_digest(image)
        digest = digests.get((host, image))
        if d.name in numbers:
            store.settle_revision(
                d.name,
                numbers[d.name],
                outcome="applied" if ok else "failed",
                rollout_id=rollout_id,
                image_digest=digest,
                placement=placement,
            )
    failed = [o for o in outcomes if not o.ok]
    outcome = (
        "succeeded" if not failed else ("failed" if len(failed) == len(outcomes) else "partial")
    )
    summary = f"{len(outcomes) - len(failed)} ok, {len(failed)} failed"
    if interrupt.requested():
        summary += (
            "; interrupted (SIGINT or SIGTERM): the steps in flight finished, no new one started"
        )
    store.finish_rollout(rollout_id, outcome, summary)


def down(
    inventory_path: str | Path,
    *,
    state_path: Path,
    observe: Observer,
    confirm: Callable[[list[Action]], bool],
    hosts: HostFactory = docker_hosts,
    reporter: Reporter | None = None,
) -> ApplyResult:
    """Remove every managed container on the inventory's hosts."""
    with StateLock(state_path, "down"):
        loaded = load(inventory_path, runtime_names())
        inv = loaded.inventory
        reach = with_retired_hosts(inv, state_path)
        observed = observe(reach)
        from fleetctl.core.front_door import FRONT_DOOR

        removals = [
            Action(
                ActionKind.REMOVE,
                c.deployment,
                c.replica,
                c.host,
                c.gpus,
                c.port,
                c.spec_hash,
                "down",
                c.name,
            )
            for c in sorted(observed.containers(), key=lambda c: (c.host, c.name))
        ] + [
            Action(
                ActionKind.REMOVE, FRONT_DOOR, 0, f.host, (), f.port, f.spec_hash, "down", f.name
            )
            for doors in observed.front_doors().values()
            for f in doors
        ]
        empty = build_plan(loaded, ObservedFleet.empty([h.name for h in inv.hosts]))
        from dataclasses import replace

        plan = replace(empty, actions=tuple(removals))
        if not removals:
            return ApplyResult(plan)
        if not confirm(removals):
            raise AbortedError("down cancelled; nothing was removed")
        from fleetctl.state.store import StateStore

        host_apis = hosts(reach)
        lease = fleet_lease(
            reach, host_apis, "down", unreachable={h.name for h in observed.unreachable()}
        )
        with lease, StateStore(state_path) as store:
            rid = store.begin_rollout(
                "down",
                str(inventory_path),
                inventory_digest(inventory_path),
                {"actions": [a.to_json() for a in removals]},
            )
            ex = Executor(
                host_apis,
                {},
                {},
                reporter or SilentReporter(),
                {h.name: h.max_parallel for h in reach.hosts},
            )
            outcomes = ex.run(removals)
            _record_steps(store, rid, outcomes)
            for name in sorted({h.name for h in reach.hosts} - {h.name for h in inv.hosts}):
                if all(o.ok for o in outcomes if o.action.host == name):
                    store.forget_host(inv.fleet, name)
            failed = [o for o in outcomes if not o.ok]
            store.finish_rollout(
                rid, "succeeded" if not failed else "partial", f"{len(outcomes)} removed"
            )
        return ApplyResult(plan, tuple(outcomes), rid)
