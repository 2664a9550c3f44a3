"""`status`: what runs where, next to what the inventory asks for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

    def to_json(self) -> dict[str, Any]:
        return {
            "hosts": list(self.hosts),
            "deployments": [
                {
                    "deployment": d.deployment,
                    "version": d.version,
                    "runtime": d.runtime,
                    "customers": list(d.customers),
                    "state": d.state,
                    "desired": d.desired,
                    "running": d.running,
                    "replicas": [
                        {
                            "replica": r.replica,
                            "host": r.host,
                            "gpus": list(r.gpus),
                            "state": r.state,
                            "endpoint": r.endpoint,
                            "revision": r.revision,
                            "container": r.container,
                            "image": r.image,
                        }
                        for r in d.replicas
                    ],
                }
                for d in self.deployments
            ],
        }


def fleet_status(inv: Inventory, observed: ObservedFleet) -> StatusReport:
    """Pure: join the inventory's deployments with the observed containers."""
    by_dep: dict[str, list[ReplicaStatus]] = {}
    for c in sorted(observed.containers(), key=lambda c: (c.deployment, c.replica, c.temporary)):
        if c.temporary:
            continue
        by_dep.setdefault(c.deployment, []).append(
            ReplicaStatus(c.replica, c.host, c.gpus, c.state, c.endpoint, c.revision, c.name, c.image)
        )
    out = []
    for d in deployments(inv):
        reps = tuple(by_dep.pop(d.name, []))
        out.append(
            DeploymentStatus(d.name, d.version, d.runtime, d.customers, d.replicas, sum(r.state == "running" for r in reps), reps)
        )
    for name, reps in sorted(by_dep.items()):
        version = name.partition("@")[2]
        out.append(DeploymentStatus(name, version, "?", (), 0, sum(r.state == "running" for r in reps), tuple(reps), managed=False))
    hosts = tuple(
        {
            "host": h.name,
            "docker": h.docker,
            "reachable": observed.hosts[h.name].reachable if h.name in observed.hosts else False,
            "error": observed.hosts[h.name].error if h.name in observed.hosts else "not observed",
            "gpus": "auto" if h.gpus == "auto" else {"count": h.gpus.count, "memory_gb": h.gpus.memory_gb, "model": h.gpus.model},
            "simulated": h.simulated,
            "containers": len(observed.hosts[h.name].containers) if h.name in observed.hosts else 0,
        }
        for h in inv.hosts
    )
    return StatusReport(tuple(out), hosts)
