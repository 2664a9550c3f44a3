"""`fleetctl plan --offline`, `report` and `advise` end to end, on the same inventories.

    python tests/benchmarks/bench_decide_cli.py --sizes 1000 10000 --runs 3

Each command runs as a subprocess with `--output json` (start-up, YAML, validation,
placement with the default --placement-budget, output); the figure is the median of the
runs, interleaved so that load on the machine falls on all three alike. The inventories
are the seeded synthetic fleets of bench_placement.py (one host of 8 x 80 GB GPUs per 10
models, default port ranges).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMANDS = (("plan", ["plan", "--offline"]), ("report", ["report"]), ("advise", ["advise"]))


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if r.returncode not in (0, 4):
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr[-500:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    fleetctl = [sys.executable, "-m", "fleetctl"]
    print(
        f"{'models':>6} {'hosts':>5} {'plan s':>7} {'report s':>8} {'advise s':>8} {'report/plan':>11} {'advise/plan':>11}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"fleet-{n}.yaml"
            subprocess.run(
                [
                    sys.executable,
                    str(HERE / "bench_placement.py"),
                    "--write-inventory",
                    str(n),
                    str(n // 10),
                    str(path),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            times: dict[str, list[float]] = {name: [] for name, _ in COMMANDS}
            for _ in range(args.runs):
                for name, cmd in COMMANDS:
                    times[name].append(
                        timed(fleetctl + cmd + ["-f", str(path), "--output", "json"])
                    )
            med = {k: statistics.median(v) for k, v in times.items()}
            print(
                f"{n:>6} {n // 10:>5} {med['plan']:>7.2f} {med['report']:>8.2f} {med['advise']:>8.2f} "
                f"{med['report'] / med['plan']:>11.2f} {med['advise'] / med['plan']:>11.2f}"
            )


if __name__ == "__main__":
    main()
