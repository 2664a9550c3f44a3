"""Packing quality on Falkenauer's u120 bin-packing instances.

Each instance becomes 120 single-GPU models (memory = item size in GB) on GPUs of 150 GB
with no SLAs, so placement is pure memory packing. The file lives in the shared
benchmarks folder beside the repository (../shared/benchmarks); its README gives the
format and the optima.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetctl.core.fleet import Deployment, GpuSpec, HostSpec
from fleetctl.core.placement import lower_bound, place

REPO = Path(__file__).resolve().parents[2]
CANDIDATES = (REPO.parent / "shared" / "benchmarks", Path("/work/shared/benchmarks"))


def _instances_file() -> Path | None:
    for folder in CANDIDATES:
        path = folder / "falkenauer_u120.txt"
        if path.is_file():
            return path
    return None


def read_instances(path: Path) -> list[tuple[str, int, int, list[int]]]:
    tokens = path.read_text().split()
    count, pos = int(tokens[0]), 1
    out = []
    for _ in range(count):
        name = tokens[pos]
        capacity, n_items, optimum = (int(t) for t in tokens[pos + 1 : pos + 4])
        pos += 4
        out.append((name, capacity, optimum, [int(t) for t in tokens[pos : pos + n_items]]))
        pos += n_items
    return out


def fleet(capacity: int, sizes: list[int]) -> tuple[list[Deployment], list[HostSpec]]:
    deps = [
        Deployment(f"item-{i:03d}", "1", "triton", "bench", float(s)) for i, s in enumerate(sizes)
    ]
    hosts = [
        HostSpec(f"host-{h:02d}", tuple(GpuSpec(i, float(capacity)) for i in range(8)))
        for h in range((len(sizes) + 7) // 8)
    ]
    return deps, hosts


def test_reaches_the_optimum_on_nine_of_ten() -> None:
    path = _instances_file()
    if path is None:
        pytest.skip(f"falkenauer_u120.txt not found in {' or '.join(str(c) for c in CANDIDATES)}")
    instances = read_instances(path)
    assert len(instances) == 10
    results = {}
    for name, capacity, optimum, sizes in instances:
        deps, hosts = fleet(capacity, sizes)
        plan = place(deps, hosts)
        assert plan.feasible, name
        assert lower_bound(deps, hosts) == optimum  # the README: optimum = ceil(sum / capacity)
        size = {d.name: d.memory_gb for d in deps}
        load: dict[tuple[str, tuple[int, ...]], float] = {}
        for a in plan.assignments:
            load[(a.host, a.gpus)] = load.get((a.host, a.gpus), 0.0) + size[a.deployment]
        assert max(load.values()) <= capacity, name
        results[name] = plan.gpus_used() - optimum
    assert all(0 <= extra <= 1 for extra in results.values()), results
    assert sum(1 for extra in results.values() if extra == 0) >= 9, results
