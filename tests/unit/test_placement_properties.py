"""Properties of placement on random fleets: every rule holds, plans are stable and repeatable.

The checker below re-derives every rule from the domain types and the SLA model alone,
without the placement's own bookkeeping.
"""

from __future__ import annotations

from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetctl.core.fleet import Deployment, GpuSpec, HostSpec, Placement
from fleetctl.core.placement import lower_bound, place
from fleetctl.core.sla import predicted_p95, util_of

TOL = 1e-6

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# GPU models with their memory; "" is a GPU declared without a model name.
GPU_KINDS = [(24.0, "L4"), (40.0, "A100"), (80.0, "H100"), (80.0, ""), (24.0, "")]


@st.composite
def hosts_strategy(draw: st.DrawFn) -> list[HostSpec]:
    hosts = []
    for h in range(draw(st.integers(1, 4))):
        reserve = draw(st.sampled_from([0.0, 0.0, 2.0]))
        # One or two groups of GPUs, each of one model (or none named).
        sizes: list[tuple[float, str]] = []
        for _ in range(draw(st.integers(1, 2))):
            memory, model = draw(st.sampled_from(GPU_KINDS))
            sizes += [(memory, model)] * draw(st.integers(1, 3))
        gpus = tuple(GpuSpec(i, m, reserve, model) for i, (m, model) in enumerate(sizes[:4]))
        labels = {"zone": draw(st.sampled_from(["a", "b"]))}
        hosts.append(HostSpec(f"host-{h}", gpus, labels=labels))
    return hosts


@st.composite
def deployment_strategy(draw: st.DrawFn, index: int) -> Deployment:
    gpus = draw(st.sampled_from([1, 1, 1, 2, 3]))
    sla = draw(st.one_of(st.none(), st.sampled_from([20.0, 50.0, 100.0, 200.0])))
    latency = draw(st.one_of(st.none(), st.floats(2.0, 120.0))) if sla is not None else None
    return Deployment(
        model=f"model-{index}",
        version="1",
        runtime="triton",
        image="img",
        memory_gb=draw(st.floats(0.5, 90.0)) * gpus,
        gpus=gpus,
        replicas=draw(st.integers(0, 3)),
        sla_ms=sla,
        latency_ms=latency,
        gpu_util=draw(st.one_of(st.none(), st.floats(0.01, 1.0))),
        exclusive=draw(st.booleans().map(lambda b: b and draw(st.integers(0, 4)) == 0)),
        selector=draw(st.sampled_from([{}, {}, {}, {"zone": "a"}, {"zone": "c"}])),
        gpu_models=draw(st.sampled_from([(), (), (), ("H100",), ("L4",), ("A100", "H100")])),
    )


@st.composite
def fleets(draw: st.DrawFn, max_deployments: int = 8) -> tuple[list[Deployment], list[HostSpec]]:
    hosts = draw(hosts_strategy())
    n = draw(st.integers(1, max_deployments))
    deps = [draw(deployment_strategy(i)) for i in range(n)]
    return deps, hosts


