"""Stop-first replacements: estimated, shown, and run only with permission.

A replacement stops the old replica first only when no GPU anywhere can hold the old and
the new one at once (see fleetctl.core.surge). That replica is then out of service while
its successor starts; fleetctl says so before it asks, and refuses unless the operator
allowed it (`--allow-downtime`) or the model's `rollout` block does (`allow_downtime:
true`, or `max_unavailable` of 1 or more).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fleetctl.core.inventory import Inventory
from fleetctl.core.plan import Plan
from fleetctl.core.schedule import model_of
from fleetctl.errors import DowntimeRefusedError
from fleetctl.state.peek import start_seconds


def with_estimates(plan: Plan, state_path: Path | None) -> Plan:
    """Fill in `unavailable_s` for every downtime action from past start times."""
    downtime = [a for a in plan.actions if a.downtime]
    if not downtime:
        return plan
    seconds = (
        start_seconds(state_path, sorted({a.deployment for a in downtime})) if state_path else {}
    )
    actions = tuple(
        replace(a, unavailable_s=round(seconds[a.deployment], 1))
        if a.downtime and a.deployment in seconds
        else a
        for a in plan.actions
    )
    return replace(plan, actions=actions)


def describe(plan: Plan) -> list[str]:
    out = []
    for a in plan.actions:
        if not a.downtime:
            continue
        how_long = (
            f"about {a.unavailable_s:g} s"
            if a.unavailable_s is not None
            else "until its successor is ready (no earlier start to go by)"
        )
        out.append(
            f"{a.deployment}#{a.replica} on {a.host} is out of service for {how_long}: no GPU can hold its old and new replica at once"
        )
    return out


def check_permitted(plan: Plan, inv: Inventory, allow_downtime: bool) -> None:
    """Refuse a plan with stop-first replacements nobody allowed."""
    # `max_unavailable: 1` or more says the same for that model: replicas may be out.
    allowed = {
        m.name for m in inv.models if m.rollout.allow_downtime or m.rollout.max_unavailable > 0
    }
    refused = [
        a
        for a in plan.actions
        if a.downtime and not allow_downtime and model_of(a.deployment) not in allowed
    ]
    if not refused:
        return
    names = sorted({model_of(a.deployment) for a in refused})
    lines = "; ".join(line for line in describe(replace(plan, actions=tuple(refused))))
    raise DowntimeRefusedError(
        f"{lines}. Nothing was changed. Free a GPU, or allow it: `--allow-downtime`, or "
        f"`rollout: {{allow_downtime: true}}` for {', '.join(names)}"
    )


def gate(plan: Plan, inv: Inventory, state_path: Path | None, allow_downtime: bool) -> Plan:
    """Before asking: the plan with its estimates, refused when it needs downtime nobody allowed."""
    plan = with_estimates(plan, state_path)
    check_permitted(plan, inv, allow_downtime)
    return plan
