"""`status`: what runs where, next to what the inventory asks for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetctl.core.fleet import Deployment
from fleetctl.core.inventory import Inventory
from fleetctl.core.observed import ObservedFleet
from fleetctl.core.resolve import deployments


@dataclass(frozen=True)
class ReplicaStatus:
    replica: int
    host: str
    gpus: tuple[int, ...]
    state: str
    endpoint: str
    revision: int | None
    container: str
    image: str


@dataclass(frozen=True)
class DeploymentStatus:
    deployment: str
    version: str
    runtime: str
    customers: tuple[str, ...]
    desired: int
    running: int
    replicas: tuple[ReplicaStatus, ...]
    managed: bool = True  # False: running but no longer in the inventory
    client_url: str = ""  # what a client calls, through a front door
    # A shared Triton server: the deployments it serves and their Triton models.
    members: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def state(self) -> str:
        if not self.managed:
            return "orphaned"
        if self.running >= self.desired:
            return "ok"
        return "degraded" if self.running else "down"


@dataclass(frozen=True)
class StatusReport:
    deployments: tuple[DeploymentStatus, ...]
    hosts: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    front_doors: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    customer_header: str = "X-Customer"


def _front_doors(
    inv: Inventory, observed: ObservedFleet, routes_hash: str | None
) -> list[dict[str, Any]]:
    from fleetctl.ops.front_door import sites

    out = []
    for site in sites(inv):
        found = observed.hosts.get(site.host)
        door = next(iter(found.front_doors), None) if found else None
        out.append(
            {
                "host": site.host,
                "url": site.url,
                "state": door.state if door else "missing",
                "container": door.name if door else None,
                "routes_hash": door.routes_hash if door else None,
                "routes_current": bool(
                    door and routes_hash is not None and door.routes_hash == routes_hash
                ),
            }
        )
    return out


def _client_url(d: Deployment, door_url: str) -> str:
    from fleetctl.ops.front_door import routing_map

    r = routing_map([d]).get(d.name)
    if r is None or not door_url:
        return ""
    return f"{door_url}/v1" if r.protocol == "openai" else f"{door_url}/v2/models/{r.names[0]}"


def fleet_status(
    inv: Inventory,
    observed: ObservedFleet,
    routes_hash: str | None = None,
    wanted: Sequence[Deployment] | None = None,
) -> StatusReport:
    """Pure: join the inventory's deployments (or `wanted`: those with the holds
    honoured) with the observed containers (and the front doors with the routes they
    should serve, when `routes_hash` is known)."""
    doors = _front_doors(inv, observed, routes_hash)
    door_url = next(
        (f["url"] for f in doors if f["state"] == "running"), doors[0]["url"] if doors else ""
    )
    by_dep: dict[str, list[ReplicaStatus]] = {}
    for c in sorted(observed.containers(), key=lambda c: (c.deployment, c.replica, c.temporary)):
        if c.temporary or c.parked:  # an interrupted rollout's; `plan` shows its recovery
            continue
        by_dep.setdefault(c.deployment, []).append(
            ReplicaStatus(
                c.replica,
                c.host,
                c.gpus,
                "crash-looping" if c.restarts else c.state,
                c.endpoint,
                c.revision,
                c.name,
                c.image,
            )
        )
    out = []
    from fleetctl.core.resolve import host_specs
    from fleetctl.core.triton_servers import members_of, serve_together

    listed = list(deployments(inv) if wanted is None else wanted)
    for d in serve_together(listed, host_specs(inv)) if inv.triton_servers == "shared" else listed:
        reps = tuple(by_dep.pop(d.name, []))
        running = sum(r.state == "running" for r in reps)
        out.append(
            DeploymentStatus(
                d.name,
                d.version,
                d.runtime,
                d.customers,
                d.replicas,
                running,
                reps,
                client_url=_client_url(d, door_url),
                members=tuple((m.deployment, m.models) for m in members_of(d)),
            )
        )
    for name, unlisted in sorted(by_dep.items()):
        version = name.partition("@")[2]
        out.append(
            DeploymentStatus(
                name,
                version,
                "?",
                (),
                0,
                sum(r.state == "running" for r in unlisted),
                tuple(unlisted),
                managed=False,
            )
        )
    hosts = tuple(
        {
            "host": h.name,
            "docker": h.docker,
            "reachable": observed.hosts[h.name].reachable if h.name in observed.hosts else False,
            "error": observed.hosts[h.name].error if h.name in observed.hosts else "not observed",
            "gpus": "auto"
            if h.gpus == "auto"
            else {"count": h.gpus.count, "memory_gb": h.gpus.memory_gb, "model": h.gpus.model}
            if not isinstance(h.gpus, list)
            else [{"count": g.count, "memory_gb": g.memory_gb, "model": g.model} for g in h.gpus],
            "simulated": h.simulated,
            "containers": len(observed.hosts[h.name].containers) if h.name in observed.hosts else 0,
        }
        for h in inv.hosts
    )
    return StatusReport(tuple(out), hosts, tuple(doors), inv.front_door.customer_header)
