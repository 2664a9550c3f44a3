"""Observe every host concurrently: managed containers and, for `gpus: auto`, GPUs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from fleetctl.adapters.docker_host import OBSERVE_TIMEOUT_S, DockerHost
from fleetctl.adapters.gpus import discover_local_gpus
from fleetctl.adapters.probes import triton_member_of, triton_ready_models
from fleetctl.core.inventory import Host, Inventory
from fleetctl.core.observed import ObservedFleet, ObservedHost
from fleetctl.core.triton_servers import with_observed_members
from fleetctl.errors import FleetctlError


def with_triton_models(observed: ObservedHost) -> ObservedHost:
    """Ask each running Triton server which models it serves, side by side: a model
    unloaded by hand is drift the plan must see (one short HTTP call per server)."""
    servers = [c for c in observed.containers if c.runtime == "triton" and c.running and c.endpoint]
    if not servers:
        return observed
    with ThreadPoolExecutor(max_workers=min(16, len(servers))) as pool:
        ready = dict(
            zip(
                (c.id for c in servers),
                pool.map(lambda c: triton_ready_models(c.endpoint), servers),
            )
        )
    containers = tuple(
        replace(c, triton_ready=ready[c.id]) if c.id in ready else c for c in observed.containers
    )
    # A shared server: which member loaded each ready model (one config read per model).
    asks = [
        (c, m)
        for c in containers
        if c.triton_members is not None and c.triton_ready
        for m in c.triton_ready
    ]
    if asks:
        with ThreadPoolExecutor(max_workers=min(16, len(asks))) as pool:
            found = list(pool.map(lambda cm: triton_member_of(cm[0].endpoint, cm[1]), asks))
        configs: dict[str, dict[str, str | None]] = {}
        for (c, m), member in zip(asks, found):
            configs.setdefault(c.id, {})[m] = member
        containers = tuple(
            with_observed_members(c, configs.get(c.id, {}), c.triton_members or {})
            if c.triton_members is not None
            else c
            for c in containers
        )
    return replace(observed, containers=containers)


def observe_host(host: Host, fleet: str = "default") -> ObservedHost:
    observed = with_triton_models(DockerHost(host, fleet, timeout=OBSERVE_TIMEOUT_S).observe())
    if host.gpus == "auto" and observed.reachable:
        if not host.docker.startswith("unix://"):
            return replace(
                observed,
                reachable=False,
                error="gpus: auto is discovered with NVML on the local host only; declare gpus for remote hosts",
            )
        try:
            observed = replace(observed, gpus=discover_local_gpus(host.reserve_gb))
        except FleetctlError as exc:
            return replace(observed, reachable=False, error=exc.message)
    return observed


def observe_fleet(inventory: Inventory) -> ObservedFleet:
    """All hosts side by side; one slow or dead host costs at most its own timeout."""
    hosts = inventory.hosts
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(hosts)))) as pool:
        results = list(pool.map(lambda h: observe_host(h, inventory.fleet), hosts))
    return ObservedFleet({h.name: r for h, r in zip(hosts, results)}, offline=False)
