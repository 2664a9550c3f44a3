"""Golden scenarios for the plan: inventory + observed fleet -> expected actions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fleetctl.core.fleet import Deployment, GpuSpec, HostSpec
from fleetctl.core.observed import ObservedContainer, ObservedFleet, ObservedHost
from fleetctl.core.plan import START_FIRST, STOP_FIRST, ActionKind, Plan, make_plan, plan_to_json
from fleetctl.core.resolve import deployments, host_specs
from fleetctl.runtimes.inventory import load

REPO = Path(__file__).resolve().parents[2]
RANGES = {"h1": (20000, 20099), "h2": (21000, 21099)}


def seed() -> tuple[list[Deployment], list[HostSpec]]:
    inv = load(REPO / "inventory" / "fleet.yaml").inventory
    return deployments(inv), host_specs(inv)


def running_fleet(plan: Plan, host_names: list[str]) -> ObservedFleet:
    """The fleet as it would be observed after applying `plan` successfully."""
    by_host: dict[str, list[ObservedContainer]] = {h: [] for h in host_names}
    for a in plan.actions:
        if a.kind is ActionKind.REMOVE:
            continue
        d = plan.deployment(a.deployment)
        by_host[a.host].append(
            ObservedContainer(
                host=a.host,
                id=f"id-{a.deployment}-{a.replica}",
                name=f"fleetctl-{a.deployment}-{a.replica}",
                deployment=a.deployment,
                replica=a.replica,
                gpus=a.gpus,
                spec_hash=a.spec_hash,
                state="running",
                image=d.image,
                labeled_image=d.image,
                port=a.port,
            )
        )
    return ObservedFleet(
        {h: ObservedHost(h, containers=tuple(cs)) for h, cs in by_host.items()}, offline=False
    )


def kinds(plan: Plan) -> dict[str, str]:
    return {f"{a.deployment}#{a.replica}": a.kind.value for a in plan.actions}


def test_seed_fleet_offline_plan_creates_everything_on_two_gpus() -> None:
    deps, hosts = seed()
    plan = make_plan(deps, hosts, ObservedFleet.empty(["gpu-host-1"]))
    assert set(kinds(plan).values()) == {"create"}
    assert plan.summary.gpus_used == 2
    assert plan.summary.gpus_naive == 5
    assert plan.summary.gpus_lower_bound <= 2
    data = plan_to_json(plan)
    assert {p["deployment"] for p in data["placements"]} == {d.name for d in deps}
    assert data["summary"]["gpus_used"] == 2
    assert all(isinstance(g, int) for p in data["placements"] for g in p["gpus"])


def test_applied_fleet_plans_nothing() -> None:
    deps, hosts = seed()
    first = make_plan(deps, hosts, ObservedFleet.empty(["gpu-host-1"]))
    again = make_plan(deps, hosts, running_fleet(first, ["gpu-host-1"]))
    assert set(kinds(again).values()) == {"keep"}
    assert not again.has_changes
    assert [a.port for a in again.actions] == [a.port for a in first.actions]


def test_changed_image_recreates_start_first_on_a_fresh_port_when_the_gpu_has_room() -> None:
    deps, hosts = seed()
    first = make_plan(deps, hosts, ObservedFleet.empty(["gpu-host-1"]))
    observed = running_fleet(first, ["gpu-host-1"])
    deps2 = [replace(d, image="tritonserver:25.01") if d.name == "reranker@1" else d for d in deps]
    plan = make_plan(deps2, hosts, observed)
    (change,) = plan.changes
    assert change.kind is ActionKind.RECREATE and change.deployment == "reranker@1"
    assert "image" in change.reason
    assert change.strategy == START_FIRST
    old_port = next(a.port for a in first.actions if a.deployment == "reranker@1")
    assert change.port != old_port  # old and new listen side by side during the rollout


def test_changed_image_on_a_full_gpu_surges_to_a_gpu_with_room_start_first() -> None:
    deps, hosts = seed()
    first = make_plan(deps, hosts, ObservedFleet.empty(["gpu-host-1"]))
    observed = running_fleet(first, ["gpu-host-1"])
    deps2 = [replace(d, image="nim:next") if d.name == "chat-llm@v4" else d for d in deps]
    plan = make_plan(deps2, hosts, observed)
    (change,) = plan.changes
    assert (
        change.kind is ActionKind.RECREATE
        and change.strategy == START_FIRST
        and not change.downtime
    )
    # GPU 0 holds 80 of 80 GB (v3 and v4): the successor goes to an idle GPU beside it.
    assert change.gpus in ((2,), (3,)) and "surge" in change.reason
    assert (
        next(a for a in plan.placement.assignments if a.deployment == "chat-llm@v4").gpus
        == change.gpus
    )
    # Applied, it stays there: the next plan has nothing to do.
    assert not make_plan(deps2, hosts, running_fleet(plan, ["gpu-host-1"])).has_changes


def test_stop_first_only_when_no_gpu_anywhere_can_hold_the_successor() -> None:
    deps, hosts = seed()
    one_gpu = [replace(h, gpus=h.gpus[:1]) for h in hosts]
    chat = [d for d in deps if d.model == "chat-llm"]
    first = make_plan(chat, one_gpu, ObservedFleet.empty(["gpu-host-1"]))
    observed = running_fleet(first, ["gpu-host-1"])
    deps2 = [replace(d, image="nim:next") if d.name == "chat-llm@v4" else d for d in chat]
    (change,) = make_plan(deps2, one_gpu, observed).changes
    assert change.kind is ActionKind.RECREATE
    assert change.strategy == STOP_FIRST and change.downtime  # 80 of 80 GB and nowhere else to go
    assert change.port == next(a.port for a in first.actions if a.deployment == "chat-llm@v4")


def test_drift_removed_by_hand_is_recreated_and_exited_is_replaced() -> None:
    deps, hosts = seed()
    first = make_plan(deps, hosts, ObservedFleet.empty(["gpu-host-1"]))
    observed = running_fleet(first, ["gpu-host-1"])
    h = observed.hosts["gpu-host-1"]
    containers = [c for c in h.containers if c.deployment != "embeddings@1"]
    containers = [
        replace(c, state="exited") if c.deployment == "reranker@1" else c for c in containers
    ]
    plan = make_plan(
        deps, hosts, ObservedFleet({"gpu-host-1": replace(h, containers=tuple(containers))})
    )
    k = kinds(plan)
    assert k["embeddings@1#0"] == "create"
    assert k["reranker@1#0"] == "recreate"
    recreate = next(a for a in plan.actions if a.deployment == "reranker@1")
    assert recreate.reason == "drift: container is exited" and recreate.strategy == STOP_FIRST
    # The re-created replica goes back where it was.
    assert (
        next(a for a in plan.actions if a.deployment == "embeddings@1").gpus
        == next(a for a in first.actions if a.deployment == "embeddings@1").gpus
    )


def test_model_removed_from_inventory_is_planned_for_removal_and_nothing_else_moves() -> None:
    deps, hosts = seed()
    first = make_plan(deps, hosts, ObservedFleet.empty(["gpu-host-1"]))
    observed = running_fleet(first, ["gpu-host-1"])
    plan = make_plan([d for d in deps if d.model != "reranker"], hosts, observed)
    k = kinds(plan)
    assert k.pop("reranker@1#0") == "remove"
    assert set(k.values()) == {"keep"}


def test_added_model_moves_no_running_replica() -> None:
    deps, hosts = seed()
    first = make_plan(deps, hosts, ObservedFleet.empty(["gpu-host-1"]))
    observed = running_fleet(first, ["gpu-host-1"])
    extra = Deployment(
        model="ocr", version="1", runtime="triton", image="t", memory_gb=10, sla_ms=100
    )
    plan = make_plan([*deps, extra], hosts, observed)
    k = kinds(plan)
    assert k.pop("ocr@1#0") == "create"
    assert set(k.values()) == {"keep"}


def test_unreachable_host_blocks_only_its_own_changes() -> None:
    hosts = [
        HostSpec("h1", (GpuSpec(0, 80),)),
        HostSpec("h2", (GpuSpec(0, 80),)),
    ]
    deps = [
        Deployment(model="a", version="1", runtime="nim", image="a", memory_gb=60, selector={}),
        Deployment(model="b", version="1", runtime="nim", image="b", memory_gb=60),
    ]
    observed = ObservedFleet(
        {
            "h1": ObservedHost("h1"),
            "h2": ObservedHost("h2", reachable=False, error="connection refused"),
        },
        offline=False,
    )
    plan = make_plan(deps, hosts, observed, RANGES)
    blocked = [a for a in plan.actions if a.blocked]
    assert [a.host for a in blocked] == ["h2"]
    assert plan.unreachable == {"h2": "connection refused"}


def test_leftover_temporary_container_is_removed() -> None:
    deps, hosts = seed()
    first = make_plan(deps, hosts, ObservedFleet.empty(["gpu-host-1"]))
    observed = running_fleet(first, ["gpu-host-1"])
    h = observed.hosts["gpu-host-1"]
    original = next(c for c in h.containers if c.deployment == "embeddings@1")
    temp = replace(original, id="tmp", name=original.name + "-next", temporary=True, port=29996)
    plan = make_plan(
        deps, hosts, ObservedFleet({"gpu-host-1": replace(h, containers=h.containers + (temp,))})
    )
    (change,) = plan.changes
    assert change.kind is ActionKind.REMOVE and change.container == temp.name


def test_plan_is_deterministic() -> None:
    deps, hosts = seed()
    a = plan_to_json(make_plan(deps, hosts, ObservedFleet.empty(["gpu-host-1"])))
    b = plan_to_json(make_plan(deps, hosts, ObservedFleet.empty(["gpu-host-1"])))
    assert a == b


def test_a_triton_model_unloaded_or_loaded_by_hand_is_drift_the_plan_repairs() -> None:
    deps, hosts = seed()
    first = make_plan(deps, hosts, ObservedFleet.empty(["gpu-host-1"]))
    observed = running_fleet(first, ["gpu-host-1"])
    h = observed.hosts["gpu-host-1"]

    def with_ready(ready: tuple[str, ...] | None) -> ObservedFleet:
        cs = tuple(
            replace(c, triton_ready=ready) if c.deployment == "reranker@1" else c
            for c in h.containers
        )
        return ObservedFleet({"gpu-host-1": replace(h, containers=cs)})

    assert not make_plan(deps, hosts, with_ready(("reranker",))).has_changes
    assert not make_plan(deps, hosts, with_ready(None)).has_changes  # no answer: not drift
    (gone,) = make_plan(deps, hosts, with_ready(())).changes
    assert (
        gone.kind is ActionKind.RECREATE
        and gone.reason == "drift: Triton model reranker not loaded"
    )
    assert gone.strategy == START_FIRST  # the server keeps serving while its successor loads
    (extra,) = make_plan(deps, hosts, with_ready(("reranker", "scratch"))).changes
    assert extra.reason == "drift: Triton model scratch loaded but not declared"
