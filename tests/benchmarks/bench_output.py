"""The JSON renderer's cost at fleet scale: `plan --output json` encodes the typed result
(`fleetctl.results.to_jsonable` over `PlanResult`); the baseline, measured in the same
run on the same plan, is the plan's hand-written dict builder (`core.plan.plan_to_json`,
kept for saved plans), both followed by the same compact `json.dumps`.

    python tests/benchmarks/bench_output.py            # 1k and 5k models
    python tests/benchmarks/bench_output.py --runs 5

The fleets are the seeded synthetic ones of bench_placement.py. Figures are medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_placement import write_inventory  # noqa: E402


def median_s(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))


def main() -> None:
    from fleetctl.core.plan import plan_to_json
    from fleetctl.ops.planning import plan_inventory
    from fleetctl.results import to_jsonable
    from fleetctl.results.plan import plan_result

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="1000,5000")
    args = ap.parse_args()
    print("| models | replicas | hand-written dict s | typed result s | ratio |")
    print("|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.sizes.split(",")):
            path = Path(tmp) / f"fleet-{n}.yaml"
            write_inventory(n, max(1, n // 10), path)
            plan = plan_inventory(path, None, placement_budget=0).plan
            base = median_s(lambda p=plan: _dumps(plan_to_json(p)), args.runs)
            typed = median_s(lambda p=plan: _dumps(to_jsonable(plan_result(p))), args.runs)
            print(
                f"| {n:,} | {len(plan.placement.assignments):,} | {base:.3f} | {typed:.3f} "
                f"| {typed / base:.2f} |"
            )


if __name__ == "__main__":
    main()
