"""Placement: packing, hard rules, reasons, stability and explanations on small fleets."""

from __future__ import annotations

import math
from typing import Any

import pytest

from fleetctl.core.explain import ReplicaExplanation, explain
from fleetctl.core.fleet import Assignment, Deployment, GpuSpec, HostSpec, Placement
from fleetctl.core.placement import lower_bound, naive_gpus, place
from fleetctl.core.sla import latency_of, predicted_p95, util_of
from fleetctl.errors import NotFoundError


def dep(name: str, memory: float, version: str = "1", **kw: Any) -> Deployment:
    return Deployment(
        model=name, version=version, runtime="triton", image="img", memory_gb=memory, **kw
    )


def host(
    name: str, n: int = 4, memory: float = 80.0, reserve: float = 0.0, **labels: str
) -> HostSpec:
    return HostSpec(name, tuple(GpuSpec(i, memory, reserve) for i in range(n)), labels=labels)


def seed_fleet() -> tuple[list[Deployment], list[HostSpec]]:
    deps = [
        dep("chat-llm", 40, "v4", sla_ms=200),
        dep("chat-llm", 40, "v3", sla_ms=200),
        dep("embeddings", 2, sla_ms=30),
        dep("reranker", 4, sla_ms=50),
        dep("safety-guard", 1, sla_ms=20),
    ]
    return deps, [host("gpu-host-1", 4)]


def where(plan: Placement) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {f"{a.deployment}#{a.replica}": (a.host, a.gpus) for a in plan.assignments}


# -- the SLA model -------------------------------------------------------------------


def test_sla_model_defaults() -> None:
    gpu = GpuSpec(0, 80.0)
    chat = dep("chat", 48, sla_ms=200)
    safety = dep("safety", 1, sla_ms=20)
    assert util_of(chat, gpu) == pytest.approx(0.6)
    assert util_of(dep("x", 8, gpu_util=0.3), gpu) == 0.3
    assert latency_of(safety) == 10
    assert latency_of(dep("x", 1, sla_ms=20, latency_ms=4)) == 4
    assert latency_of(dep("x", 1)) is None
    assert predicted_p95(safety, gpu, [chat]) == pytest.approx(25.0)
    assert predicted_p95(safety, gpu, [dep("big", 80)]) == math.inf


# -- packing -------------------------------------------------------------------------


def test_seed_fleet_packs_on_two_gpus() -> None:
    deps, hosts = seed_fleet()
    plan = place(deps, hosts)
    assert plan.feasible
    assert plan.gpus_used() == 2
    assert naive_gpus(deps) == 5
    assert lower_bound(deps, hosts) == 2
    w = where(plan)
    assert w["chat-llm@v3#0"] == w["chat-llm@v4#0"]
    small = {w[k] for k in ("embeddings@1#0", "reranker@1#0", "safety-guard@1#0")}
    assert len(small) == 1 and small != {w["chat-llm@v4#0"]}
    reason = plan.reasons["safety-guard@1#0"]
    assert (
        reason.startswith("best fit on gpu-host-1 GPU")
        and "SLA ok" in reason
        and "<= 20 ms" in reason
    )


def test_chat_and_safety_are_kept_apart_by_sla() -> None:
    chat = dep("chat-llm", 48, sla_ms=200)
    safety = dep("safety-guard", 1, sla_ms=20)
    two = place([chat, safety], [host("h", 2)])
    assert two.feasible and two.gpus_used() == 2
    one = place([chat, safety], [host("h", 1)])
    assert [u.deployment for u in one.unplaced] == ["safety-guard@1"]
    # The chat is placed first (larger); beside it the safety model would see 10 / 0.4.
    assert one.unplaced[0].reasons == (
        "SLA: would break its own on 1 GPU(s) with room (safety-guard@1 itself 25.0 ms > 20 ms on h GPU 0)",
        "proven infeasible by the exact search: latency SLAs of the tenants together with chat-llm@1 admit no placement",
    )


def test_neighbour_sla_reason_names_the_victim() -> None:
    safety = dep("safety-guard", 1, sla_ms=20)
    chat = dep("chat-llm", 48)  # no SLA of its own: only its neighbour's can break
    running = [Assignment("safety-guard@1", 0, "h", (0,))]
    plan = place([safety, chat], [host("h", 1)], running)
    (u,) = plan.unplaced
    assert u.deployment == "chat-llm@1"
    assert u.reasons == (
        "SLA: would break on 1 GPU(s) with room (safety-guard@1 25.0 ms > 20 ms on h GPU 0)",
        "proven infeasible by the exact search: latency SLAs of the tenants together with safety-guard@1 admit no placement",
    )


def test_small_models_share_a_gpu() -> None:
    deps = [dep(f"m{i}", 5, sla_ms=100) for i in range(6)]
    plan = place(deps, [host("h", 4)])
    assert plan.gpus_used() == 1


# -- hard rules ----------------------------------------------------------------------


