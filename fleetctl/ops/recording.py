"""What a rollout writes to the state: the rollout, its revisions, each step, the hosts.

Intent comes first: the rollout and the revision of every deployment it changes are
committed before the first container moves (marked failed until the end says
otherwise), each step is written as it starts and again with its outcome (`Journal`),
and at the end each revision gets its outcome, image digest and placement. Every step
of every command (apply, down, a recovery, a front door) goes through one recorder,
`record_steps`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fleetctl.core.front_door import FRONT_DOOR
from fleetctl.core.inventory import Inventory
from fleetctl.core.observed import ObservedFleet
from fleetctl.core.plan import Action, ActionKind, Plan, plan_to_json
from fleetctl.core.revisions import deployment_hash, deployment_record
from fleetctl.ops import interrupt
from fleetctl.ops.planning import PlanResult
from fleetctl.ops.rollout import Reporter, StepOutcome
from fleetctl.ops.routing import FrontDoorOutcome
from fleetctl.ports import HostAPI, StepStore

if TYPE_CHECKING:  # the store pulls in SQLAlchemy (~0.5 s): only import it to write
    from fleetctl.state.store import StateStore


# -- steps -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One step as the state records it."""

    deployment: str
    replica: int
    host: str
    action: str
    container: str
    outcome: str  # ok, failed or skipped
    detail: str
    log_tail: str = ""
    started_at: float = 0.0  # epoch seconds; 0: not known
    finished_at: float = 0.0


def step_action(a: Action) -> str:
    """The step's action as the state records it: a model loaded, reloaded or unloaded in
    a shared Triton server is a `reload` of that server (its detail says which)."""
    return "reload" if a.model_change else a.kind.value


def _outcome(ok: bool, blocked: object) -> str:
    return "ok" if ok else ("skipped" if blocked else "failed")


def replica_step(o: StepOutcome) -> Step:
    a = o.action
    return Step(
        a.deployment,
        a.replica,
        a.host,
        step_action(a),
        o.container or a.container or "",
        _outcome(o.ok, a.blocked),
        o.detail,  # outcomes come scrubbed from the executor
        o.log_tail,
        o.started_at,
        o.finished_at,
    )


def front_door_step(o: FrontDoorOutcome) -> Step:
    a = o.action
    return Step(
        FRONT_DOOR, 0, a.host, a.kind.value, a.container or "", _outcome(o.ok, a.blocked), o.detail
    )


def _when(t: float) -> datetime | None:
    return datetime.fromtimestamp(t, UTC) if t else None


def record_steps(store: StepStore, rollout_id: int, steps: Iterable[Step]) -> None:
    """Write finished steps (the one recorder every command's steps go through)."""
    for s in steps:
        store.record_step(
            rollout_id,
            deployment=s.deployment,
            replica=s.replica,
            host=s.host,
            action=s.action,
            container=s.container,
            outcome=s.outcome,
            detail=s.detail,
            log_tail=s.log_tail,
            started_at=_when(s.started_at),
            finished_at=_when(s.finished_at),
        )


class Journal:
    """The executor's reporter that writes each step to the state as it starts and as
    it ends (then passes it on to the reporter the user sees)."""

    def __init__(self, store: StepStore, rollout_id: int, inner: Reporter) -> None:
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
        opened = self._open.get(_key(outcome.action))
        if opened:
            s = replica_step(outcome)
            self.store.end_step(
                opened.pop(0),
                outcome=s.outcome,
                detail=s.detail,
                container=s.container,
                log_tail=s.log_tail,
                finished_at=_when(s.finished_at),
            )
            self.recorded.add(id(outcome))
        self.inner.step_finished(outcome)


def _key(a: Action) -> tuple[str, int, str, str]:
    return (a.deployment, a.replica, a.host, a.kind.value)


# -- the rollout and its revisions -------------------------------------------------------
def open_rollout(
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


def verified_revisions(observed: ObservedFleet) -> list[tuple[str, int]]:
    """The revisions containers run under their final names: they passed their gates."""
    return [
        (c.deployment, c.revision)
        for c in observed.containers()
        if c.running and not (c.temporary or c.parked) and c.revision is not None
    ]


def intend_revisions(
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
    running = verified_revisions(observed)
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


def settle_rollout(
    store: StateStore,
    rollout_id: int,
    plan: Plan,
    outcomes: Sequence[StepOutcome],
    host_apis: Mapping[str, HostAPI],
    numbers: Mapping[str, int],
    journaled: set[int] = frozenset(),  # type: ignore[assignment]
) -> None:
    """The end of a rollout: the steps not journaled yet, each revision's outcome, image
    digest and placement, and the rollout's outcome."""
    record_steps(store, rollout_id, [replica_step(o) for o in outcomes if id(o) not in journaled])
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


# -- the state between rollouts ----------------------------------------------------------
def remember_hosts(
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
        store.confirm_running(verified_revisions(observed))


def forget_holds(state_path: Path, models: Sequence[str]) -> None:
    """Delete these models' holds (the caller holds the state lock)."""
    if not models:
        return
    from fleetctl.state.store import StateStore

    with StateStore(state_path) as store:
        for model in models:
            store.delete_hold(model)
