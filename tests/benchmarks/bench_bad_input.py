"""How long `fleetctl validate` takes to refuse each malformed inventory of
tests/unit/bad_inputs.py (the goal: every mistake answered within 2 s).

    python tests/benchmarks/bench_bad_input.py            # 5 runs per case
    python tests/benchmarks/bench_bad_input.py --runs 3

Each case is timed as a subprocess, Python start-up included; the figure per case is the
median of the runs. `fleetctl --help` in the same interpreter gives the start-up floor.
Beside it, the time `fleetctl.core.loader.load` itself takes to refuse the case in this
process (no start-up), which is what the malformed input costs.
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
sys.path.insert(0, str(HERE.parent / "unit"))

from bad_inputs import CASES  # noqa: E402

GOAL_S = 2.0


def timed(args: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "fleetctl", *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    return time.perf_counter() - t0, r.returncode


def in_process(path: Path, runs: int) -> float:
    from fleetctl.errors import InventoryError
    from fleetctl.runtimes.inventory import load

    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        try:
            load(path, ["nim", "triton"])
        except InventoryError:
            pass
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    floor = statistics.median(timed(["--help"])[0] for _ in range(args.runs))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (content, _)) in enumerate(CASES.items()):
            path = Path(tmp) / f"case{i}.yaml"
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
            samples = [timed(["validate", "-f", str(path)]) for _ in range(args.runs)]
            codes = {c for _, c in samples}
            rows.append(
                (name, statistics.median(t for t, _ in samples), codes, in_process(path, args.runs))
            )
    print(f"start-up floor (fleetctl --help): {floor:.2f} s, median of {args.runs}")
    print(f"{'case':<34} {'median s':>8} {'x floor':>7} {'load() ms':>9}  exit")
    for name, t, codes, inner in rows:
        print(
            f"{name:<34} {t:8.2f} {t / floor:7.2f} {inner * 1000:9.1f}  {','.join(map(str, sorted(codes)))}"
        )
    slowest = max(rows, key=lambda r: r[1])
    inner_max = max(rows, key=lambda r: r[3])
    ok = all(codes == {3} for _, _, codes, _ in rows)
    print(
        f"{len(rows)} cases; all exit 3: {ok}; slowest {slowest[0]} {slowest[1]:.2f} s "
        f"({slowest[1] / floor:.2f}x the floor); goal {GOAL_S:.0f} s: {'met' if slowest[1] < GOAL_S else 'missed'}; "
        f"slowest load() {inner_max[0]} {inner_max[3] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