def test_tensor_parallel_takes_gpus_on_one_host() -> None:
    big = dep("llama-70b", 140, gpus=2)
    hosts = [host("a", 1), host("b", 2)]
    plan = place([big], hosts)
    (a,) = plan.assignments
    assert a.host == "b" and a.gpus == (0, 1)


def test_tensor_parallel_infeasible_reason() -> None:
    big = dep("llama-405b", 320, gpus=4)
    plan = place([big], [host("a", 2), host("b", 2)])
    (u,) = plan.unplaced
    assert any(r.startswith("tensor parallel: needs 4 GPUs on one host") for r in u.reasons)
    running = [Assignment("x@1", r, "a", (r,)) for r in range(3)]
    busy = place([dep("x", 70, replicas=3), dep("tp", 100, gpus=2)], [host("a", 4)], running)
    (u,) = busy.unplaced
    assert u.deployment == "tp@1"
    assert any(
        "tensor parallel: needs 2 GPUs on one host, most free on one host is 1" in r
        for r in u.reasons
    )


def test_exclusive_gets_a_gpu_of_its_own() -> None:
    deps = [dep("solo", 10, exclusive=True), dep("a", 5), dep("b", 5)]
    plan = place(deps, [host("h", 2)])
    w = where(plan)
    assert w["solo@1#0"] != w["a@1#0"] and w["solo@1#0"] != w["b@1#0"]
    assert plan.gpus_used() == 2
    crowded = place([dep("a", 5), dep("solo", 10, exclusive=True)], [host("h", 1)])
    (u,) = crowded.unplaced  # exclusive replicas are placed first
    assert u.deployment == "a@1"
    assert u.reasons == (
        "exclusive: 1 GPU(s) with room are held exclusively (solo@1#0 on h GPU 0)",
        "proven infeasible by the exact search: exclusive GPUs together with solo@1 admit no placement",
    )
    running = [Assignment("a@1", 0, "h", (0,))]
    taken = place([dep("a", 5), dep("solo", 10, exclusive=True)], [host("h", 1)], running)
    (u,) = taken.unplaced
    assert u.deployment == "solo@1"
    assert u.reasons == (
        "exclusive: needs an empty GPU, 1 GPU(s) with room are shared",
        "proven infeasible by the exact search: exclusive GPUs together with a@1 admit no placement",
    )


def test_selector_restricts_hosts() -> None:
    deps = [dep("a100-only", 10, selector={"gpu": "a100"})]
    plan = place(deps, [host("h1", 2, gpu="h100"), host("h2", 2, gpu="a100")])
    assert plan.assignments[0].host == "h2"
    none = place([dep("prod", 10, selector={"env": "prod"})], [host("h1", 2, env="dev")])
    assert none.unplaced[0].reasons == ("selector env=prod matches no host",)


def test_too_big_for_any_gpu() -> None:
    plan = place([dep("huge", 90)], [host("h", 2, memory=80)])
    assert plan.unplaced[0].reasons == (
        "memory: needs 90.0 GB per GPU, largest usable GPU has 80.0 GB",
    )
    reserved = place([dep("m", 78)], [host("h", 1, memory=80, reserve=4)])
    assert "largest usable GPU has 76.0 GB" in reserved.unplaced[0].reasons[0]


def test_memory_full_reason() -> None:
    plan = place([dep("a", 60), dep("b", 30)], [host("h", 1)])
    (u,) = plan.unplaced
    assert u.reasons == (
        "memory: full on 1 GPU(s) (needs 30.0 GB per GPU, most free is 20.0 GB)",
        "proven infeasible by the exact search: GPU memory together with a@1 admit no placement",
    )


def test_replicas_never_share_a_gpu_and_spread_over_hosts() -> None:
    deps = [dep("web", 5, replicas=3)]
    one_host = place(deps, [host("h", 4)])
    gpus = [a.gpus for a in one_host.assignments]
    assert len(set(gpus)) == 3
    three_hosts = place(deps, [host("a", 2), host("b", 2), host("c", 2)])
    assert sorted(a.host for a in three_hosts.assignments) == ["a", "b", "c"]
    single_gpu = place([dep("web", 5, replicas=2)], [host("h", 1)])
    (u,) = single_gpu.unplaced
    assert u.replica == 1 and any(r.startswith("replicas:") for r in u.reasons)


def test_spread_beats_packing_on_a_used_host() -> None:
    # Replica 1 could share host a's second GPU, but host b is preferred.
    plan = place([dep("web", 5, replicas=2)], [host("a", 2), host("b", 2)])
    assert sorted(a.host for a in plan.assignments) == ["a", "b"]


def test_utilisation_sums_to_at_most_one() -> None:
    deps = [dep(f"busy{i}", 1, gpu_util=0.4) for i in range(3)]
    plan = place(deps, [host("h", 2)])
    assert plan.gpus_used() == 2


# -- stability -----------------------------------------------------------------------


