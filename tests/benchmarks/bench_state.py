"""The state on SQLite and on PostgreSQL (a local PostgreSQL 15 started here, loopback,
fsync on as in production), timed side by side in the same run.

    python tests/benchmarks/bench_state.py            # 7 runs each, medians
    python tests/benchmarks/bench_state.py --runs 3

What is timed, per backend:
- record a rollout: begin, 20 steps, 20 revisions, finish (what an apply of 20 replicas
  writes), each record its own transaction as apply writes them;
- take and release the lock;
- refuse a held lock (`LockedError` with the holder's details);
- `fleetctl plan --offline -f inventory/fleet.yaml --state …` end to end (the holds are
  read without SQLAlchemy on both backends), against `fleetctl --help` as the floor.
The ratio column is PostgreSQL over SQLite, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "testbed"))

from postgres import running_postgres  # noqa: E402

from fleetctl.errors import LockedError  # noqa: E402
from fleetctl.state.lock import StateLock  # noqa: E402
from fleetctl.state.paths import parse_state_location  # noqa: E402
from fleetctl.state.store import StateStore  # noqa: E402


def median_of(runs: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def record_rollout(store: StateStore, n: int = 20) -> None:
    rid = store.begin_rollout("apply", "inventory/fleet.yaml", "sha", {"actions": list(range(n))})
    for i in range(n):
        store.record_step(
            rid,
            deployment=f"m{i}@1",
            replica=0,
            host="h",
            action="create",
            container=f"c{i}",
            outcome="ok",
        )
        store.record_revision(
            deployment=f"m{i}@1",
            model=f"m{i}",
            version="1",
            spec_hash=f"{rid}-{i}",
            spec={"i": i},
            image="img:1",
            image_digest=None,
            placement=[{"host": "h"}],
            outcome="applied",
            rollout_id=rid,
        )
    store.finish_rollout(rid, "succeeded")


def lock_cycle(location: Any) -> None:
    with StateLock(location, "bench"):
        pass


def refusal(location: Any) -> None:
    try:
        StateLock(location, "bench refused", wait_s=0).acquire()
    except LockedError:
        return
    raise SystemExit("a held lock was not refused")


def cli(*args: str, env: dict[str, str]) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "fleetctl", *args], capture_output=True, text=True, env=env, cwd=REPO
    )
    if r.returncode != 0:
        raise SystemExit(f"fleetctl {' '.join(args)} failed ({r.returncode}): {r.stderr[-400:]}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}  (cores: {os.cpu_count()})")
    env = {k: v for k, v in os.environ.items() if k != "FLEETCTL_STATE"}
    with tempfile.TemporaryDirectory() as tmp, running_postgres(fsync=True) as server:
        locations = {
            "sqlite": Path(tmp) / "state" / "fleetctl.db",
            "postgresql": parse_state_location(server.url(server.new_database())),
        }
        rows: dict[str, dict[str, float]] = {}
        floor = median_of(args.runs, lambda: cli("--help", env=env))
        for name, location in locations.items():
            with StateStore(location) as store:
                record_rollout(store)  # warm: schema made, connections pooled
                rows.setdefault("record a rollout of 20 replicas", {})[name] = median_of(
                    args.runs, lambda: record_rollout(store)
                )
            rows.setdefault("take and release the lock", {})[name] = median_of(
                args.runs, lambda location=location: lock_cycle(location)
            )
            with StateLock(location, "bench holder"):
                rows.setdefault("refuse a held lock", {})[name] = median_of(
                    args.runs, lambda location=location: refusal(location)
                )
            rows.setdefault("fleetctl plan --offline (CLI)", {})[name] = median_of(
                args.runs,
                lambda location=location: cli(
                    "plan",
                    "--offline",
                    "-f",
                    "inventory/fleet.yaml",
                    "--state",
                    str(location),
                    "--output",
                    "json",
                    env=env,
                ),
            )
        print(f"fleetctl --help (start-up floor): {floor:.3f} s\n")
        print(f"{'':34} {'SQLite s':>9} {'PostgreSQL s':>13} {'ratio':>6}")
        for what, by in rows.items():
            print(
                f"{what:34} {by['sqlite']:>9.4f} {by['postgresql']:>13.4f} {by['postgresql'] / by['sqlite']:>6.2f}"
            )
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}  ({args.runs} runs each, medians)")


if __name__ == "__main__":
    main()
