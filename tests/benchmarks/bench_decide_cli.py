"""`fleetctl plan --offline`, `report` and `advise` end to end, on the same inventories.

    python tests/benchmarks/bench_decide_cli.py --sizes 1000 10000 --runs 3
    python tests/benchmarks/bench_decide_cli.py --sizes 1000 10000 --runs 5 --steps

Each command runs as a subprocess with `--output json` (start-up, YAML, validation,
placement with the default --placement-budget, output); the figure is the median of the
runs, interleaved so that load on the machine falls on all three alike. The inventories
are the seeded synthetic fleets of bench_placement.py (one host of 8 x 80 GB GPUs per 10
models, default port ranges).

`--steps` times, in one process, what report and advise add to the offline plan: the
plan itself (`build_plan` on the loaded inventory, timed once), then per run the report
step (`build_report`, its typed result and the compact JSON text) and the advise step
(`holdings`, `advise_all`, its typed result and the JSON text). The inventory is validated
by its pydantic model only: the cross-checks of `load` take the same time in all three
commands and are bench_plan_cli.py's subject.
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


def steps(path: Path, runs: int) -> tuple[float, float, float]:
    """(plan s, report step s, advise step s): medians over `runs`, plan once."""

    from fleetctl.cli.render.json import dumps
    from fleetctl.core.observed import ObservedFleet
    from fleetctl.decide.advise import advise_all
    from fleetctl.decide.holdings import holdings
    from fleetctl.decide.report import build_report
    from fleetctl.decide.weights import resolve_weights
    from fleetctl.ops.planning import build_plan
    from fleetctl.results.decide import advise_result, report_result
    from fleetctl.runtimes.inventory import load

    loaded = load(path)
    inv = loaded.inventory
    t0 = time.perf_counter()
    plan = build_plan(loaded, ObservedFleet.empty([h.name for h in inv.hosts]))
    plan_s = time.perf_counter() - t0

    def report() -> None:
        dumps(report_result(build_report(inv, plan, str(path))))

    def advise() -> None:
        w = resolve_weights(None, inv.team.weights)
        advices = advise_all(list(inv.models), w, inv.costs, holdings(plan))
        dumps(advise_result(advices, w, inv.costs))

    times: dict[str, list[float]] = {"report": [], "advise": []}
    for _ in range(runs):
        for name, step in (("report", report), ("advise", advise)):
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return plan_s, statistics.median(times["report"]), statistics.median(times["advise"])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", action="store_true", help="time the steps in one process")
    args = ap.parse_args()
    fleetctl = [sys.executable, "-m", "fleetctl"]
    if args.steps:
        print(f"{'models':>6} {'plan s':>7} {'report step s':>13} {'advise step s':>13}")
    else:
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
            if args.steps:
                plan_s, report_s, advise_s = steps(path, args.runs)
                print(f"{n:>6} {plan_s:>7.2f} {report_s:>13.2f} {advise_s:>13.2f}", flush=True)
                continue
            times: dict[str, list[float]] = {name: [] for name, _ in COMMANDS}
            for _ in range(args.runs):
                for name, cmd in COMMANDS:
                    times[name].append(
                        timed(fleetctl + cmd + ["-f", str(path), "--output", "json"])
                    )
            med = {k: statistics.median(v) for k, v in times.items()}
            print(
                f"{n:>6} {n // 10:>5} {med['plan']:>7.2f} {med['report']:>8.2f} {med['advise']:>8.2f} "
                f"{med['report'] / med['plan']:>11.2f} {med['advise'] / med['plan']:>11.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
