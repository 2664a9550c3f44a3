"""GPU types: hosts with groups of different GPUs, models that need some GPU models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from fleetctl.core.explain import explain
from fleetctl.core.fleet import Assignment, Deployment, GpuSpec, HostSpec
from fleetctl.core.placement import lower_bound, place
from fleetctl.core.placement.gpus import allows, model_matches
from fleetctl.core.resolve import deployments, host_specs
from fleetctl.core.surge import GpuLoad, surge_target
from fleetctl.errors import InventoryError
from fleetctl.runtimes.inventory import load_text


def dep(name: str, memory: float, **kw: Any) -> Deployment:
    return Deployment(
        model=name, version="1", runtime="triton", image="img", memory_gb=memory, **kw
    )


def mixed(name: str = "h1", **labels: str) -> HostSpec:
    """4 x H100-80GB and 2 x L4 (24 GB), as `gpus: [{...}, {...}]` resolves."""
    gpus = tuple(GpuSpec(i, 80.0, model="H100-80GB") for i in range(4)) + tuple(
        GpuSpec(4 + i, 24.0, model="L4") for i in range(2)
    )
    return HostSpec(name, gpus, labels=labels)


def models_of(plan: Any, hosts: list[HostSpec]) -> dict[str, set[str]]:
    gpu = {(h.name, g.index): g for h in hosts for g in h.gpus}
    out: dict[str, set[str]] = {}
    for a in plan.assignments:
        out.setdefault(a.deployment, set()).update(gpu[(a.host, i)].model for i in a.gpus)
    return out


# -- names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "model", "ok"),
    [
        ("H100", "H100-80GB", True),
        ("H100", "NVIDIA H100 80GB HBM3", True),
        ("h100-80gb", "NVIDIA H100 80GB HBM3", True),
        ("L4", "NVIDIA L4", True),
        ("L4", "NVIDIA L40S", False),
        ("A100-80GB", "NVIDIA A100-SXM4-80GB", False),
        ("A100", "NVIDIA A100-SXM4-80GB", True),
        ("A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB", True),
        ("A100 MIG 3g.40gb", "NVIDIA A100-SXM4-80GB MIG 3g.40gb", False),
        ("MIG 3g.40gb", "NVIDIA A100-SXM4-80GB MIG 3g.40gb", True),
        ("H100", "", False),
        ("", "H100", False),
    ],
)
def test_gpu_model_names_match_as_words(wanted: str, model: str, ok: bool) -> None:
    assert model_matches(wanted, model) is ok


def test_no_requirement_allows_every_gpu() -> None:
    assert allows((), "") and allows((), "L4")
    assert allows(("H100", "L4"), "NVIDIA L4") and not allows(("H100",), "NVIDIA L4")


# -- placement --------------------------------------------------------------------------


def test_a_model_goes_only_on_the_gpu_models_it_names() -> None:
    hosts = [mixed()]
    deps = [
        dep("small-l4", 10, gpu_models=("L4",), replicas=2),
        dep("big", 60, gpu_models=("H100",)),
        dep("anywhere", 10),
    ]
    plan = place(deps, hosts)
    assert plan.feasible
    seen = models_of(plan, hosts)
    assert seen["small-l4@1"] == {"L4"}
    assert seen["big@1"] == {"H100-80GB"}


def test_a_model_that_fits_only_a_larger_gpu_is_placed_there() -> None:
    # Without a requirement the 20 GB model would take an L4 (best fit); naming H100 keeps
    # it off them even though they have room.
    hosts = [mixed()]
    fit = place([dep("m", 20)], hosts)
    assert models_of(fit, hosts)["m@1"] == {"L4"}
    pinned = place([dep("m", 20, gpu_models=("H100",))], hosts)
    assert models_of(pinned, hosts)["m@1"] == {"H100-80GB"}


def test_tensor_parallel_takes_gpus_of_the_model_only() -> None:
    hosts = [mixed()]
    plan = place([dep("tp", 40, gpus=2, gpu_models=("L4",))], hosts)
    (a,) = plan.assignments
    assert a.gpus == (4, 5)
    too_wide = place([dep("tp", 60, gpus=3, gpu_models=("L4",))], hosts)
    assert not too_wide.feasible
    assert any("3 GPUs on one host" in r for r in too_wide.unplaced[0].reasons)


def test_no_gpu_of_the_model_is_one_clear_reason() -> None:
    hosts = [mixed()]
    plan = place([dep("m", 10, gpu_models=("A100",))], hosts)
    (u,) = plan.unplaced
    assert u.reasons == (
        "GPU model: none of the GPUs of the 1 host(s) matching the selector is A100",
    )


def test_full_gpus_of_the_model_are_reported_and_others_are_not_offered() -> None:
    hosts = [mixed()]
    deps = [dep("a", 20, gpu_models=("L4",), replicas=2), dep("b", 20, gpu_models=("L4",))]
    plan = place(deps, hosts)
    (u,) = plan.unplaced
    assert u.deployment == "b@1"
    text = " | ".join(u.reasons)
    assert "memory: full on 2 GPU(s)" in text  # the two L4s; the idle H100s do not count


def test_a_running_replica_on_a_gpu_it_may_no_longer_use_moves() -> None:
    hosts = [mixed()]
    before = [Assignment("m@1", 0, "h1", (4,))]  # on an L4
    plan = place([dep("m", 10, gpu_models=("H100",))], hosts, before)
    (a,) = plan.assignments
    assert a.gpus[0] < 4 and not plan.reasons["m@1#0"].startswith("kept")
    kept = place([dep("m", 10, gpu_models=("L4",))], hosts, before)
    assert kept.assignments == tuple(before)


def test_the_exact_search_honours_gpu_models() -> None:
    # Largest first puts `x` (60 GB, anywhere) on the H100, the first of two idle GPUs;
    # the H100-only 30 GB model then finds no room and the solver must move `x` to the
    # A100, never put `h-only` there.
    hosts = [HostSpec("a", (GpuSpec(0, 80.0, model="H100"), GpuSpec(1, 80.0, model="A100")))]
    deps = [dep("x", 60), dep("h-only", 30, gpu_models=("H100",))]
    assert not place(deps, hosts, budget=0).feasible
    solved = place(deps, hosts)
    assert solved.feasible and solved.search == "solved"
    assert models_of(solved, hosts) == {"h-only@1": {"H100"}, "x@1": {"A100"}}


def test_infeasible_with_gpu_models_is_proven_not_guessed() -> None:
    hosts = [HostSpec("a", (GpuSpec(0, 80.0, model="H100"), GpuSpec(1, 80.0, model="A100")))]
    deps = [dep("p", 60, gpu_models=("H100",)), dep("q", 60, gpu_models=("H100",))]
    plan = place(deps, hosts)
    assert len(plan.unplaced) == 1
    assert plan.search == "infeasible"
    assert any("proven infeasible" in r for r in plan.unplaced[0].reasons)


def test_lower_bound_counts_the_gpus_of_a_model_alone() -> None:
    # Three 20 GB L4-only replicas need 3 L4s (replicas never share a GPU), and the memory
    # of six 20 GB L4-only models needs 6 x 20 / 24 -> 5 L4-sized GPUs; the plain bound
    # (memory over the largest GPU) says 2.
    hosts = [
        HostSpec(
            "h",
            tuple(GpuSpec(i, 80.0, model="H100") for i in range(2))
            + tuple(GpuSpec(2 + i, 24.0, model="L4") for i in range(8)),
        )
    ]
    deps = [dep(f"m{i}", 20, gpu_models=("L4",)) for i in range(6)]
    assert lower_bound(deps, hosts) == 5
    plan = place(deps, hosts)
    assert plan.feasible and plan.gpus_used() == 6  # a 24 GB L4 holds one 20 GB model
    anywhere = [dep(f"m{i}", 20) for i in range(6)]
    assert lower_bound(anywhere, hosts) == 2


def test_surge_goes_only_to_a_gpu_of_the_model() -> None:
    hosts = [mixed()]
    d = dep("m", 20, gpu_models=("L4",))
    old = Assignment("m@1", 0, "h1", (4,))
    load = GpuLoad.of(hosts, [old], {d.name: d})
    target = surge_target(load, d, 0, old)
    assert target is not None and target.gpus == (5,)
    load.add(("h1", 5), dep("other", 10), 0)
    assert surge_target(load, d, 0, old) is None  # the H100s have room but are not L4s


def test_explain_names_the_gpu_model() -> None:
    hosts = [mixed()]
    deps = [dep("m", 10, gpu_models=("L4",))]
    plan = place(deps, hosts)
    (e,) = explain("m", deps, hosts, plan)
    reasons = {r for g in e.elsewhere for r in g.reasons}
    assert "GPU model: H100-80GB, needs L4" in reasons


# -- the inventory ------------------------------------------------------------------------

MIXED = """\
hosts:
  - name: h1
    simulated: true
    gpus:
      - {model: H100-80GB, count: 4, memory_gb: 80}
      - {model: L4, count: 2, memory_gb: 24}
  - name: mig
    simulated: true
    docker: unix:///run/mig.sock
    ports: 21000-21999
    gpus: [{model: A100-80GB MIG 3g.40gb, count: 2, memory_gb: 40}]
