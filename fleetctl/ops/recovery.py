"""Finish forward or restore what an interrupted rollout left (fleetctl.core.recovery).

Runs under the fleet's locks, before the plan's own steps: a successor left as `…-next`
is gated again and takes its final name; if it fails its gate, the parked predecessor
(`…-old`) comes back under the final name instead. Leftovers beside a final-named
container are not touched here: the plan removes them once the routes have left them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from fleetctl.core.inventory import Inventory
from fleetctl.core.observed import ObservedFleet
from fleetctl.core.plan import Action, ActionKind, Plan
from fleetctl.core.recovery import Recovery, RecoveryKind
from fleetctl.ops.readiness import wait_ready
from fleetctl.ops.recording import Step, record_steps
from fleetctl.ports import Check, CheckResult, Clock, HostAPI, Observer
from fleetctl.runtimes.spec import ContainerSpec

if TYPE_CHECKING:
    from pathlib import Path

    from fleetctl.core.loader import LoadedInventory


@dataclass(frozen=True)
class RecoveryOutcome:
    recovery: Recovery
    ok: bool
    detail: str
    container: str
    started_at: float = 0.0
    finished_at: float = 0.0


def gate_spec(plan: Plan, inv: Inventory, r: Recovery) -> ContainerSpec | None:
    """The readiness checks of the recovered replica's deployment (None when the
    deployment has left the inventory: the plan removes it anyway)."""
    from fleetctl.ops.rendering import render_action

    if r.port is None or not any(d.name == r.deployment for d in plan.deployments):
        return None
    if not any(h.name == r.host for h in plan.hosts):
        return None
    probe_action = Action(ActionKind.CREATE, r.deployment, r.replica, r.host, r.gpus, r.port)
    spec = render_action(plan, inv, probe_action, None, set()).spec
    return replace(spec, endpoint=r.endpoint or spec.endpoint)


def recover(
    plan: Plan,
    inv: Inventory,
    hosts: Mapping[str, HostAPI],
    *,
    clock: Clock,
    check: Check,
    interval_s: float = 0.5,
) -> list[RecoveryOutcome]:
    """Carry out `plan.recovery`, each successor gated by its deployment's checks."""
    out = []
    for r in plan.recovery:
        t0 = time.time()
        try:
            spec = gate_spec(plan, inv, r) if r.kind is RecoveryKind.FINISH else None
            ok, detail = _one(r, hosts, spec, clock, interval_s, check)
        except Exception as exc:  # reported; the next run tries again from what it finds
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        out.append(RecoveryOutcome(r, ok, detail, r.final_name, t0, time.time()))
    return out


def _one(
    r: Recovery,
    hosts: Mapping[str, HostAPI],
    spec: ContainerSpec | None,
    clock: Clock,
    interval_s: float,
    check: Check,
) -> tuple[bool, str]:
    host = hosts[r.host]
    if r.kind is RecoveryKind.RESTORE:
        host.rename(r.container, r.final_name)
        host.start(r.final_name)
        return (
            True,
            f"restored {r.container} as {r.final_name} (an interrupted rollout had parked it)",
        )
    if host.state(r.container) != "running":
        host.start(r.container)
    ready = (
        wait_ready(
            spec,
            lambda: host.state(r.container),
            timeout_s=spec.startup_timeout_s,
            interval_s=interval_s,
            clock=clock,
            check=check,
        )
        if spec is not None
        else CheckResult(True, "no longer in the inventory")
    )
    if ready.ok:
        host.rename(r.container, r.final_name)
        return (
            True,
            f"finished an interrupted rollout: {r.container} passed its gate and is {r.final_name}",
        )
    host.remove(r.container, timeout_s=10)
    if r.fallback and r.fallback_host:
        back = hosts[r.fallback_host]
        back.rename(r.fallback, r.final_name)
        back.start(r.final_name)
        return (
            False,
            f"{r.container} failed its gate ({ready.detail}); the parked predecessor serves again",
        )
    return False, f"{r.container} failed its gate ({ready.detail}) and was removed"


def describe(recs: Sequence[Recovery]) -> list[str]:
    return [
        f"{r.kind.value} {r.deployment}#{r.replica} on {r.host}: {r.container} -> {r.final_name}"
        for r in recs
    ]


def finish_interrupted(
    loaded: LoadedInventory,
    observed: ObservedFleet,
    observe: Observer,
    hosts: Mapping[str, HostAPI],
    state_path: Path,
    *,
    clock: Clock,
    check: Check,
    interval_s: float = 0.5,
) -> tuple[ObservedFleet, list[RecoveryOutcome]]:
    """Before planning a change: end what an interrupted rollout left (recorded as a
    rollout of its own), and return the fleet observed again."""
    from fleetctl.core.recovery import recoveries
    from fleetctl.ops.planning import build_plan, inventory_digest

    if not recoveries(observed):
        return observed, []
    plan = build_plan(loaded, observed)
    outcomes = recover(
        plan, loaded.inventory, hosts, clock=clock, check=check, interval_s=interval_s
    )
    _record(state_path, loaded, plan, outcomes, inventory_digest(loaded.path))
    return observe(loaded.inventory), outcomes


def _record(
    state_path: Path,
    loaded: LoadedInventory,
    plan: Plan,
    outcomes: Sequence[RecoveryOutcome],
    digest: str,
) -> None:
    from fleetctl.state.store import StateStore

    with StateStore(state_path) as store:
        store.fail_abandoned_rollouts()
        rid = store.begin_rollout(
            "recover", str(loaded.path), digest, {"recovery": [r.to_json() for r in plan.recovery]}
        )
        record_steps(store, rid, [_step(o) for o in outcomes])
        failed = sum(not o.ok for o in outcomes)
        store.finish_rollout(
            rid,
            "succeeded" if not failed else "partial",
            f"{len(outcomes) - failed} finished, {failed} restored or removed",
        )


def _step(o: RecoveryOutcome) -> Step:
    r = o.recovery
    return Step(
        r.deployment,
        r.replica,
        r.host,
        "recreate",
        o.container,
        "ok" if o.ok else "failed",
        o.detail,
        started_at=o.started_at,
        finished_at=o.finished_at,
    )
