"""Every desired replica, with its container and how to probe it (pure)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fleetctl.core.fleet import Deployment
from fleetctl.core.observed import ObservedContainer, ObservedFleet
from fleetctl.core.plan import Action, ActionKind, Plan
from fleetctl.ops.health.model import ProbeSpec, Sample, Target

if TYPE_CHECKING:
    from fleetctl.core.inventory import Inventory


def targets(plan: Plan, inventory: Inventory, observed: ObservedFleet) -> list[Target]:
    """Every desired replica, with its container and a spec to probe it by."""
    from fleetctl.ops.rendering import shared_gpus

    shared = shared_gpus(plan)
    by_key = {(a.deployment, a.replica): a for a in plan.actions if a.kind is not ActionKind.REMOVE}
    containers = {(c.host, c.name): c for c in observed.containers()}
    unplaced = {(u.deployment, u.replica): u for u in plan.placement.unplaced}
    out = []
    for d in plan.deployments:
        for replica in range(d.replicas):
            action = by_key.get((d.name, replica))
            base = Target(
                d.name,
                replica,
                "",
                runtime=d.runtime,
                expected_profile=_nim(d).get("model_profile"),
            )
            if action is None:
                reasons = unplaced.get((d.name, replica))
                note = (
                    "not placed: " + "; ".join(reasons.reasons)
                    if reasons and reasons.reasons
                    else "not placed"
                )
                out.append(_unseen(plan, base, "", note))
                continue
            if action.kind is ActionKind.CREATE:
                if action.blocked:
                    why = f"host {action.host} unreachable: {action.blocked}"
                    out.append(replace(base, host=action.host, unreachable=why))
                else:
                    out.append(_unseen(plan, base, action.host, "no container"))
                continue
            host = action.container_host or action.host
            c = containers.get((host, action.container or ""))
            if c is None:  # the plan only names containers it observed; kept for safety
                out.append(_unseen(plan, base, host, "no container"))
                continue
            drift = action.reason if action.kind is ActionKind.RECREATE else None
            probe = _probe_for(plan, inventory, action, c, shared)
            out.append(
                replace(
                    base,
                    host=c.host,
                    container=c,
                    probe=probe,
                    drift=drift,
                    grace_s=probe.spec.startup_timeout_s,
                )
            )
    return out


def _nim(d: Deployment) -> dict[str, Any]:
    return dict(d.settings.get("nim") or {})


def _unseen(plan: Plan, base: Target, host: str, note: str) -> Target:
    """No container found: unknown when a host it may live on could not be asked."""
    d = plan.deployment(base.deployment)
    dark = sorted(
        h.name for h in plan.hosts if h.name in plan.unreachable and h.matches(d.selector)
    )
    if dark:
        why = "; ".join(f"host {h} unreachable: {plan.unreachable[h]}" for h in dark)
        return replace(base, host=host, unreachable=f"no container on reachable hosts ({why})")
    return replace(base, host=host, note=note)


def _probe_for(
    plan: Plan,
    inventory: Inventory,
    action: Action,
    c: ObservedContainer,
    shared: set[tuple[str, int]],
) -> ProbeSpec:
    from fleetctl.ops.rendering import render_action

    # The container that serves is the one to probe: a recreate may plan a fresh port or
    # host, but until it runs the old container's port is where the answers come from.
    if c.port is not None:
        action = replace(action, host=c.host, port=c.port, gpus=c.gpus or action.gpus)
    spec = render_action(plan, inventory, action, None, shared).spec
    if c.port is None and c.endpoint:
        spec = replace(spec, endpoint=c.endpoint)
    d = plan.deployment(action.deployment)
    triton = (
        tuple((d.settings.get("triton") or {}).get("models") or [d.model])
        if d.runtime == "triton"
        else ()
    )
    return ProbeSpec(
        spec=spec,
        runtime=d.runtime,
        served_model=_nim(d).get("served_model_name"),
        triton_models=triton,
        sla_ms=d.sla_ms,
        sample=_sample(inventory, d, triton),
    )


def _sample(inventory: Inventory, d: Deployment, triton: tuple[str, ...]) -> Sample | None:
    from fleetctl.core.schedule import model_of
    from fleetctl.core.triton_servers import members_of

    # A shared Triton server is timed with the first member's sample.
    names = [model_of(m.deployment) for m in members_of(d)] or [d.model]
    found = [m for m in inventory.models if m.name in names and m.health.sample is not None]
    if not found:
        return None
    s = found[0].health.sample
    if s is None or not triton:
        return None
    return Sample(s.model or triton[0], dict(s.inputs))
