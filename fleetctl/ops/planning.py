"""Load, observe, decide: the steps shared by `plan`, `apply`, `status` and `report`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from fleetctl.core.fleet import Deployment, GpuSpec
from fleetctl.core.holds import HeldDeployments, Hold, apply_holds
from fleetctl.core.inventory import Inventory
from fleetctl.core.loader import LoadedInventory
from fleetctl.core.observed import ObservedFleet
from fleetctl.core.plan import Plan, make_plan
from fleetctl.core.resolve import deployments, host_specs
from fleetctl.core.triton_servers import grouped
from fleetctl.errors import FleetctlError
from fleetctl.ops.secrets import refuse_secret_values
from fleetctl.ports import Observer
from fleetctl.runtimes.inventory import load


@dataclass(frozen=True)
class PlanResult:
    loaded: LoadedInventory
    observed: ObservedFleet
    plan: Plan
    inventory_digest: str


def inventory_digest(path: str | Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def discovered_gpus(observed: ObservedFleet) -> dict[str, tuple[GpuSpec, ...]]:
    return {name: h.gpus for name, h in observed.hosts.items() if h.gpus is not None}


def read_holds(state_path: Path | None) -> list[Hold]:
    """The holds in the state at `state_path` (none without one), read without SQLAlchemy."""
    if state_path is None:
        return []
    from fleetctl.state.peek import read_holds as peek_holds

    return peek_holds(state_path)


def with_retired_hosts(inv: Inventory, state_path: Path | None) -> Inventory:
    """The inventory plus the hosts this fleet's rollouts changed (as the state recorded
    them) that it no longer lists: observed and acted on, never placed on, so that
    their containers are planned for removal. A recorded host on the Docker endpoint of
    a listed one is a renamed host, not a retired one: it is left out."""
    if state_path is None:
        return inv
    from pydantic import ValidationError

    from fleetctl.core.inventory import Host
    from fleetctl.state.peek import known_hosts

    names = {h.name for h in inv.hosts}
    endpoints = {h.docker for h in inv.hosts}
    retired = []
    for doc in known_hosts(state_path, inv.fleet):
        if doc.get("name") in names or doc.get("docker") in endpoints:
            continue
        try:
            retired.append(Host.model_validate(doc))
        except ValidationError:
            continue  # written by another version of fleetctl: not ours to guess
    return inv.model_copy(update={"hosts": [*inv.hosts, *retired]}) if retired else inv


def held_deployments(inv: Inventory, holds: Sequence[Hold]) -> HeldDeployments:
    """The inventory's deployments with the holds honoured (see fleetctl.core.holds)."""
    return apply_holds(deployments(inv), holds)


def build_plan(
    loaded: LoadedInventory,
    observed: ObservedFleet,
    wanted: list[Deployment] | None = None,
    *,
    holds: Sequence[Hold] = (),
    placement_budget: float | None = None,
) -> Plan:
    """Plan the inventory's deployments, with `holds` honoured (or exactly `wanted`, as
    rollback does) against `observed`. The holds' notes go on the plan."""
    inv = loaded.inventory
    notes: tuple[str, ...] = ()
    if wanted is None:
        held = held_deployments(inv, holds)
        wanted, notes = list(held.deployments), held.notes
    auto_missing = [
        h.name
        for h in inv.hosts
        if h.gpus == "auto"
        and (h.name not in observed.hosts or observed.hosts[h.name].gpus is None)
    ]
    if auto_missing:
        raise FleetctlError(
            f"host(s) {', '.join(auto_missing)} declare 'gpus: auto', which needs NVML on the host: "
            "declare {count, memory_gb} (with simulated: true for planning) or plan online"
        )
    from fleetctl.ops import front_door

    hosts = host_specs(inv, discovered_gpus(observed))
    # Co-located Triton models share one server (fleetctl.core.triton_servers).
    members: dict[str, tuple[Deployment, ...]] = {}
    if inv.triton_servers == "shared":
        wanted, members = grouped(wanted, hosts)
    ranges = {h.name: h.port_range for h in inv.hosts}
    try:
        budget = {} if placement_budget is None else {"placement_budget": placement_budget}
        plan = make_plan(wanted, hosts, observed, ranges, front_door.reserved_ports(inv), **budget)
    except ValueError as exc:  # port ranges exhausted
        raise FleetctlError(str(exc)) from None
    if members:
        # "One GPU per replica" counts the inventory's models, not the servers they share.
        from fleetctl.core.placement import naive_gpus

        naive = naive_gpus([m for d in wanted for m in members.get(d.name, (d,))])
        plan = replace(
            plan, server_members=members, summary=replace(plan.summary, gpus_naive=naive)
        )
    plan = front_door.with_front_doors(plan, inv, observed)
    if not plan.placement.feasible:
        plan = with_inventory_lines(plan, loaded)
    return replace(plan, notes=plan.notes + notes) if notes else plan


def with_inventory_lines(plan: Plan, loaded: LoadedInventory) -> Plan:
    """Each unplaced replica's reasons end with where its model is in the inventory."""
    from fleetctl.core.fleet import Unplaced

    where: dict[str, str] = {}
    for i, m in enumerate(loaded.inventory.models):
        if m.name not in where:
            line, col = loaded.positions.locate(("models", i))
            where[m.name] = f"inventory: {loaded.path}:{line}:{col}: models[{i}] ({m.name})"
    by_name = {d.name: d.model for d in plan.deployments}
    unplaced = tuple(
        Unplaced(
            u.deployment,
            u.replica,
            u.reasons
            + ((where[by_name[u.deployment]],) if by_name.get(u.deployment) in where else ()),
        )
        for u in plan.placement.unplaced
    )
    return replace(plan, placement=replace(plan.placement, unplaced=unplaced))


def plan_inventory(
    path: str | Path,
    observe: Observer | None,
    known_runtimes: list[str] | None = None,
    state_path: Path | None = None,
    placement_budget: float | None = None,
) -> PlanResult:
    """Load the inventory, observe the hosts (unless offline) and compute the plan,
    honouring the holds recorded in the state at `state_path` (offline too)."""
    loaded = load(path, known_runtimes)
    refuse_secret_values(loaded)  # a secret's value spelled out in the inventory
    inv = loaded.inventory
    observed = (
        observe(with_retired_hosts(inv, state_path))
        if observe is not None
        else ObservedFleet.empty([h.name for h in inv.hosts])
    )
    plan = build_plan(
        loaded, observed, holds=read_holds(state_path), placement_budget=placement_budget
    )
    return PlanResult(loaded, observed, plan, inventory_digest(path))
