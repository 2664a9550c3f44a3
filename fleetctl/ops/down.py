"""`down`: remove every managed container (and front door) on the inventory's hosts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from fleetctl.core.front_door import FRONT_DOOR
from fleetctl.core.observed import ObservedFleet
from fleetctl.core.plan import Action, ActionKind
from fleetctl.errors import AbortedError
from fleetctl.ops.execution import ApplyResult
from fleetctl.ops.fleet_lock import fleet_lease
from fleetctl.ops.planning import build_plan, inventory_digest, with_retired_hosts
from fleetctl.ops.recording import record_steps, replica_step
from fleetctl.ops.rollout import Executor, Reporter, SilentReporter
from fleetctl.ports import Outside
from fleetctl.runtimes.inventory import load
from fleetctl.runtimes.registry import runtime_names
from fleetctl.state.lock import StateLock


def down(
    inventory_path: str | Path,
    *,
    state_path: Path,
    outside: Outside,
    confirm: Callable[[list[Action]], bool],
    reporter: Reporter | None = None,
) -> ApplyResult:
    """Remove every managed container on the inventory's hosts."""
    with StateLock(state_path, "down"):
        loaded = load(inventory_path, runtime_names())
        inv = loaded.inventory
        reach = with_retired_hosts(inv, state_path)
        observed = outside.observe(reach)

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
        plan = replace(empty, actions=tuple(removals))
        if not removals:
            return ApplyResult(plan)
        if not confirm(removals):
            raise AbortedError("down cancelled; nothing was removed")
        from fleetctl.state.store import StateStore

        host_apis = outside.hosts(reach)
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
                hosts=host_apis,
                rendered={},
                secrets={},
                reporter=reporter or SilentReporter(),
                max_parallel={h.name: h.max_parallel for h in reach.hosts},
                clock=outside.clock,
                check=outside.probes.probe,
                port_taken=outside.probes.port_answers,
            )
            outcomes = ex.run(removals)
            record_steps(store, rid, [replica_step(o) for o in outcomes])
            for name in sorted({h.name for h in reach.hosts} - {h.name for h in inv.hosts}):
                if all(o.ok for o in outcomes if o.action.host == name):
                    store.forget_host(inv.fleet, name)
            failed = [o for o in outcomes if not o.ok]
            store.finish_rollout(
                rid, "succeeded" if not failed else "partial", f"{len(outcomes)} removed"
            )
        return ApplyResult(plan, tuple(outcomes), rid)
