"""The front door in planning: which hosts run one, where it listens, which routes it
should serve, and the plan's front-door actions.

The decisions themselves are pure (`fleetctl.core.front_door`); this module gathers their
inputs from the inventory and the runtimes, and reads the API-key references (the only
secrets involved, kept as digests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from fleetctl.core.fleet import Deployment
from fleetctl.core.front_door import (
    Backend,
    FrontDoorSettings,
    FrontDoorSite,
    api_key_digest,
    backend_url,
    front_door_actions,
    routes_bytes,
    routes_document,
    routes_hash,
)
from fleetctl.core.inventory import Host, Inventory
from fleetctl.core.observed import ObservedFleet
from fleetctl.core.plan import ActionKind, Plan
from fleetctl.runtimes.registry import get_runtime
from fleetctl.runtimes.spec import Routing, SecretEnv, bind_address_for


def front_door_port(inv: Inventory, host: Host) -> int:
    """The host's override, else the fleet's port, else the top of the host's range."""
    return host.front_door.port or inv.front_door.port or host.port_range[1]


def _listen(host: Host) -> str:
    return host.front_door.listen or bind_address_for(host.address)


def sites(inv: Inventory) -> list[FrontDoorSite]:
    if not inv.front_door.enabled:
        return []
    return [
        FrontDoorSite(h.name, h.address, _listen(h), front_door_port(inv, h), inv.front_door.image)
        for h in inv.hosts
    ]


def reserved_ports(inv: Inventory) -> dict[str, list[int]]:
    return {s.host: [s.port] for s in sites(inv)}


def api_key_values(inv: Inventory) -> dict[str, str]:
    """customer -> key, read from the references (a missing one is named, never shown)."""
    from fleetctl.ops.secrets import read_secret

    return {
        customer: read_secret(
            SecretEnv("front_door.api_keys", ref.describe()), f"front door customer {customer}"
        )
        for customer, ref in sorted(inv.front_door.api_keys.items())
    }


def settings(inv: Inventory, keys: Mapping[str, str] | None = None) -> FrontDoorSettings:
    fd = inv.front_door
    keys = api_key_values(inv) if keys is None else keys
    return FrontDoorSettings(
        image=fd.image,
        customer_header=fd.customer_header,
        api_key_digests={api_key_digest(k): c for c, k in keys.items()},
        check_interval_s=fd.check_interval_s,
        check_timeout_s=fd.check_timeout_s,
        check_fall=fd.check_fall,
        drain_timeout_s=fd.drain_timeout_s,
    )


def routing_map(deployments: Iterable[Deployment]) -> dict[str, Routing]:
    """How the front door reaches each deployment, from its runtime (None: not routed)."""
    out: dict[str, Routing] = {}
    for d in deployments:
        routing = getattr(get_runtime(d.runtime), "routing", None)
        r = routing(d) if callable(routing) else None
        if r is not None:
            out[d.name] = r
    return out


def planned_backends(plan: Plan, addresses: Mapping[str, str]) -> list[Backend]:
    """Every replica the plan wants, at the port it will have once the plan is applied."""
    return [
        Backend(a.deployment, a.replica, backend_url(addresses[a.host], a.port))
        for a in plan.actions
        if a.kind is not ActionKind.REMOVE and a.port is not None and a.host in addresses
    ]


def routes_for(
    plan: Plan,
    inv: Inventory,
    backends: Iterable[Backend],
    retiring: Sequence[Deployment] = (),
    current: Mapping[str, str] | None = None,
) -> bytes:
    """The routes for `backends`: the plan's deployments, plus older versions still
    serving during a switch (`retiring`, routed like their model's current version)."""
    assert plan.front_door_settings is not None
    routing = routing_map(plan.deployments)
    by_model = {
        d.model: routing[d.name] for d in plan.deployments if not d.pinned and d.name in routing
    }
    for d in retiring:
        if d.model in by_model:
            routing[d.name] = by_model[d.model]
    doc = routes_document(
        inv.fleet,
        plan.front_door_settings,
        [*plan.deployments, *retiring],
        routing,
        backends,
        current,
    )
    return routes_bytes(doc)


def with_front_doors(
    plan: Plan, inv: Inventory, observed: ObservedFleet, keys: Mapping[str, str] | None = None
) -> Plan:
    """The plan with its front-door actions and the hash of the routes it ends with."""
    wanted: Sequence[FrontDoorSite] = sites(inv)
    observed_doors = observed.front_doors()
    if not wanted and not observed_doors:
        return plan
    plan = replace(plan, front_door_sites=tuple(wanted), front_door_settings=settings(inv, keys))
    addresses = {h.name: h.address for h in inv.hosts}
    final = routes_hash(routes_for(plan, inv, planned_backends(plan, addresses))) if wanted else ""
    actions = front_door_actions(wanted, observed_doors, final, plan.unreachable)
    return replace(plan, front_doors=tuple(actions), routes_hash=final)
