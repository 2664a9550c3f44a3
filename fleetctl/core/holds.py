"""Holds: a model kept at the version a rollback put it on (pure: no I/O here).

`fleetctl rollback chat-llm@v3` makes v3, from an exact recorded revision, the version
every customer of chat-llm gets. The inventory still says v4, so without more the next
`plan` would bring v4 back. A hold, recorded by the rollback, is what stops that: every
plan and apply builds the held model's deployments the way the rollback did, until the
hold is released (`fleetctl release chat-llm`) or the inventory's version of the model
changes (the user edited the inventory after the rollback: it speaks again).

The decisions here take and return domain values only; reading and writing holds is the
state's business (`fleetctl.state.peek.read_holds`, `StateStore.set_hold`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from fleetctl.core.fleet import Deployment


@dataclass(frozen=True)
class Hold:
    """One model held at one recorded revision of one of its versions."""

    model: str
    version: str  # the held version: the one every customer gets
    revision: int  # the revision of model@version that was restored
    spec: Mapping[str, Any]  # that revision's recorded deployment (deployment_record)
    inventory_version: str  # the inventory's version of the model when the hold was made
    created_at: datetime  # aware, UTC
    rollout_id: int | None  # the rollback's rollout (None when it had nothing to change)
    command: str

    @property
    def deployment(self) -> str:
        return f"{self.model}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "deployment": self.deployment,
            "revision": self.revision,
            "inventory_version": self.inventory_version,
            "created_at": stamp(self.created_at),
            "rollout_id": self.rollout_id,
            "command": self.command,
        }


@dataclass(frozen=True)
class HeldDeployments:
    """The deployments to plan once the holds are honoured, and what to tell the user."""

    deployments: tuple[Deployment, ...]
    notes: tuple[str, ...] = ()
    held: tuple[str, ...] = ()  # models whose hold is in force
    lifted: tuple[
        str, ...
    ] = ()  # models whose hold no longer applies (a successful apply deletes it)


def stamp(t: datetime) -> str:
    """A hold's time as people read it in notes: UTC, to the second, `Z`."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment_from_record(spec: Mapping[str, Any]) -> Deployment:
    """Rebuild the exact deployment a revision recorded (the inverse of deployment_record)."""
    data = dict(spec)
    data["customers"] = tuple(data.get("customers") or ())
    data["selector"] = dict(data.get("selector") or {})
    data["settings"] = dict(data.get("settings") or {})
    return Deployment(**data)


def current_deployment(deployments: Sequence[Deployment], model: str) -> Deployment | None:
    """The version of `model` that customers without a pin get (the one not pinned)."""
    return next((d for d in deployments if d.model == model and not d.pinned), None)


def hold_model(
    deployments: Sequence[Deployment], model: str, restored: Deployment
) -> list[Deployment]:
    """`deployments` with `restored` as the current version of `model`.

    The model's current deployment is replaced, in place, by `restored` with no customers
    (it is no longer a pin: everyone gets it) and the current deployment's replica count
    (it now carries everyone's traffic). A pin of the same version is dropped (that
    version is current now); the model's other pins, and every other model, stay.
    Raises ValueError when `model` has no current deployment to replace.
    """
    current = current_deployment(deployments, model)
    if current is None:
        raise ValueError(f"{model} has no current version in these deployments")
    if restored.model != model:
        raise ValueError(f"{restored.name} is not a version of {model}")
    held = replace(restored, customers=(), replicas=current.replicas)
    out: list[Deployment] = []
    for d in deployments:
        if d.model != model:
            out.append(d)
        elif d is current:
            out.append(held)
        elif d.version != held.version:
            out.append(d)
    return out


def held_note(hold: Hold, inventory_version: str) -> str:
    return (
        f"{hold.model} held at {hold.version} (revision {hold.revision}) by rollback at {stamp(hold.created_at)}; "
        f"the inventory asks {inventory_version}; `fleetctl release {hold.model}` follows the inventory again"
    )


def lifted_note(hold: Hold, inventory_version: str | None) -> str:
    if inventory_version is None:
        return f"hold on {hold.model} lifted: the inventory no longer has {hold.model}"
    return f"hold on {hold.model} lifted: the inventory now asks {inventory_version} (the hold was at {hold.version})"


def apply_holds(deployments: Sequence[Deployment], holds: Sequence[Hold]) -> HeldDeployments:
    """Honour every hold whose model the inventory still asks at the version it asked
    when the hold was made; lift the others (the inventory changed since: it wins)."""
    out = list(deployments)
    notes: list[str] = []
    held: list[str] = []
    lifted: list[str] = []
    for hold in sorted(holds, key=lambda h: h.model):
        current = current_deployment(out, hold.model)
        asked = current.version if current is not None else None
        if asked is None or asked != hold.inventory_version:
            lifted.append(hold.model)
            notes.append(lifted_note(hold, asked))
            continue
        out = hold_model(out, hold.model, deployment_from_record(hold.spec))
        held.append(hold.model)
        notes.append(held_note(hold, asked))
    return HeldDeployments(tuple(out), tuple(notes), tuple(held), tuple(lifted))


def rollback_note(model: str, target: str, revision: int, retired: str | None) -> str:
    """What a rollback's plan says it does, beside its actions."""
    version = target.partition("@")[2]
    if retired is None or retired == target:
        return f"{model}: every customer gets {target} at revision {revision}"
    return (
        f"{model}: every customer moves to {target} (revision {revision}); "
        f"{retired} is retired once {version} serves"
    )


def release_note(hold: Hold, deployments: Sequence[Deployment]) -> str:
    """What the next apply does once `hold` is released, from the inventory's deployments."""
    current = current_deployment(deployments, hold.model)
    if current is None:
        return f"the inventory no longer has {hold.model}: the next apply removes its containers"
    if current.version != hold.inventory_version:
        return f"the hold was already lifted (the inventory asks {current.version}): plans do not change"
    if current.version == hold.version:
        return (
            f"the next apply takes {current.name} from revision {hold.revision} to the inventory's spec "
            "(`fleetctl plan` shows the changes, if any)"
        )
    pin = next(
        (
            d
            for d in deployments
            if d.model == hold.model and d.pinned and d.version == hold.version
        ),
        None,
    )
    kept = (
        f"{hold.deployment} stays for {', '.join(pin.customers)}"
        if pin
        else f"{hold.deployment} is removed"
    )
    return f"the next apply makes {current.name} the version every customer gets again; {kept}"