models:
"""


def test_groups_of_gpus_resolve_to_consecutive_indexes() -> None:
    loaded = load_text(
        MIXED + "  - {name: m, version: '1', runtime: nim, image: i, gpu_memory_gb: 4}\n"
    )
    h1, mig = host_specs(loaded.inventory)
    assert [(g.index, g.memory_gb, g.model) for g in h1.gpus] == [
        (0, 80, "H100-80GB"),
        (1, 80, "H100-80GB"),
        (2, 80, "H100-80GB"),
        (3, 80, "H100-80GB"),
        (4, 24, "L4"),
        (5, 24, "L4"),
    ]
    assert [g.memory_gb for g in mig.gpus] == [40, 40]


def test_gpu_models_reach_the_deployment_and_the_plan() -> None:
    loaded = load_text(
        MIXED
        + "  - {name: m, version: '1', runtime: nim, image: i, gpu_memory_gb: 30, gpu_models: [3g.40gb]}\n"
    )
    (d,) = deployments(loaded.inventory)
    assert d.gpu_models == ("3g.40gb",)
    plan = place([d], host_specs(loaded.inventory))
    assert [a.host for a in plan.assignments] == ["mig"]


def _problems(text: str) -> list[str]:
    with pytest.raises(InventoryError) as exc:
        load_text(textwrap.dedent(text), "fleet.yaml")
    return exc.value.problems


def test_a_model_no_host_can_run_is_refused_with_its_line() -> None:
    (p,) = _problems(
        MIXED
        + "  - {name: m, version: '1', runtime: nim, image: i, gpu_memory_gb: 4, gpu_models: [B200]}\n"
    )
    assert p.startswith("fleet.yaml:13:")
    assert "models[0].gpu_models" in p
    assert "B200 match no GPU of its hosts (their GPUs: A100-80GB MIG 3g.40gb, H100-80GB, L4)" in p


def test_a_model_too_large_for_its_gpu_models_is_refused() -> None:
    (p,) = _problems(
        MIXED
        + "  - {name: m, version: '1', runtime: nim, image: i, gpu_memory_gb: 30, gpu_models: [L4]}\n"
    )
    assert "needs 30 GB per GPU but the largest usable L4 GPU of its hosts has 24 GB" in p


def test_more_replicas_than_the_gpus_of_a_model_hold_are_refused() -> None:
    (p,) = _problems(
        MIXED
        + "  - {name: m, version: '1', runtime: nim, image: i, gpu_memory_gb: 20, gpu_models: [L4], replicas: 3}\n"
    )
    assert "wants 3 replicas but the GPUs of its hosts could hold at most" in p


def test_an_empty_gpu_group_list_is_refused() -> None:
    found = _problems("hosts:\n  - {name: h1, simulated: true, gpus: []}\nmodels: []\n")
    assert (
        "fleet.yaml:2:39: hosts[0].gpus: List should have at least 1 item after validation, not 0"
        in found
    )


def test_plan_offline_shows_the_groups_and_places_by_model(tmp_path: Path) -> None:
    inv = tmp_path / "fleet.yaml"
    inv.write_text(
        "hosts:\n  - name: h1\n    simulated: true\n    gpus:\n"
        "      - {model: H100-80GB, count: 2, memory_gb: 80}\n"
        "      - {model: L4, count: 2, memory_gb: 24}\n"
        "models:\n"
        "  - {name: small, version: '1', runtime: nim, image: i, gpu_memory_gb: 10, gpu_models: [L4]}\n"
    )
    run = [sys.executable, "-m", "fleetctl", "plan", "--offline", "-f", str(inv)]
    table = subprocess.run(run, capture_output=True, text=True, env=_wide())
    assert table.returncode == 0, table.stderr
    assert "2 x H100-80GB + 2 x L4" in table.stdout
    js = subprocess.run([*run, "--output", "json"], capture_output=True, text=True)
    (a,) = json.loads(js.stdout)["placements"]
    assert a["gpus"] == [2]


def _wide() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200"}
