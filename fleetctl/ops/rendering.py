"""From a plan action to a container spec and labels (pure: no Docker here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fleetctl.core import labels as L
from fleetctl.core.inventory import Inventory
from fleetctl.core.plan import Action, Plan
from fleetctl.core.triton_servers import is_server, member_labels
from fleetctl.runtimes.registry import get_runtime
from fleetctl.runtimes.spec import ContainerSpec, RenderContext


@dataclass(frozen=True)
class Rendered:
    name: str
    spec: ContainerSpec
    labels: Mapping[str, str]


def shared_gpus(plan: Plan) -> set[tuple[str, int]]:
    """(host, gpu) pairs that hold more than one replica in the plan."""
    count: dict[tuple[str, int], int] = {}
    for a in plan.placement.assignments:
        for g in a.gpus:
            count[(a.host, g)] = count.get((a.host, g), 0) + 1
    return {k for k, n in count.items() if n > 1}


def render_action(
    plan: Plan,
    inventory: Inventory,
    action: Action,
    revision: int | None,
    shared: set[tuple[str, int]],
) -> Rendered:
    d = plan.deployment(action.deployment)
    host = inventory.host(action.host)
    host_spec = next(h for h in plan.hosts if h.name == action.host)
    gpu_mem = next((g.memory_gb for g in host_spec.gpus if g.index in action.gpus), 0.0)
    assert action.port is not None
    ctx = RenderContext(
        deployment=d,
        replica=action.replica,
        host=action.host,
        gpus=action.gpus,
        port=action.port,
        network=host.network,
        address=host.address,
        simulated=host.simulated,
        gpu_memory_gb=gpu_mem,
        shared=any((action.host, g) in shared for g in action.gpus),
    )
    spec = get_runtime(d.runtime).render(ctx)
    labels = L.managed_labels(
        fleet=inventory.fleet,
        deployment=d.name,
        model=d.model,
        version=d.version,
        runtime=d.runtime,
        replica=action.replica,
        gpus=action.gpus,
        simulated=host.simulated,
        spec_hash=action.spec_hash,
        image=d.image,
        port=action.port,
        endpoint=spec.endpoint,
        revision=revision,
    )
    if is_server(d):
        labels[L.TRITON_MEMBERS] = member_labels(d)
    return Rendered(L.container_name(d.name, action.replica, inventory.fleet), spec, labels)
