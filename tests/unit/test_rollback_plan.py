"""The plans a rollback and a hold make, on the demo inventory, against an observed fleet
given as a value (no Docker): only the model moves, the target is kept, and the plan
after the rollback has nothing left to do."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetctl.core import labels as L
from fleetctl.core.holds import Hold, current_deployment, deployment_from_record
from fleetctl.core.loader import LoadedInventory
from fleetctl.core.observed import ObservedContainer, ObservedFleet, ObservedFrontDoor, ObservedHost
from fleetctl.core.plan import ActionKind, Plan
from fleetctl.core.resolve import deployments
from fleetctl.ops.planning import build_plan
from fleetctl.ops.rollback import plan_rollback
from fleetctl.runtimes.inventory import load

REPO = Path(__file__).resolve().parents[2]
AT = datetime(2026, 12, 1, 10, 2, 3, tzinfo=UTC)


def demo(tmp_path: Path, version: str = "v4") -> LoadedInventory:
    text = (
        (REPO / "inventory" / "demo.yaml")
        .read_text()
        .replace("version: v4", f"version: {version}", 1)
    )
    path = tmp_path / "demo.yaml"
    path.write_text(
        text.replace("../tests/testbed/models", str(REPO / "tests" / "testbed" / "models"))
    )
    return load(path)


def running(plan: Plan) -> ObservedFleet:
    """The fleet as observed once `plan` was applied: its replicas and its routes."""
    containers = tuple(
        ObservedContainer(
            a.host,
            f"id-{a.deployment}-{a.replica}",
            L.container_name(a.deployment, a.replica, "demo"),
            a.deployment,
            a.replica,
            a.gpus,
            a.spec_hash,
            "running",
            plan.deployment(a.deployment).image,
            labeled_image=plan.deployment(a.deployment).image,
            port=a.port,
            endpoint=f"http://127.0.0.1:{a.port}",
        )
        for a in plan.actions
        if a.kind is not ActionKind.REMOVE
    )
    doors = tuple(
        ObservedFrontDoor(
            s.host,
            "fd",
            L.front_door_name("demo"),
            "running",
            s.image,
            s.spec_hash(),
            s.port,
            s.url,
            plan.routes_hash,
        )
        for s in plan.front_door_sites
    )
    return ObservedFleet(
        {"demo-host": ObservedHost("demo-host", containers=containers, front_doors=doors)},
        offline=False,
    )


def record(loaded: LoadedInventory, name: str) -> dict[str, Any]:
    d = next(d for d in deployments(loaded.inventory) if d.name == name)
    rec = asdict(d)
    rec["selector"], rec["customers"] = dict(d.selector), list(d.customers)
    return rec


def rolled_back(tmp_path: Path) -> tuple[LoadedInventory, ObservedFleet, Plan, Hold]:
    loaded = demo(tmp_path)
    applied = running(build_plan(loaded, ObservedFleet.empty(["demo-host"], offline=False)))
    spec = record(loaded, "chat-llm@v3")
    current = current_deployment(deployments(loaded.inventory), "chat-llm")
    assert current is not None
    plan = plan_rollback(loaded, applied, [], current, deployment_from_record(spec), 2)
    hold = Hold("chat-llm", "v3", 2, spec, "v4", AT, 1, "rollback chat-llm@v3")
    return loaded, applied, plan, hold


def test_a_rollback_to_a_running_pin_keeps_it_removes_the_old_current_and_switches_at_once(
    tmp_path: Path,
) -> None:
    _, applied, plan, _ = rolled_back(tmp_path)
    moves = {(a.kind, a.deployment) for a in plan.actions}
    assert moves == {
        (ActionKind.REMOVE, "chat-llm@v4"),
        (ActionKind.KEEP, "chat-llm@v3"),
    }  # only chat-llm
    kept = next(a for a in plan.actions if a.deployment == "chat-llm@v3")
    was = next(c for c in applied.containers() if c.deployment == "chat-llm@v3")
    assert (
        kept.container == was.name and kept.spec_hash == was.spec_hash
    )  # not restarted: customers leave the hash
    assert plan.switch_at_once == frozenset({"chat-llm"})
    assert plan.notes == (
        "chat-llm: every customer moves to chat-llm@v3 (revision 2); chat-llm@v4 is retired once v3 serves",
    )
    assert [f.kind.value for f in plan.front_door_changes] == ["reload"]  # the routes change
    v3 = plan.deployment("chat-llm@v3")
    members = {
        m.name for ms in plan.server_members.values() for m in ms
    }  # the Triton models share one server
    assert v3.customers == () and members >= {"embeddings@1", "reranker@1"}
    assert plan.summary.changes["remove"] == 1 and plan.summary.changes["keep"] == 1


def after(applied: ObservedFleet, plan: Plan) -> ObservedFleet:
    """What the rollback leaves: the removed containers gone, its routes loaded."""
    gone = {a.container for a in plan.actions if a.kind is ActionKind.REMOVE}
    host = applied.hosts["demo-host"]
    doors = tuple(replace(f, routes_hash=plan.routes_hash) for f in host.front_doors)
    kept = tuple(c for c in host.containers if c.name not in gone)
    return ObservedFleet(
        {"demo-host": replace(host, containers=kept, front_doors=doors)}, offline=False
    )


def test_after_the_rollback_a_plan_that_honours_the_hold_has_nothing_to_do(tmp_path: Path) -> None:
    loaded, applied, rollback_plan, hold = rolled_back(tmp_path)
    left = after(applied, rollback_plan)
    held = build_plan(loaded, left, holds=[hold])
    assert not held.has_changes
    assert held.routes_hash == rollback_plan.routes_hash
    assert held.notes == (
        "chat-llm held at v3 (revision 2) by rollback at 2026-12-01T10:02:03Z; the inventory asks v4; "
        "`fleetctl release chat-llm` follows the inventory again",
    )
    released = build_plan(loaded, left)  # `release`: v4 comes back
    assert ("create", "chat-llm@v4") in {(a.kind.value, a.deployment) for a in released.changes}


def test_an_inventory_that_moved_on_lifts_the_hold(tmp_path: Path) -> None:
    _, applied, rollback_plan, hold = rolled_back(tmp_path)
    edited = demo(tmp_path, "v5")
    plan = build_plan(edited, after(applied, rollback_plan), holds=[hold])
    assert ("create", "chat-llm@v5") in {(a.kind.value, a.deployment) for a in plan.changes}
    assert plan.notes == (
        "hold on chat-llm lifted: the inventory now asks v5 (the hold was at v3)",
    )