def assert_valid(deps: list[Deployment], hosts: list[HostSpec], plan: Placement) -> None:
    by_name = {d.name: d for d in deps}
    gpu_of = {(h.name, g.index): g for h in hosts for g in h.gpus}
    host_of = {h.name: h for h in hosts}
    keys = [(a.deployment, a.replica) for a in plan.assignments] + [
        (u.deployment, u.replica) for u in plan.unplaced
    ]
    expected = {(d.name, r) for d in deps for r in range(d.replicas)}
    assert len(keys) == len(set(keys)) and set(keys) == expected, (
        "every replica placed or unplaced, once"
    )
    tenants: dict[tuple[str, int], list[Deployment]] = defaultdict(list)
    for a in plan.assignments:
        d = by_name[a.deployment]
        assert host_of[a.host].matches(d.selector), "selector"
        assert len(a.gpus) == d.gpus == len(set(a.gpus)), "tensor parallel: k distinct GPUs"
        for i in a.gpus:
            tenants[(a.host, i)].append(d)
            model = gpu_of[(a.host, i)].model
            assert not d.gpu_models or model in d.gpu_models, f"GPU model {model!r} of {d.name}"
    for where, ds in tenants.items():
        gpu = gpu_of[where]
        assert len({d.name for d in ds}) == len(ds), "replicas of one deployment share a GPU"
        assert sum(d.memory_per_gpu_gb for d in ds) <= gpu.usable_gb + TOL, "memory"
        assert sum(util_of(d, gpu) for d in ds) <= 1 + TOL, "utilisation"
        if any(d.exclusive for d in ds):
            assert len(ds) == 1, "exclusive"
        for i, d in enumerate(ds):
            if d.sla_ms is not None:
                others = ds[:i] + ds[i + 1 :]
                assert predicted_p95(d, gpu, others) <= d.sla_ms * (1 + TOL), (
                    f"SLA of {d.name} on {where}"
                )
    for u in plan.unplaced:
        assert u.reasons and all(isinstance(r, str) and r for r in u.reasons)
    for a in plan.assignments:
        assert f"{a.deployment}#{a.replica}" in plan.reasons


@PROPS
@given(fleets())
def test_every_rule_holds(fleet: tuple[list[Deployment], list[HostSpec]]) -> None:
    deps, hosts = fleet
    plan = place(deps, hosts)
    assert_valid(deps, hosts, plan)
    if plan.feasible:
        assert plan.gpus_used() >= lower_bound(deps, hosts)


@PROPS
@given(fleets(), st.randoms(use_true_random=False))
def test_same_input_same_plan(fleet: tuple[list[Deployment], list[HostSpec]], rnd: object) -> None:
    deps, hosts = fleet
    plan = place(deps, hosts)
    assert place(deps, hosts) == plan
    shuffled_deps, shuffled_hosts = list(deps), list(hosts)
    rnd.shuffle(shuffled_deps)  # type: ignore[attr-defined]
    rnd.shuffle(shuffled_hosts)  # type: ignore[attr-defined]
    assert place(shuffled_deps, shuffled_hosts) == plan


@PROPS
@given(fleets(max_deployments=6), deployment_strategy(99))
def test_adding_a_model_moves_nothing(
    fleet: tuple[list[Deployment], list[HostSpec]], extra: Deployment
) -> None:
    deps, hosts = fleet
    before = place(deps, hosts)
    after = place([*deps, extra], hosts, before.assignments)
    assert_valid([*deps, extra], hosts, after)
    # A move is allowed only when the new model cannot be placed around what runs (the
    # heuristic keeps every running replica, so when it succeeds nothing had to move).
    if place([*deps, extra], hosts, before.assignments, budget=0).feasible:
        assert set(before.assignments) <= set(after.assignments)


@PROPS
@given(fleets(), st.data())
def test_removing_a_model_moves_nothing(
    fleet: tuple[list[Deployment], list[HostSpec]], data: st.DataObject
) -> None:
    deps, hosts = fleet
    before = place(deps, hosts)
    gone = data.draw(st.sampled_from(deps))
    rest = [d for d in deps if d is not gone]
    after = place(rest, hosts, before.assignments)
    assert_valid(rest, hosts, after)
    kept = {a for a in before.assignments if a.deployment != gone.name}
    assert kept <= set(after.assignments)


@PROPS
@given(fleets())
def test_replanning_with_its_own_result_changes_nothing(
    fleet: tuple[list[Deployment], list[HostSpec]],
) -> None:
    deps, hosts = fleet
    plan = place(deps, hosts)
    again = place(deps, hosts, plan.assignments)
    assert set(plan.assignments) <= set(again.assignments)
    assert all(
        again.reasons[f"{a.deployment}#{a.replica}"].startswith("kept on") for a in plan.assignments
    )
