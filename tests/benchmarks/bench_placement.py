"""Placement benchmark: packing quality on the Falkenauer u120 set, and speed at scale.

    python tests/benchmarks/bench_placement.py            # Falkenauer table + timings
    python tests/benchmarks/bench_placement.py --quick    # one run per size
    python tests/benchmarks/bench_placement.py --write-inventory 1000 100 /tmp/fleet-1k.yaml

The synthetic fleets are seeded, so every run plans the same fleet.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fleetctl.core.fleet import Deployment, GpuSpec, HostSpec  # noqa: E402
from fleetctl.core.placement import lower_bound, naive_gpus, place  # noqa: E402

ZONES = ("a", "b", "c", "d")
GPU_GB = 80.0


# -- Falkenauer u120 ---------------------------------------------------------------------


def benchmarks_dir() -> Path | None:
    """The shared benchmarks folder: ../shared/benchmarks beside the repository."""
    for candidate in (REPO.parent / "shared" / "benchmarks", Path("/work/shared/benchmarks")):
        if (candidate / "falkenauer_u120.txt").is_file():
            return candidate
    return None


def read_falkenauer(path: Path) -> list[tuple[str, int, int, list[int]]]:
    """Instances as (name, capacity, optimum, item sizes); format in the README beside it."""
    tokens = path.read_text().split()
    count, pos = int(tokens[0]), 1
    out = []
    for _ in range(count):
        name = tokens[pos]
        capacity, n_items, optimum = (int(t) for t in tokens[pos + 1 : pos + 4])
        pos += 4
        sizes = [int(t) for t in tokens[pos : pos + n_items]]
        pos += n_items
        out.append((name, capacity, optimum, sizes))
    return out


def falkenauer_fleet(
    capacity: int, sizes: Sequence[int]
) -> tuple[list[Deployment], list[HostSpec]]:
    """Single-GPU models of `sizes` GB, no SLAs, on enough GPUs of `capacity` GB."""
    deps = [
        Deployment(f"item-{i:03d}", "1", "triton", "bench", float(s)) for i, s in enumerate(sizes)
    ]
    n_hosts = (len(sizes) + 7) // 8
    hosts = [
        HostSpec(f"host-{h:02d}", tuple(GpuSpec(i, float(capacity)) for i in range(8)))
        for h in range(n_hosts)
    ]
    return deps, hosts


def ffd_bins(capacity: int, sizes: Sequence[int]) -> int:
    """Plain first-fit decreasing, the baseline the table compares with."""
    bins: list[int] = []
    for s in sorted(sizes, reverse=True):
        for i, load in enumerate(bins):
            if load + s <= capacity:
                bins[i] += s
                break
        else:
            bins.append(s)
    return len(bins)


def falkenauer_table() -> None:
    folder = benchmarks_dir()
    if folder is None:
        print("Falkenauer u120: ../shared/benchmarks/falkenauer_u120.txt not found, skipped")
        return
    print("Falkenauer u120 (120 single-GPU models, 150 GB GPUs)")
    print(f"{'instance':<9} {'optimum':>7} {'lower':>5} {'placed':>6} {'FFD':>4} {'time ms':>8}")
    optimal = 0
    for name, capacity, optimum, sizes in read_falkenauer(folder / "falkenauer_u120.txt"):
        deps, hosts = falkenauer_fleet(capacity, sizes)
        t0 = time.perf_counter()
        plan = place(deps, hosts)
        ms = (time.perf_counter() - t0) * 1000
        used = plan.gpus_used()
        optimal += used == optimum
        print(
            f"{name:<9} {optimum:>7} {lower_bound(deps, hosts):>5} {used:>6} {ffd_bins(capacity, sizes):>4} {ms:>8.1f}"
        )
    print(f"optimal on {optimal} of 10")


# -- synthetic fleets -------------------------------------------------------------------


def synthetic_fleet(
    n_models: int, n_hosts: int, gpus_per_host: int = 8, seed: int = 0
) -> tuple[list[Deployment], list[HostSpec]]:
    """A mixed fleet: mostly small models, some large, ~10% tensor parallel, half with SLAs.

    One replica each; a few exclusive models; a tenth restricted to one zone by selector.
    Hosts have 80 GB GPUs spread over four zones.
    """
    rng = random.Random(seed)
    hosts = [
        HostSpec(
            f"gpu-host-{h:04d}",
            tuple(GpuSpec(i, GPU_GB, model="H100") for i in range(gpus_per_host)),
            labels={"zone": ZONES[h % len(ZONES)]},
            simulated=True,
        )
        for h in range(n_hosts)
    ]
    deps = []
    for i in range(n_models):
        r = rng.random()
        gpus = 1
        if r < 0.55:
            memory = rng.uniform(1, 10)
        elif r < 0.80:
            memory = rng.uniform(10, 40)
        elif r < 0.90:
            memory = rng.uniform(40, 78)
        elif r < 0.97:
            gpus, memory = 2, rng.uniform(60, 150)
        else:
            gpus, memory = 4, rng.uniform(120, 300)
        sla = latency = util = None
        if rng.random() < 0.5:
            sla = float(rng.choice((20, 30, 50, 100, 200, 500)))
            if rng.random() < 0.5:
                latency = round(sla * rng.uniform(0.2, 0.6), 1)
        if rng.random() < 0.3:
            util = round(rng.uniform(0.05, 0.5), 2)
        deps.append(
            Deployment(
                model=f"model-{i:05d}",
                version="1",
                runtime="triton" if rng.random() < 0.7 else "nim",
                image="nvcr.io/nvidia/tritonserver:24.10-py3",
                memory_gb=round(memory, 1),
                gpus=gpus,
                sla_ms=sla,
                latency_ms=latency,
                gpu_util=util,
                exclusive=rng.random() < 0.02,
                selector={"zone": rng.choice(ZONES)} if rng.random() < 0.1 else {},
            )
        )
    return deps, hosts


def inventory_dict(deps: Sequence[Deployment], hosts: Sequence[HostSpec]) -> dict[str, Any]:
    """The inventory that resolves to `deps` on `hosts` (GPUs declared per host)."""
    host_entries = [
        {
            "name": h.name,
            # One Docker daemon per host (validate refuses two hosts on one); never contacted offline.
            "docker": f"ssh://fleet@{h.name}",
            "simulated": True,
            "gpus": {
                "count": len(h.gpus),
                "memory_gb": h.gpus[0].memory_gb,
                "model": h.gpus[0].model,
            },
            "labels": dict(h.labels),
        }
        for h in hosts
    ]
    models = []
    for d in deps:
        m: dict[str, Any] = {
            "name": d.model,
            "version": d.version,
            "runtime": d.runtime,
            "image": d.image,
            "gpu_memory_gb": d.memory_gb,
            "gpus": d.gpus,
            "replicas": d.replicas,
        }
        for key, value in (
            ("sla_ms", d.sla_ms),
            ("latency_ms", d.latency_ms),
            ("gpu_util", d.gpu_util),
        ):
            if value is not None:
                m[key] = value
        if d.exclusive:
            m["exclusive"] = True
        if d.selector:
            m["hosts"] = dict(d.selector)
        if d.runtime == "triton":
            m["triton"] = {"model_repository": "/srv/models", "models": [d.model]}
        models.append(m)
    return {"hosts": host_entries, "models": models}


def write_inventory(n_models: int, n_hosts: int, path: Path, seed: int = 0) -> None:
    import yaml

    deps, hosts = synthetic_fleet(n_models, n_hosts, seed=seed)
    path.write_text(yaml.safe_dump(inventory_dict(deps, hosts), sort_keys=False))


def time_place(n_models: int, n_hosts: int, runs: int) -> None:
    deps, hosts = synthetic_fleet(n_models, n_hosts)
    times = []
    plan = None
    for _ in range(runs):
        t0 = time.perf_counter()
        plan = place(deps, hosts)
        times.append(time.perf_counter() - t0)
    assert plan is not None
    replicas = naive_gpus(deps)
    print(
        f"{n_models:>6} models {n_hosts:>5} hosts  place() median {statistics.median(times):6.3f} s "
        f"(min {min(times):.3f}, {runs} runs)  GPUs {plan.gpus_used():>5}  lower bound "
        f"{lower_bound(deps, hosts):>5}  naive {replicas:>6}  unplaced {len(plan.unplaced)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write-inventory", nargs=3, metavar=("N", "HOSTS", "PATH"))
    parser.add_argument("--quick", action="store_true", help="one run per fleet size")
    args = parser.parse_args(argv)
    if args.write_inventory:
        n, n_hosts, path = args.write_inventory
        write_inventory(int(n), int(n_hosts), Path(path))
        print(f"wrote {path}: {n} models on {n_hosts} hosts x 8 GPUs")
        return 0
    falkenauer_table()
    print()
    print("Synthetic fleets, place() only (no start-up, YAML or validation)")
    for n_models, n_hosts, runs in (
        (1000, 100, 5),
        (2000, 200, 3),
        (5000, 500, 3),
        (10000, 1000, 3),
    ):
        time_place(n_models, n_hosts, 1 if args.quick else runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
