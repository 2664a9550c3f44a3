"""Load, observe, decide: the steps shared by `plan`, `apply`, `status` and `report`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fleetctl.core.fleet import Deployment, GpuSpec
from fleetctl.core.inventory import Inventory
from fleetctl.core.loader import LoadedInventory, load
from fleetctl.core.observed import ObservedFleet
from fleetctl.core.plan import Plan, make_plan
from fleetctl.core.resolve import deployments, host_specs
from fleetctl.errors import FleetctlError

# Observing is injected so that the planning steps stay testable without Docker.
Observer = Callable[[Inventory], ObservedFleet]


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


def build_plan(loaded: LoadedInventory, observed: ObservedFleet, wanted: list[Deployment] | None = None) -> Plan:
    """Plan the inventory's deployments (or `wanted`, as rollback does) against `observed`."""
    inv = loaded.inventory
    auto_missing = [
        h.name
        for h in inv.hosts
        if h.gpus == "auto" and (h.name not in observed.hosts or observed.hosts[h.name].gpus is None)
    ]
    if auto_missing:
        raise FleetctlError(
            f"host(s) {', '.join(auto_missing)} declare 'gpus: auto', which needs NVML on the host: "
            "declare {count, memory_gb} (with simulated: true for planning) or plan online"
        )
    from fleetctl.ops import front_door

    hosts = host_specs(inv, discovered_gpus(observed))
    ranges = {h.name: h.port_range for h in inv.hosts}
    try:
        plan = make_plan(
            wanted if wanted is not None else deployments(inv), hosts, observed, ranges, front_door.reserved_ports(inv)
        )
    except ValueError as exc:  # port ranges exhausted
        raise FleetctlError(str(exc)) from None
    return front_door.with_front_doors(plan, inv, observed)


def plan_inventory(path: str | Path, observe: Observer | None, known_runtimes: list[str] | None = None) -> PlanResult:
    """Load the inventory, observe the hosts (unless offline) and compute the plan."""
    loaded = load(path, known_runtimes)
    inv = loaded.inventory
    observed = observe(inv) if observe is not None else ObservedFleet.empty([h.name for h in inv.hosts])
    plan = build_plan(loaded, observed)
    return PlanResult(loaded, observed, plan, inventory_digest(path))
