"""Observe every host concurrently: managed containers and, for `gpus: auto`, GPUs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from fleetctl.adapters.docker_host import OBSERVE_TIMEOUT_S, DockerHost
from fleetctl.adapters.gpus import discover_local_gpus
from fleetctl.core.inventory import Host, Inventory
from fleetctl.core.observed import ObservedFleet, ObservedHost
from fleetctl.errors import FleetctlError


def observe_host(host: Host, fleet: str = "default") -> ObservedHost:
    observed = DockerHost(host, fleet, timeout=OBSERVE_TIMEOUT_S).observe()
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
