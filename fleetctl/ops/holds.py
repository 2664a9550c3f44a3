"""`release MODEL` and `pins`: the holds rollbacks leave, and who gets which version.

A hold (fleetctl.core.holds) keeps a model where a rollback put it. `release` deletes it,
so that the next apply follows the inventory again. `pins` lists every customer pinned to
a version in the inventory, and every hold, with the route a client takes through the
front door and what the observed fleet runs for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetctl.core.holds import Hold, apply_holds, release_note
from fleetctl.core.inventory import Inventory
from fleetctl.core.observed import ObservedFleet
from fleetctl.core.resolve import deployments
from fleetctl.errors import FleetctlError, NotFoundError
from fleetctl.ops.planning import read_holds
from fleetctl.ops.status import DeploymentStatus, fleet_status
from fleetctl.ports import Observer
from fleetctl.state.lock import StateLock


@dataclass(frozen=True)
class Released:
    hold: Hold
    next_apply: str  # what the next apply does, in words


def release(inventory_path: str | Path, model: str, state_path: Path) -> Released:
    """Delete `model`'s hold (NotFoundError when it has none)."""
    from fleetctl.runtimes.inventory import load

    # Read first without SQLAlchemy, and without creating a state file that is not there.
    if not any(h.model == model for h in read_holds(state_path)):
        raise NotFoundError(f"{model} has no hold in {state_path}")
    from fleetctl.state.store import StateStore

    with StateLock(state_path, f"release {model}"):
        with StateStore(state_path) as store:
            gone = store.delete_hold(model)
    if gone is None:  # released by another fleetctl in between
        raise NotFoundError(f"{model} has no hold in {state_path}")
    try:
        inv = load(inventory_path).inventory
    except FleetctlError:  # the release stands; only the forecast needs the inventory
        return Released(gone, "the next apply follows the inventory")
    return Released(gone, release_note(gone, deployments(inv)))


@dataclass(frozen=True)
class PinRow:
    """One customer's pinned version, or one hold (every customer without a pin)."""

    kind: str  # "pin" or "hold"
    customer: str | None  # None for a hold: everyone without a pin of their own
    model: str
    version: str
    url: str  # the front door URL a client calls ("" without a front door)
    header: str | None  # the header a pinned client sends, and its value
    value: str | None
    running: int
    desired: int
    health: str  # ok, degraded, down (as `status` says), or "-" when nothing is wanted
    hold: Hold | None = None
    in_force: bool = True  # a hold the inventory has moved past is listed, not in force

    @property
    def deployment(self) -> str:
        return f"{self.model}@{self.version}"


def pin_rows(inv: Inventory, observed: ObservedFleet, holds: Sequence[Hold]) -> list[PinRow]:
    """Pure: every inventory pin (one row per customer), then every hold."""
    held = apply_holds(deployments(inv), holds)
    report = fleet_status(inv, observed, wanted=held.deployments)
    by_name: dict[str, DeploymentStatus] = {d.deployment: d for d in report.deployments}
    header = report.customer_header

    def row(kind: str, model: str, version: str, customer: str | None, **kw: Any) -> PinRow:
        s = by_name.get(f"{model}@{version}")
        return PinRow(
            kind,
            customer,
            model,
            version,
            s.client_url if s else "",
            header if customer else None,
            customer,
            s.running if s else 0,
            s.desired if s else 0,
            s.state if s else "-",
            **kw,
        )

    rows = [
        row("pin", m.name, p.version, customer)
        for m in sorted(inv.models, key=lambda m: m.name)
        for p in m.pins
        for customer in sorted(p.customers)
    ]
    for h in sorted(holds, key=lambda h: h.model):
        rows.append(row("hold", h.model, h.version, None, hold=h, in_force=h.model in held.held))
    return rows


def pins(inventory_path: str | Path, state_path: Path, observe: Observer) -> list[PinRow]:
    from fleetctl.runtimes.inventory import load

    inv = load(inventory_path).inventory
    return pin_rows(inv, observe(inv), read_holds(state_path))
