"""`health --heal`: repair what the sweep judged critical, and only that.

Under the state lock apply takes (`StateLock`), so a heal never races an apply, a
rollback or another heal: when the lock is held, the sweep still runs and reports, and
says it healed nothing. What is done, per critical replica:

- a stopped container (exited, created, dead) is started;
- a missing container is recreated through apply's own execution path
  (`execute_plan`, with the plan restricted to those replicas' `create` actions, as
  rollback restricts a plan to one model), recorded as a rollout like any apply;
- a Triton whose declared models are unloaded gets them loaded again (`load_model`);
- a running container that stays unready past its grace is restarted.

A crash loop is left alone (Docker's restart policy is already restarting it; its log
says why); so is a container Docker is restarting, and anything not critical: a healthy
or degraded replica is never touched. Each repair is then checked: the replica must
pass its readiness checks within `timeout_s` (a recreation: within its start-up budget,
as apply's gate).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from fleetctl.core.fleet import ReplicaKey
from fleetctl.core.plan import ActionKind
from fleetctl.errors import LockedError
from fleetctl.ops.health.model import (
    HealAction,
    HealthReport,
    ReplicaHealth,
    ReplicaState,
    Target,
    Verdict,
)
from fleetctl.ops.health.sweeping import Swept, run_sweep
from fleetctl.ops.readiness import wait_ready
from fleetctl.ports import HostAPI, Outside
from fleetctl.state.health_store import Event

DEFAULT_HEAL_TIMEOUT_S = 120.0


def sweep_and_heal(
    path: str | Path,
    outside: Outside,
    *,
    state_path: Path,
    heal_timeout_s: float = DEFAULT_HEAL_TIMEOUT_S,
    **sweep_options: object,
) -> HealthReport:
    """Lock, sweep, repair, record; without the lock: sweep only, and say why."""
    from fleetctl.state.lock import StateLock

    def sweep() -> Swept:
        return run_sweep(
            path,
            outside.observe,
            state_path=state_path,
            inspectors=outside.inspectors,
            **sweep_options,  # type: ignore[arg-type]
        )

    lock = StateLock(state_path, "health --heal")
    try:
        lock.acquire()
    except LockedError as exc:
        report = sweep().report
        return replace(report, healing=True, heal_note=f"nothing healed: {exc.message}")
    try:
        swept = sweep()
        actions = heal(swept, state_path=state_path, timeout_s=heal_timeout_s, outside=outside)
        if swept.memory is not None:
            swept.memory.record(heal_events(actions, swept.report.replicas))
        return replace(swept.report, healing=True, healed=tuple(actions))
    finally:
        lock.release()


def heal_events(actions: Sequence[HealAction], replicas: Sequence[ReplicaHealth]) -> list[Event]:
    verdicts = {r.key: r.verdict.value for r in replicas}
    now = time.time()
    return [
        Event(
            now,
            a.deployment,
            a.replica,
            a.host,
            "heal",
            verdicts.get(ReplicaKey(a.deployment, a.replica), ""),
            f"{a.action} {a.target}: {'ok' if a.ok else 'failed'}: {a.detail}".strip(),
        )
        for a in actions
    ]


def choose(r: ReplicaHealth, t: Target) -> str:
    """What to do for a critical replica (pure): start, restart, recreate, load_model or
    `none: why`."""
    if r.crash_loop:
        return "none: crash loop; Docker's restart policy already restarts it (its log says why)"
    if r.state is ReplicaState.MISSING:
        return "recreate"
    if r.state is ReplicaState.STOPPED:
        if r.container_state == "restarting":
            return "none: Docker's restart policy is restarting it"
        if r.container_state == "paused":
            return "none: paused by hand (docker unpause it)"
        return "start"
    if r.state is ReplicaState.UNHEALTHY:
        if t.runtime == "triton" and r.triton is not None and r.triton.unloaded:
            return "load_model"
        return "restart"
    return f"none: {r.state.value}"


def heal(swept: Swept, *, state_path: Path, timeout_s: float, outside: Outside) -> list[HealAction]:
    by_key = {t.key: t for t in swept.targets}
    critical = [r for r in swept.report.replicas if r.verdict is Verdict.CRITICAL]
    if not critical:
        return []
    apis = outside.hosts(swept.loaded.inventory)
    todo: list[tuple[ReplicaHealth, Target, str]] = []
    out: list[HealAction] = []
    for r in critical:
        what = choose(r, by_key[r.key])
        if what.startswith("none"):
            out.append(
                HealAction(
                    r.deployment,
                    r.replica,
                    r.host,
                    "none",
                    False,
                    what.partition(": ")[2],
                    r.container,
                )
            )
        else:
            todo.append((r, by_key[r.key], what))
    recreate = [(r, t) for r, t, what in todo if what == "recreate"]
    in_place = [(r, t, what) for r, t, what in todo if what != "recreate"]
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(in_place)))) as pool:
        out.extend(
            pool.map(lambda x: _in_place(x[0], x[1], x[2], apis, outside, timeout_s), in_place)
        )
    if recreate:
        out.extend(_recreate(swept, [r for r, _ in recreate], apis, outside, state_path))
    return sorted(out, key=lambda a: (a.deployment, a.replica))


def _in_place(
    r: ReplicaHealth,
    t: Target,
    what: str,
    apis: Mapping[str, HostAPI],
    outside: Outside,
    timeout_s: float,
) -> HealAction:
    started = time.monotonic()
    target = r.container
    try:
        if what == "load_model":
            assert r.triton is not None and t.spec is not None
            target = ", ".join(r.triton.unloaded)
            ok, detail = outside.triton.load_declared(t.spec.endpoint, r.triton.unloaded, timeout_s)
        else:
            api = apis[r.host]
            if what == "restart":
                api.stop(r.container_id or r.container, timeout_s=30)
            api.start(r.container_id or r.container)
            ok, detail = _await_ready(t, api, outside, r.container_id or r.container, timeout_s)
            detail = f"{'restarted' if what == 'restart' else 'started'}; {detail}"
    except Exception as exc:  # one repair's failure must not stop the others
        ok, detail = False, f"{type(exc).__name__}: {exc}"[:300]
    return HealAction(
        r.deployment, r.replica, r.host, what, ok, detail, target, time.monotonic() - started
    )


def _await_ready(
    t: Target, api: HostAPI, outside: Outside, container: str, timeout_s: float
) -> tuple[bool, str]:
    if t.spec is None:
        return True, "no checks to wait for"
    budget = min(timeout_s, t.spec.startup_timeout_s)
    started = time.monotonic()

    def state() -> str:
        info = getattr(api, "run_info", None)
        return info(container).status if info else api.state(container)

    result = wait_ready(
        t.spec,
        state,
        timeout_s=budget,
        interval_s=0.25,
        clock=outside.clock,
        check=outside.probes.probe,
    )
    took = time.monotonic() - started
    return result.ok, (f"ready in {took:.1f} s" if result.ok else result.detail)


def _recreate(
    swept: Swept,
    replicas: Sequence[ReplicaHealth],
    apis: Mapping[str, HostAPI],
    outside: Outside,
    state_path: Path,
) -> list[HealAction]:
    """Apply's execution path, with the plan restricted to these replicas' creations."""
    from fleetctl.ops.execution import execute_plan
    from fleetctl.ops.planning import PlanResult, inventory_digest
    from fleetctl.ops.rollout import SilentReporter

    wanted = {r.key for r in replicas}
    plan = swept.plan
    actions = tuple(
        a
        for a in plan.actions
        if (a.deployment, a.replica) in wanted and a.kind is ActionKind.CREATE and not a.blocked
    )
    found = {(a.deployment, a.replica) for a in actions}
    out = [
        HealAction(
            r.deployment,
            r.replica,
            r.host,
            "none",
            False,
            "the plan does not create it here (run fleetctl plan)",
        )
        for r in replicas
        if r.key not in found
    ]
    if not actions:
        return out
    counts = {k.value: sum(1 for a in actions if a.kind is k) for k in ActionKind}
    restricted = replace(
        plan, actions=actions, front_doors=(), summary=replace(plan.summary, changes=counts)
    )
    result = PlanResult(
        swept.loaded, swept.observed, restricted, inventory_digest(swept.loaded.path)
    )
    started = time.monotonic()
    applied = execute_plan(
        result,
        swept.loaded.inventory,
        state_path,
        apis,
        outside,
        SilentReporter(),
        "health --heal",
    )
    took = time.monotonic() - started
    for o in applied.outcomes:
        a = o.action
        detail = o.detail + (f" (rollout {applied.rollout_id})" if applied.rollout_id else "")
        out.append(
            HealAction(
                a.deployment, a.replica, a.host, "recreate", o.ok, detail, o.container or "", took
            )
        )
    return out
