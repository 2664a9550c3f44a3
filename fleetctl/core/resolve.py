"""Turn the validated inventory into domain values: deployments and host specs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from fleetctl.core.fleet import Deployment, GpuSpec, HostSpec
from fleetctl.core.inventory import Host, Inventory, Model, Pin


def _settings(model: Model, pin: Pin | None) -> dict[str, Any]:
    """The runtime-facing, secret-free settings of one deployment (hashed into its spec).

    What a pin inherits: the model's runtime block (`nim:`, `triton:`, `options`) unless
    it gives its own, its secrets references, health settings and host selector. Not the
    model's `env`: environment tunes the version it is written for, so changing it rolls
    the current version and leaves every pinned customer's containers alone. A pin's own
    `env` is its whole environment.
    """
    env = dict(model.env)
    nim = model.nim
    triton = model.triton
    if pin is not None:
        env = dict(pin.env or {})
        nim = pin.nim or nim
        triton = pin.triton or triton
    return {
        "env": env,
        # Only the references: where a secret comes from, never its value.
        "secrets": {k: ref.describe() for k, ref in sorted(model.secrets.items())},
        "nim": nim.model_dump(mode="json") if nim else None,
        "triton": triton.model_dump(mode="json") if triton else None,
        # As given (a plugin's validated block without the defaults it filled in), so that
        # a plugin adding a default does not change every deployment's spec.
        "options": _given(model.options),
        # Not `health.sample`: what `fleetctl health` sends to a replica is no part of
        # its container, and changing it must not recreate one.
        "health": model.health.model_dump(mode="json", exclude={"sample"}),
        "framework": model.framework,
    }


def _given(block: Any) -> dict[str, Any]:
    if isinstance(block, BaseModel):
        return block.model_dump(mode="json", exclude_unset=True)
    return dict(block or {})


def _pick(pin: Pin | None, attr: str, default: Any) -> Any:
    if pin is None:
        return default
    value = getattr(pin, attr)
    return default if value is None else value


def deployments_of(model: Model) -> list[Deployment]:
    """The current version plus every pinned version of a model."""
    out = []
    for pin in [None, *model.pins]:
        out.append(
            Deployment(
                model=model.name,
                version=pin.version if pin else model.version,
                runtime=model.runtime,
                image=pin.image if pin else model.image,
                memory_gb=_pick(pin, "gpu_memory_gb", model.gpu_memory_gb),
                gpus=_pick(pin, "gpus", model.gpus),
                replicas=_pick(pin, "replicas", model.replicas),
                sla_ms=_pick(pin, "sla_ms", model.sla_ms),
                latency_ms=_pick(pin, "latency_ms", model.latency_ms),
                gpu_util=_pick(pin, "gpu_util", model.gpu_util),
                exclusive=_pick(pin, "exclusive", model.exclusive),
                selector=dict(model.hosts),
                customers=tuple(pin.customers) if pin else (),
                settings=_settings(model, pin),
                gpu_models=tuple(model.gpu_models),
            )
        )
    return out


def deployments(inventory: Inventory) -> list[Deployment]:
    return [d for m in inventory.models for d in deployments_of(m)]


def host_spec(host: Host, discovered: tuple[GpuSpec, ...] | None = None) -> HostSpec:
    """A host's placement view; `discovered` is what NVML found for `gpus: auto`."""
    if host.gpus == "auto":
        gpus = tuple(
            GpuSpec(index=g.index, memory_gb=g.memory_gb, reserve_gb=host.reserve_gb, model=g.model)
            for g in (discovered or ())
        )
    else:
        # Groups in order; indexes run on from one group to the next.
        gpus = tuple(
            GpuSpec(index=i, memory_gb=g.memory_gb, reserve_gb=host.reserve_gb, model=g.model)
            for i, g in enumerate(g for g in host.gpu_groups for _ in range(g.count))
        )
    return HostSpec(
        name=host.name,
        gpus=gpus,
        labels=dict(host.labels),
        simulated=host.simulated,
        max_containers=host.max_containers,
    )


def host_specs(
    inventory: Inventory, discovered: Mapping[str, tuple[GpuSpec, ...]] | None = None
) -> list[HostSpec]:
    discovered = discovered or {}
    return [host_spec(h, discovered.get(h.name)) for h in inventory.hosts]
