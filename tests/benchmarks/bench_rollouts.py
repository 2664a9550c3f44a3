#!/usr/bin/env python3
"""Benchmark: failed requests and switch times of rollouts under steady load.

Run it as root on the test bed (docs/testbed.md), from the repository root:

    .venv/bin/python tests/benchmarks/bench_rollouts.py            # 3 runs per scenario
    .venv/bin/python tests/benchmarks/bench_rollouts.py --runs 5 --json out.json

For each scenario it applies a small fleet on engine a (its own fleet name and port
range 28000-28099, front door at 28099), starts a client that sends one chat completion
after another through the front door (about 50 a second, loopback only), runs the
change with the real CLI, and reports:

- failed requests (anything but 200; goal 0), the most of any run;
- `apply s`: wall time of the changing command;
- `switch s`: from the start of the command to the first request served by the new
  version (version bump, rollback), and `all traffic s` to the last request the old
  version served.

Scenarios: env change, image change, version bump v4 -> v5, a never-ready revision with
auto-revert, rollback to a running pin, replicas 1 -> 3 -> 1, a change while a second
host is unreachable. The numbers are medians over `--runs`.

Run it alone on the engines: the integration tests' clean-up removes every managed
container created while a test runs, on every engine, which would take the benchmark's
front door or replicas away mid-scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
ENGINE = "unix:///run/fleetctl-testbed/a.sock"
PORTS = (28000, 28099)
FRONT_DOOR = f"http://127.0.0.1:{PORTS[1]}"
BODY = {"model": "chat-llm", "messages": [{"role": "user", "content": "bench"}], "max_tokens": 4}


class Load:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.events: list[tuple[float, int, str]] = []  # (monotonic, status, served by)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as c:
            while not self.stop.is_set():
                t = time.monotonic()
                try:
                    r = c.post(FRONT_DOOR + "/v1/chat/completions", json=BODY)
                    self.events.append(
                        (t, r.status_code, r.headers.get("x-fleetctl-deployment", ""))
                    )
                except httpx.HTTPError:
                    self.events.append((t, 0, ""))
                time.sleep(0.02)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=15)

    def failed(self) -> int:
        return sum(1 for _, status, _ in self.events if status != 200)

    def first(self, deployment: str, after: float) -> float | None:
        return next(
            (t for t, s, d in self.events if t >= after and s == 200 and d == deployment), None
        )

    def last(self, deployment: str) -> float | None:
        return max((t for t, s, d in self.events if s == 200 and d == deployment), default=None)


class Fleet:
    def __init__(self, tmp: Path, name: str) -> None:
        self.tmp, self.name = tmp, name
        self.path = tmp / "fleet.yaml"
        self.state = tmp / "state.db"
        self.hosts = [self._host("bench-a", ENGINE)]
        self.model: dict[str, Any] = {
            "name": "chat-llm",
            "version": "v4",
            "runtime": "nim",
            "image": "fleetctl-testbed/nim-standin:1",
            "gpu_memory_gb": 10,
            "replicas": 1,
            "nim": {
                "served_model_name": "chat-llm",
                "cache_dir": str(tmp / "cache"),
                "startup_timeout_s": 60,
            },
        }

    @staticmethod
    def _host(name: str, url: str) -> dict[str, Any]:
        return {
            "name": name,
            "docker": url,
            "simulated": True,
            "gpus": {"count": 4, "memory_gb": 80},
            "network": "host",
            "address": "127.0.0.1",
            "ports": f"{PORTS[0]}-{PORTS[1]}",
            "labels": {"name": name},
        }

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        doc = {
            "fleet": self.name,
            "front_door": {"image": "fleetctl-testbed/front-door:1"},
            "hosts": self.hosts,
            "models": [self.model],
        }
        self.path.write_text(yaml.safe_dump(doc, sort_keys=False))
        env = {**os.environ, "NGC_API_KEY": "bench-key-for-the-stand-in"}
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "fleetctl",
                *args,
                "-f",
                str(self.path),
                "--yes",
                "--state",
                str(self.state),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )

    def apply(self) -> subprocess.CompletedProcess[str]:
        return self.cli("apply")

    def down(self) -> None:
        self.hosts = self.hosts[:1]
        self.cli("down")


Run = Callable[[], subprocess.CompletedProcess[str]]
# A scenario: given a fleet, (the first apply, the change, the version serving before, after).
Change = Callable[[Fleet], tuple[Run, Run, str, str]]


def env_change(f: Fleet):  # type: ignore[no-untyped-def]
    f.model["replicas"] = 2
    return (
        f.apply,
        lambda: (f.model.__setitem__("env", {"STANDIN_START_DELAY_S": "0.6"}), f.apply())[1],
        "chat-llm@v4",
        "chat-llm@v4",
    )


def image_change(f: Fleet):  # type: ignore[no-untyped-def]
    f.model["replicas"] = 2
    return (
        f.apply,
        lambda: (f.model.__setitem__("image", "fleetctl-testbed/nim-standin:2"), f.apply())[1],
        "chat-llm@v4",
        "chat-llm@v4",
    )


def version_bump(f: Fleet):  # type: ignore[no-untyped-def]
    def change():  # type: ignore[no-untyped-def]
        f.model.update(version="v5", image="fleetctl-testbed/nim-standin:2")
        return f.apply()

    return f.apply, change, "chat-llm@v4", "chat-llm@v5"


def failing_version(f: Fleet):  # type: ignore[no-untyped-def]
    f.model["replicas"] = 2

    def change():  # type: ignore[no-untyped-def]
        f.model["env"] = {"STANDIN_NEVER_READY": "1"}
        f.model["nim"] = {**f.model["nim"], "startup_timeout_s": 3}
        return f.apply()

    return f.apply, change, "chat-llm@v4", "chat-llm@v4"


def rollback_to_pin(f: Fleet):  # type: ignore[no-untyped-def]
    f.model["pins"] = [
        {"version": "v3", "image": "fleetctl-testbed/nim-standin:2", "customers": ["acme-corp"]}
    ]
    return f.apply, lambda: f.cli("rollback", "chat-llm@v3"), "chat-llm@v4", "chat-llm@v3"


def scale_1_3_1(f: Fleet):  # type: ignore[no-untyped-def]
    def change():  # type: ignore[no-untyped-def]
        f.model["replicas"] = 3
        up = f.apply()
        f.model["replicas"] = 1
        down = f.apply()
        return down if up.returncode == 0 else up

    return f.apply, change, "chat-llm@v4", "chat-llm@v4"


def host_unreachable(f: Fleet):  # type: ignore[no-untyped-def]
    f.hosts.append(f._host("bench-gone", "unix:///run/fleetctl-testbed/no-such-engine.sock"))
    f.model["hosts"] = {"name": "bench-a"}

    def change():  # type: ignore[no-untyped-def]
        f.model["image"] = "fleetctl-testbed/nim-standin:2"
        return f.apply()

    return f.apply, change, "chat-llm@v4", "chat-llm@v4"


SCENARIOS: dict[str, Change] = {
    "env change": env_change,
    "image change": image_change,
    "version bump v4->v5": version_bump,
    "never-ready revision, auto-revert": failing_version,
    "rollback to a running pin": rollback_to_pin,
    "replicas 1->3->1": scale_1_3_1,
    "second host unreachable": host_unreachable,
}


def run_once(name: str, make: Change, tmp: Path, i: int) -> dict[str, Any]:
    f = Fleet(tmp, f"bench-rollouts-{i}")
    prep, change, old, new = make(f)
    try:
        first = prep()
        if first.returncode not in (0, 6):
            raise SystemExit(f"{name}: first apply failed: {first.stdout}{first.stderr}")
        time.sleep(1.0)
        with Load() as load:
            time.sleep(0.5)
            t0 = time.monotonic()
            r = change()
            took = time.monotonic() - t0
            time.sleep(0.5)
        switch = load.first(new, t0) if new != old else None
        last_old = load.last(old) if new != old else None
        return {
            "rc": r.returncode,
            "requests": len(load.events),
            "failed": load.failed(),
            "apply_s": took,
            "switch_s": None if switch is None else switch - t0,
            "all_traffic_s": None if last_old is None else max(0.0, last_old - t0),
        }
    finally:
        f.down()


def median(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", help="run scenarios whose name contains this")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="fleetctl-bench-rollouts-") as d:
        for name, make in SCENARIOS.items():
            if args.only and args.only not in name:
                continue
            results[name] = []
            for i in range(args.runs):
                tmp = Path(d) / f"{len(results)}-{i}"
                tmp.mkdir()
                results[name].append(run_once(name, make, tmp, i))
    print("| scenario | runs | exit | requests | failed | apply s | switch s | all traffic s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for name, rs in results.items():

        def fmt(v: float | None) -> str:
            return "" if v is None else f"{v:.2f}"

        print(
            f"| {name} | {len(rs)} | {','.join(sorted({str(r['rc']) for r in rs}))} | "
            f"{int(statistics.median(r['requests'] for r in rs))} | {max(r['failed'] for r in rs)} | "
            f"{fmt(median([r['apply_s'] for r in rs]))} | {fmt(median([r['switch_s'] for r in rs]))} | "
            f"{fmt(median([r['all_traffic_s'] for r in rs]))} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
