#!/usr/bin/env python3
"""Start-up: how long the commands that do little take, against Python's own start-up.

    .venv/bin/python tests/benchmarks/bench_startup.py             # CLI figures, 9 runs
    .venv/bin/python tests/benchmarks/bench_startup.py --compare main   # main's too, interleaved
    .venv/bin/python tests/benchmarks/bench_startup.py --apply     # and the apply figures

Each figure is the median wall time of `--runs` subprocess runs of the same interpreter
(`python -m fleetctl ...`), the commands interleaved so that a change of machine load
hits them alike, after one untimed warm-up round:

- the floor: `python -c pass`, Python's start-up with this virtual environment's site;
- `fleetctl --help`;
- `fleetctl plan --offline` of the seed fleet (inventory/fleet.yaml), table output;
- `fleetctl history` with no state (exit 1, "nothing has been applied yet").

With `--apply` (root, the test bed up: docs/testbed.md) it then runs bench_apply.py (on
a dockerd of its own: `--apply-engine private`, the default) and prints its no-op apply
of 50 running containers and its ratio of apply of 20 tiny services to raw
`docker run -d` at -P4, measured in that same run.

Each line ends with the goal (docs/benchmarks.md, "Start-up") and whether it was met.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SEED = REPO / "inventory" / "fleet.yaml"

GOALS = {"help": 0.2, "plan": 0.35, "history": 0.3, "noop": 0.5, "ratio": 1.25}


def timed(
    cmd: list[str], ok: tuple[int, ...], env: dict[str, str], cwd: str
) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of `cmd`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env
    )
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def verdict(value: float, goal: float, unit: str = "s") -> str:
    return f"goal {goal:g} {unit}: " + ("met" if value <= goal else "NOT met")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument(
        "--compare",
        metavar="REV",
        help="also time the fleetctl package of git revision REV (e.g. main), interleaved",
    )
    ap.add_argument("--apply", action="store_true", help="also run bench_apply.py (test bed)")
    ap.add_argument("--apply-runs", type=int, default=5)
    ap.add_argument(
        "--apply-engine",
        default="private",
        help="bench_apply.py's --engine: private (a dockerd of its own, default) or a",
    )
    args = ap.parse_args()
    py = sys.executable
    fleetctl = [py, "-m", "fleetctl"]
    print(f"python {sys.version.split()[0]} at {py}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}  (cores: {os.cpu_count()})")
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"": dict(os.environ)}
        if args.compare:
            # The revision's package, first on sys.path (ahead of the editable install).
            old = Path(tmp) / "compare"
            old.mkdir()
            archive = subprocess.run(
                ["git", "archive", args.compare, "fleetctl"],
                cwd=REPO,
                capture_output=True,
                check=True,
            )
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
            trees[f"{args.compare}: "] = {**os.environ, "PYTHONPATH": str(old)}
        commands = {
            "fleetctl --help": ([*fleetctl, "--help"], (0,)),
            "fleetctl plan --offline (seed fleet)": (
                [*fleetctl, "plan", "--offline", "-f", str(SEED)],
                (0,),
            ),
            # No state beside this inventory: the command says so and exits 1.
            "fleetctl history (no state)": (
                [*fleetctl, "history", "-f", str(Path(tmp) / "fleet.yaml")],
                (1,),
            ),
        }
        goals = dict(zip(commands, (GOALS["help"], GOALS["plan"], GOALS["history"])))
        cases = {"python -c pass (the floor)": ([py, "-c", "pass"], (0,), trees[""])}
        for prefix, env in trees.items():
            for label, (cmd, ok) in commands.items():
                cases[prefix + label] = (cmd, ok, env)
        # Run from an empty folder: `python -m` puts the working directory first on sys.path.
        for cmd, ok, env in cases.values():  # warm-up: page cache, .pyc files
            timed(cmd, ok, env, tmp)
        walls: dict[str, list[float]] = {k: [] for k in cases}
        cpu: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.runs):
            for name, (cmd, ok, env) in cases.items():
                wall, used = timed(cmd, ok, env, tmp)
                walls[name].append(wall)
                cpu[name].append(used)
    med = {k: statistics.median(v) for k, v in walls.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    floor = med["python -c pass (the floor)"]
    # CPU time is the figure to read on a loaded machine: these commands run on one core,
    # so on an idle machine their wall time is about their CPU time.
    print(f"\n{'command':<48} {'median s':>9} {'min s':>7} {'cpu s':>7} {'over floor':>11}")
    for name, values in walls.items():
        goal = goals.get(name)
        extra = "" if name.startswith("python") else f"{med[name] - floor:>+10.3f}"
        if goal is not None:
            extra += "  " + verdict(med[name], goal)
        print(f"{name:<48} {med[name]:>9.3f} {min(values):>7.3f} {med_cpu[name]:>7.3f} {extra}")
    if args.apply:
        apply_figures(py, args.apply_runs, args.apply_engine)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


def apply_figures(py: str, runs: int, engine: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "apply.json"
        cmd = [py, str(HERE / "bench_apply.py"), "--runs", str(runs), "--engine", engine]
        print(f"\n{' '.join(cmd[1:])} ...", flush=True)
        subprocess.run(
            [*cmd, "--json", str(out)],
            check=True,
            cwd=REPO,
        )
        result = json.loads(out.read_text())
    noop = next(s for label, s in result["series"].items() if "no-op" in label)
    ratio = result["ratios"]["fleetctl/raw"]
    print()
    print(
        f"{'fleetctl apply, no-op on 50 running':<48} {noop['median']:>9.3f} {min(noop['walls']):>7.3f}"
        f" {'':>7} {'':>10}  " + verdict(noop["median"], GOALS["noop"])
    )
    print(
        f"{'apply of 20 tiny services / raw docker':<48} {ratio:>8.2f}x {'':>7} {'':>7} {'':>10}  "
        + verdict(ratio, GOALS["ratio"], "x")
    )


if __name__ == "__main__":
    main()
