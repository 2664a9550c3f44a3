"""The exact phase and the constraints issue 12 added, as properties on random fleets.

- no "infeasible" where a brute-force search (written here, independent of placement)
  finds a valid placement;
- container slots per host (port blocks, max_containers) hold in every plan;
- the same input gives the same plan with the solver involved, whatever the order;
- growing one model moves only that model while its neighbours still fit;
- replicas of one deployment spread evenly over eligible hosts.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetctl.core.fleet import Assignment, Deployment, GpuSpec, HostSpec, Placement
from fleetctl.core.placement import place
from fleetctl.core.sla import predicted_p95, util_of

TOL = 1e-6
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def dep(name: str, memory: float, **kw: object) -> Deployment:
    return Deployment(
        model=name, version="1", runtime="triton", image="img", memory_gb=memory, **kw
    )  # type: ignore[arg-type]


def gpu_ok(ds: list[Deployment], g: GpuSpec) -> bool:
    """Every rule of one GPU, from the domain types and the SLA model alone."""
    if len({d.name for d in ds}) != len(ds):
        return False
    if any(d.exclusive for d in ds) and len(ds) > 1:
        return False
    if sum(d.memory_per_gpu_gb for d in ds) > g.usable_gb + TOL:
        return False
    if sum(util_of(d, g) for d in ds) > 1 + TOL:
        return False
    for d in ds:
        if (
            d.sla_ms is not None
            and predicted_p95(d, g, [o for o in ds if o is not d]) > d.sla_ms + TOL
        ):
            return False
    return True


def valid(deps: list[Deployment], hosts: list[HostSpec], plan: Placement) -> bool:
    by_name = {d.name: d for d in deps}
    gpu_of = {(h.name, g.index): g for h in hosts for g in h.gpus}
    host_of = {h.name: h for h in hosts}
    on: dict[tuple[str, int], list[Deployment]] = {}
    per_host = Counter(a.host for a in plan.assignments)
    for h, n in per_host.items():
        cap = host_of[h].max_containers
        if cap is not None and n > cap:
            return False
    for a in plan.assignments:
        d = by_name[a.deployment]
        if not host_of[a.host].matches(d.selector) or len(set(a.gpus)) != d.gpus:
            return False
        if d.gpu_models and any(gpu_of[(a.host, i)].model not in d.gpu_models for i in a.gpus):
            return False
        for i in a.gpus:
            on.setdefault((a.host, i), []).append(d)
    return all(gpu_ok(ds, gpu_of[w]) for w, ds in on.items())


def brute_force_feasible(deps: list[Deployment], hosts: list[HostSpec]) -> bool:
    """Try every assignment of single-GPU replicas to GPUs (small instances only)."""
    gpus = [(h, g) for h in hosts for g in h.gpus]
    reps = [d for d in deps for _ in range(d.replicas)]
    for choice in itertools.product(range(len(gpus)), repeat=len(reps)):
        per_host = Counter(gpus[c][0].name for c in choice)
        if any(h.max_containers is not None and per_host[h.name] > h.max_containers for h in hosts):
            continue
        on: dict[int, list[Deployment]] = {}
        ok = True
        for d, c in zip(reps, choice):
            if not gpus[c][0].matches(d.selector) or (
                d.gpu_models and gpus[c][1].model not in d.gpu_models
            ):
                ok = False
                break
            on.setdefault(c, []).append(d)
        if ok and all(gpu_ok(ds, gpus[c][1]) for c, ds in on.items()):
            return True
    return False


@st.composite
def tight_fleets(draw: st.DrawFn) -> tuple[list[Deployment], list[HostSpec]]:
    """Up to 5 single-GPU replicas on up to 4 GPUs: small enough to search by brute force,
    tight enough that a greedy order often fails."""
    hosts = []
    for h in range(draw(st.integers(1, 2))):
        n = draw(st.integers(1, 2))
        labels = {"tier": draw(st.sampled_from(["gold", "plain"]))}
        cap = draw(st.sampled_from([None, None, 1, 2]))
        hosts.append(
            HostSpec(
                f"h{h}",
                tuple(
                    GpuSpec(i, 80.0, model=draw(st.sampled_from(["H100", "H100", "A100"])))
                    for i in range(n)
                ),
                labels=labels,
                max_containers=cap,
            )
        )
    deps = []
    total = 0
    for i in range(draw(st.integers(1, 4))):
        replicas = draw(st.integers(1, 2))
        if total + replicas > 5:
            break
        total += replicas
        sla = draw(st.sampled_from([None, None, 50.0, 100.0]))
        deps.append(
            dep(
                f"m{i}",
                draw(st.sampled_from([10.0, 30.0, 40.0, 50.0, 60.0, 70.0])),
                replicas=replicas,
                sla_ms=sla,
                latency_ms=draw(st.sampled_from([10.0, 25.0])) if sla else None,
                gpu_util=draw(st.sampled_from([None, 0.2, 0.5])),
                exclusive=draw(st.sampled_from([False, False, False, True])),
                selector=draw(st.sampled_from([{}, {}, {"tier": "gold"}])),
                gpu_models=draw(st.sampled_from([(), (), ("A100",), ("H100",)])),
            )
        )
    return deps, hosts


@PROPS
@given(tight_fleets())
def test_no_false_infeasible_and_every_rule_holds(
    fleet: tuple[list[Deployment], list[HostSpec]],
) -> None:
    deps, hosts = fleet
    plan = place(deps, hosts)
    assert valid(deps, hosts, plan)
    if brute_force_feasible(deps, hosts):
        assert plan.feasible, [u.reasons for u in plan.unplaced]
    else:
        assert not plan.feasible


@PROPS
@given(tight_fleets(), st.randoms(use_true_random=False))
def test_same_input_same_plan_with_the_solver(
    fleet: tuple[list[Deployment], list[HostSpec]], rnd: random.Random
) -> None:
    deps, hosts = fleet
    first = place(deps, hosts)
    deps2, hosts2 = list(deps), list(hosts)
    rnd.shuffle(deps2)
    rnd.shuffle(hosts2)
    again = place(deps2, hosts2)
    assert sorted(first.assignments, key=str) == sorted(again.assignments, key=str)
    assert first.unplaced == again.unplaced and first.search == again.search


@PROPS
@given(st.integers(2, 12), st.integers(1, 6), st.integers(1, 4))
def test_replicas_spread_evenly(replicas: int, n_hosts: int, gpus: int) -> None:
    hosts = [
        HostSpec(f"h{i}", tuple(GpuSpec(g, 80.0) for g in range(gpus))) for i in range(n_hosts)
    ]
    plan = place([dep("svc", 10.0, replicas=replicas)], hosts)
    if replicas > n_hosts * gpus:
        return  # replicas never share a GPU: not all fit
    counts = Counter(a.host for a in plan.assignments)
    spread = [counts.get(h.name, 0) for h in hosts]
    assert max(spread) - min(spread) <= 1


@PROPS
@given(st.lists(st.sampled_from([5.0, 10.0, 20.0, 30.0]), min_size=2, max_size=8), st.data())
def test_growing_one_model_moves_only_it(sizes: list[float], data: st.DataObject) -> None:
    hosts = [HostSpec(f"h{i}", tuple(GpuSpec(g, 80.0) for g in range(2))) for i in range(2)]
    deps = [dep(f"m{i}", s) for i, s in enumerate(sizes)]
    first = place(deps, hosts, budget=0)
    grown = data.draw(st.integers(0, len(deps) - 1))
    deps2 = list(deps)
    deps2[grown] = dep(f"m{grown}", sizes[grown] + 45.0)
    changed = {f"m{grown}@1#0"}
    second = place(deps2, hosts, first.assignments, changed=changed)
    before = {a.key: a for a in first.assignments}
    for a in second.assignments:
        if a.deployment != f"m{grown}@1":
            assert before[a.key] == a, f"{a.key} moved"


def test_gold_host_sorting_first_is_no_longer_infeasible() -> None:
    # Issue 12: two 1-GPU hosts, `big` anywhere, `gold` on tier=gold only.
    hosts = [
        HostSpec("a-gold", (GpuSpec(0, 80.0),), {"tier": "gold"}),
        HostSpec("m-plain", (GpuSpec(0, 80.0),)),
    ]
    deps = [dep("big", 70.0), dep("gold", 60.0, selector={"tier": "gold"})]
    assert not place(deps, hosts, budget=0).feasible  # the heuristic alone fails here
    plan = place(deps, hosts)
    assert plan.feasible and plan.search == "solved"
    assert {a.deployment: a.host for a in plan.assignments} == {
        "big@1": "m-plain",
        "gold@1": "a-gold",
    }


def test_six_replicas_on_three_idle_hosts_land_two_each() -> None:
    hosts = [HostSpec(f"h{i}", tuple(GpuSpec(g, 80.0) for g in range(4))) for i in range(3)]
    plan = place([dep("svc", 10.0, replicas=6)], hosts)
    assert Counter(a.host for a in plan.assignments) == {"h0": 2, "h1": 2, "h2": 2}


def test_container_slots_are_a_placement_constraint() -> None:
    # Small models that would all fit one host's GPUs go to the next host once the
    # first has no port block left, instead of failing after placement.
    hosts = [HostSpec(f"h{i}", tuple(GpuSpec(g, 80.0) for g in range(8))) for i in range(3)]
    deps = [dep(f"m{i}", 1.0) for i in range(12)]
    plan = place(deps, hosts, slots={"h0": 5, "h1": 5, "h2": 5})
    assert plan.feasible
    assert max(Counter(a.host for a in plan.assignments).values()) <= 5
    capped = [HostSpec("h0", hosts[0].gpus, max_containers=2)]
    over = place(deps[:3], capped)
    assert len(over.assignments) == 2 and len(over.unplaced) == 1
    assert any("containers per host" in r for r in over.unplaced[0].reasons)


def test_a_proof_names_the_rule_and_the_conflicting_deployment() -> None:
    hosts = [HostSpec("h", (GpuSpec(0, 80.0),))]
    plan = place([dep("chat", 48.0, sla_ms=200.0), dep("guard", 1.0, sla_ms=20.0)], hosts)
    assert plan.search == "infeasible"
    (u,) = plan.unplaced
    assert u.reasons[-1] == (
        "proven infeasible by the exact search: latency SLAs of the tenants together with "
        f"{'chat@1' if u.deployment == 'guard@1' else 'guard@1'} admit no placement"
    )


def test_solver_finds_what_a_greedy_order_misses_with_tensor_parallel() -> None:
    # A 2-GPU gang needs the host whose GPUs the greedy pass filled first.
    hosts = [
        HostSpec("a", (GpuSpec(0, 80.0), GpuSpec(1, 80.0))),
        HostSpec("b", (GpuSpec(0, 80.0),)),
    ]
    deps = [dep("one", 50.0), dep("gang", 140.0, gpus=2)]
    plan = place(deps, hosts)
    assert plan.feasible
    assert {a.deployment: a.host for a in plan.assignments} == {"gang@1": "a", "one@1": "b"}


def test_kept_assignments_respect_the_heuristic_without_budget() -> None:
    hosts = [HostSpec("h", (GpuSpec(0, 80.0), GpuSpec(1, 80.0)))]
    running = [Assignment("a@1", 0, "h", (1,))]
    plan = place([dep("a", 10.0), dep("b", 75.0)], hosts, running, budget=0)
    assert {a.deployment: a.gpus for a in plan.assignments} == {"a@1": (1,), "b@1": (0,)}
