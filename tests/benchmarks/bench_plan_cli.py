"""End-to-end `fleetctl plan --offline` time at fleet scale: Python start-up, YAML parsing,
validation, placement, diff and output included.

    python tests/benchmarks/bench_plan_cli.py            # 1k, 2k, 5k, 10k models
    python tests/benchmarks/bench_plan_cli.py --runs 3

The inventories are the seeded synthetic fleets of bench_placement.py (8 x 80 GB GPUs
per host, one host per 10 models, mixed sizes, tensor parallelism and SLAs). Each size
is timed as a subprocess, both with `--output json` (to a pipe) and with the default
table view; the figure is the median of the runs. A no-op `fleetctl --help` run gives
the start-up floor of the same interpreter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = [(1_000, 100), (2_000, 200), (5_000, 500), (10_000, 1_000)]
LIMITS = {1_000: 1.0, 10_000: 8.0}  # the goals of docs/benchmarks.md


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if r.returncode not in (0, 4):  # 4: some replica unplaced is still a full plan
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr[-500:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    py = sys.executable
    fleetctl = [py, "-m", "fleetctl"]
    print(f"load average at start: {os.getloadavg()[0]:.2f}  (cores: {os.cpu_count()})")
    floor = statistics.median(timed([*fleetctl, "--help"]) for _ in range(args.runs))
    print(f"start-up floor (fleetctl --help): {floor:.2f} s\n")
    print(
        f"{'models':>7} {'hosts':>6} {'json s':>8} {'table s':>8} {'limit':>6}  {'s per 1k (json)':>15}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n, hosts in SIZES:
            inv = Path(tmp) / f"fleet-{n}.yaml"
            subprocess.run(
                [
                    py,
                    str(HERE / "bench_placement.py"),
                    "--write-inventory",
                    str(n),
                    str(hosts),
                    str(inv),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            runs = args.runs if n <= 2_000 else max(3, args.runs // 2)
            js = statistics.median(
                timed([*fleetctl, "plan", "--offline", "-f", str(inv), "--output", "json"])
                for _ in range(runs)
            )
            table = statistics.median(
                timed([*fleetctl, "plan", "--offline", "-f", str(inv)]) for _ in range(runs)
            )
            limit = LIMITS.get(n)
            mark = (
                ""
                if limit is None
                else (f"{limit:>5.0f}s" + (" ok" if max(js, table) <= limit else " OVER"))
            )
            print(f"{n:>7} {hosts:>6} {js:>8.2f} {table:>8.2f} {mark:>9}  {1000 * js / n:>15.2f}")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
