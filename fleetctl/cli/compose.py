"""The composition root: the real adapters behind `fleetctl.ports`, built for a command.

Commands call `outside()` and pass what it returns into `fleetctl.ops`; nothing below
the CLI builds an adapter. The adapter modules are imported here when a command asks
(the docker SDK itself only on a host's first call)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from fleetctl.ports import ContainerInspector, HostAPI, Outside

if TYPE_CHECKING:
    from fleetctl.core.inventory import Inventory


def docker_hosts(inventory: Inventory) -> Mapping[str, HostAPI]:
    from fleetctl.adapters.docker_host import DockerHost

    return {h.name: DockerHost(h, inventory.fleet) for h in inventory.hosts}


def inspectors(inventory: Inventory) -> Mapping[str, ContainerInspector]:
    """Docker hosts for `health`, with observation's shorter API timeout."""
    from fleetctl.adapters.docker_host import OBSERVE_TIMEOUT_S, DockerHost

    return {
        h.name: DockerHost(h, inventory.fleet, timeout=OBSERVE_TIMEOUT_S) for h in inventory.hosts
    }


def outside() -> Outside:
    from fleetctl.adapters import observe
    from fleetctl.adapters.probes import HttpProbes, SystemClock
    from fleetctl.adapters.triton_control import TritonRepository

    return Outside(
        observe=observe.observe_fleet,
        hosts=docker_hosts,
        inspectors=inspectors,
        probes=HttpProbes(),
        clock=SystemClock(),
        triton=TritonRepository(),
    )