def test_previous_assignments_stay_put() -> None:
    deps, hosts = seed_fleet()
    # Running where best fit would not put them: they must stay anyway.
    previous = [
        Assignment("embeddings@1", 0, "gpu-host-1", (3,)),
        Assignment("chat-llm@v4", 0, "gpu-host-1", (2,)),
    ]
    plan = place(deps, hosts, previous)
    w = where(plan)
    assert w["embeddings@1#0"] == ("gpu-host-1", (3,))
    assert w["chat-llm@v4#0"] == ("gpu-host-1", (2,))
    assert plan.reasons["embeddings@1#0"].startswith("kept on gpu-host-1 GPU 3")


def test_kept_tensor_parallel_replica_keeps_its_gpu_order() -> None:
    previous = [Assignment("tp@1", 0, "h", (3, 1))]
    plan = place([dep("tp", 100, gpus=2)], [host("h", 4)], previous)
    assert plan.assignments == tuple(previous)


def test_adding_and_removing_models_moves_nothing() -> None:
    deps, hosts = seed_fleet()
    first = place(deps, hosts)
    grown = place([*deps, dep("new-model", 30, sla_ms=100)], hosts, first.assignments)
    assert set(first.assignments) <= set(grown.assignments)
    shrunk = place(deps[1:], hosts, first.assignments)
    assert set(shrunk.assignments) == {a for a in first.assignments if a.deployment != deps[0].name}


def test_stale_previous_assignments_are_replaced() -> None:
    deps = [dep("grew", 70), dep("other", 20)]
    previous = [
        Assignment("grew@1", 0, "h", (0,)),
        Assignment("other@1", 0, "h", (0,)),  # no longer fits beside the grown model
        Assignment("gone@1", 0, "h", (1,)),  # deployment removed
        Assignment("grew@1", 1, "h", (1,)),  # replica index beyond replicas
        Assignment("other@1", 0, "missing-host", (0,)),
    ]
    plan = place(deps, [host("h", 2)], previous)
    w = where(plan)
    assert w == {"grew@1#0": ("h", (0,)), "other@1#0": ("h", (1,))}


def test_deterministic_and_independent_of_input_order() -> None:
    deps, hosts = seed_fleet()
    hosts = [host("b", 2), host("a", 2), host("c", 2)]
    a = place(deps, hosts)
    b = place(list(reversed(deps)), list(reversed(hosts)))
    assert a == b


# -- explain -------------------------------------------------------------------------


def test_explain_says_why_safety_guard_is_not_beside_chat() -> None:
    deps, hosts = seed_fleet()
    plan = place(deps, hosts)
    (e,) = explain("safety-guard@1", deps, hosts, plan)
    assert isinstance(e, ReplicaExplanation)
    chat_gpu = where(plan)["chat-llm@v4#0"][1][0]
    (group,) = [g for g in e.elsewhere if f"gpu-host-1:{chat_gpu}" in g.gpus]
    text = "; ".join(group.reasons)
    assert "memory: needs 1.0 GB, 0.0 GB free" in text
    assert "SLA: chat-llm@v" in text and "> 200 ms" in text
    assert "SLA: this replica would see" in text
    idle = [g for g in e.elsewhere if any("fits" in r for r in g.reasons)]
    assert idle and "best fit" in idle[0].reasons[0]
    assert e.render().startswith("safety-guard@1#0 -> gpu-host-1 GPU")


def test_explain_chat_sees_the_safety_sla() -> None:
    deps, hosts = seed_fleet()
    plan = place(deps, hosts)
    explained = explain("chat-llm", deps, hosts, plan)
    assert [e.key for e in explained] == ["chat-llm@v3#0", "chat-llm@v4#0"]
    small_gpu = where(plan)["safety-guard@1#0"][1][0]
    (group,) = [g for g in explained[0].elsewhere if f"gpu-host-1:{small_gpu}" in g.gpus]
    assert group.reasons == ("SLA: safety-guard@1 would see 23.5 ms > 20 ms",)


def test_explain_other_reasons() -> None:
    deps = [
        dep("solo", 10, exclusive=True),
        dep("web", 5, replicas=2),
        dep("picky", 5, selector={"gpu": "a100"}),
    ]
    hosts = [host("a", 2, gpu="a100"), host("b", 1, gpu="h100")]
    plan = place(deps, hosts)
    picky = {r for e in explain("picky", deps, hosts, plan) for g in e.elsewhere for r in g.reasons}
    assert "host labels do not match selector gpu=a100" in picky
    web = {r for e in explain("web@1", deps, hosts, plan) for g in e.elsewhere for r in g.reasons}
    assert "exclusive GPU held by solo@1#0" in web
    assert any(t.startswith("replica #") and "of the same deployment is there" in t for t in web)


def test_explain_unplaced_and_unknown() -> None:
    deps = [dep("huge", 90)]
    hosts = [host("h", 1)]
    plan = place(deps, hosts)
    (e,) = explain("huge", deps, hosts, plan)
    assert e.host is None and e.why == plan.unplaced[0].reasons
    assert "not placed" in e.render()
    with pytest.raises(NotFoundError):
        explain("nope", deps, hosts, plan)
