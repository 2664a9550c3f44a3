"""Placement quality on SLA-heavy fleets: against CP-SAT's best, the lower bound, and
first-fit decreasing run separately over the models with and without an SLA.

    python tests/benchmarks/bench_placement_sla.py small [--exact-budget 20]
    python tests/benchmarks/bench_placement_sla.py large [--sizes 1000 2000]

Small family: 40-60 single-GPU models, 30-70% with an SLA, every one with a measured
`latency_ms` and `gpu_util`. Large family: 1k-10k models, 30-70% with an SLA, latency and
utilisation left to the defaults (sla / 2, the memory share). Seeds 0..7, so every run
plans the same fleets.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fleetctl.core.fleet import Deployment, GpuSpec, HostSpec  # noqa: E402
from fleetctl.core.placement import DEFAULT_BUDGET, lower_bound, place  # noqa: E402
from fleetctl.core.placement.state import Dep, Item, State  # noqa: E402

GPU_GB = 80.0


def small_fleet(seed: int) -> tuple[list[Deployment], list[HostSpec]]:
    rng = random.Random(seed)
    n = rng.randint(40, 60)
    share = rng.uniform(0.3, 0.7)
    deps = []
    for i in range(n):
        memory = rng.choice((rng.uniform(1, 10), rng.uniform(5, 30), rng.uniform(20, 60)))
        sla = latency = None
        if rng.random() < share:
            sla = float(rng.choice((20, 30, 50, 100, 200)))
            latency = round(sla * rng.uniform(0.2, 0.6), 1)
        util = round(min(0.9, memory / GPU_GB * rng.uniform(0.5, 1.5)), 2) or 0.01
        deps.append(
            Deployment(
                f"m-{i:03d}",
                "1",
                "triton",
                "bench",
                round(memory, 1),
                sla_ms=sla,
                latency_ms=latency,
                gpu_util=util,
            )
        )
    hosts = [
        HostSpec(f"h-{h:02d}", tuple(GpuSpec(g, GPU_GB) for g in range(8)))
        for h in range((n + 7) // 8)
    ]
    return deps, hosts


def large_fleet(n: int, seed: int) -> tuple[list[Deployment], list[HostSpec]]:
    rng = random.Random(1000 + seed)
    share = 0.3 + 0.4 * seed / 7
    deps = []
    for i in range(n):
        r = rng.random()
        memory = (
            rng.uniform(1, 10)
            if r < 0.55
            else rng.uniform(10, 40)
            if r < 0.85
            else rng.uniform(40, 78)
        )
        sla = float(rng.choice((20, 30, 50, 100, 200, 500))) if rng.random() < share else None
        deps.append(Deployment(f"m-{i:05d}", "1", "triton", "bench", round(memory, 1), sla_ms=sla))
    hosts = [
        HostSpec(f"h-{h:04d}", tuple(GpuSpec(g, GPU_GB) for g in range(8)))
        for h in range((n + 7) // 8)
    ]
    return deps, hosts


def separate_ffd(deps: list[Deployment], hosts: list[HostSpec]) -> int:
    """First-fit decreasing (by memory) over the SLA models, then separately over the
    rest, each on GPUs of its own, with placement's own rule checks."""
    total = 0
    for group in ([d for d in deps if d.sla_ms is not None], [d for d in deps if d.sla_ms is None]):
        st = State(hosts)
        opened: list[int] = []
        for d in sorted(group, key=lambda d: (-d.memory_gb, d.name)):
            dep = Dep.of(d)
            it = Item(dep, 0)
            # Open GPUs from the most recent: the first-fit order over bins, newest last,
            # scanned from the oldest (classic FFD); bounded to keep 10k fleets quick.
            for gid in opened:
                if st.fits(dep, st.gpus[gid]):
                    st.add(it, gid)
                    break
            else:
                gid = len(opened)
                st.add(it, gid)
                opened.append(gid)
        total += len(opened)
    return total


def run_small(exact_budget: float) -> None:
    print(
        f"small SLA-heavy fleets: default budget {DEFAULT_BUDGET} s against CP-SAT given {exact_budget:g} s"
    )
    print(
        f"{'seed':>4} {'models':>6} {'lower':>5} {'heur':>5} {'fleetctl':>8} {'CP-SAT':>6} {'sepFFD':>6} {'ms':>7}"
    )
    wins = worse = 0
    for seed in range(8):
        deps, hosts = small_fleet(seed)
        heur = place(deps, hosts, budget=0).gpus_used()
        t0 = time.perf_counter()
        p = place(deps, hosts)
        ms = (time.perf_counter() - t0) * 1000
        best = place(deps, hosts, budget=exact_budget)
        lb = best.lower_bound or lower_bound(deps, hosts)
        used, exact = p.gpus_used(), best.gpus_used()
        wins += used <= exact
        worse = max(worse, used - exact)
        print(
            f"{seed:>4} {len(deps):>6} {lb:>5} {heur:>5} {used:>8} {exact:>6} {separate_ffd(deps, hosts):>6} {ms:>7.0f}"
        )
    print(f"as few GPUs as CP-SAT on {wins} of 8; at most {worse} above it")


def run_large(sizes: list[int], runs: int) -> None:
    print("large SLA-heavy fleets (default latency and util): fleetctl against separate FFD")
    print(
        f"{'models':>6} {'seed':>4} {'SLA %':>5} {'lower':>5} {'heur':>5} {'fleetctl':>8} {'sepFFD':>6} {'median s':>8}"
    )
    for n in sizes:
        for seed in range(8):
            deps, hosts = large_fleet(n, seed)
            sla = sum(1 for d in deps if d.sla_ms is not None) * 100 // n
            heur = place(deps, hosts, budget=0).gpus_used()
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                p = place(deps, hosts)
                times.append(time.perf_counter() - t0)
            print(
                f"{n:>6} {seed:>4} {sla:>5} {p.lower_bound:>5} {heur:>5} {p.gpus_used():>8} "
                f"{separate_ffd(deps, hosts):>6} {statistics.median(times):>8.2f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("family", choices=("small", "large"))
    ap.add_argument("--exact-budget", type=float, default=20.0)
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 2000])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if args.family == "small":
        run_small(args.exact_budget)
    else:
        run_large(args.sizes, args.runs)


if __name__ == "__main__":
    main()
