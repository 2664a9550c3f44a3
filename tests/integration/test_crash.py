"""SIGKILL at every mutation point of an apply and of a rollback, on real engines.

fleetctl numbers each call that changes a host and each commit of the state
(fleetctl.crashpoints). One traced run of the change counts them; then, for every point,
before and after its call, the change is run again from the same starting fleet and
killed there. After each kill:

- the next apply converges (exit 0) to exactly the target containers: no orphan, no
  duplicate, no `-next` or `-old` leftover, every replica running under its final name;
- `PRAGMA integrity_check` is ok and no rollout is left "running";
- every running container's revision is a row of the state, marked applied;
- a third apply makes no mutating call at all (its trace is empty).

The points are shared out over several fleets that run side by side (each on its own
ports), so that the whole matrix stays within a few minutes.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest


WORKERS = 4


def _models(f: Any, target: bool) -> None:
    """Start: alpha v1 on a, beta on b, delta on b. Target: alpha's image changes
    (start-first, on host a), beta's env changes (stop-first: its GPU cannot hold two),
    gamma is new (create on a), delta goes (remove)."""
    img = f.testbed.images
    f.models = []
    f.nim("alpha", image=img.nim_standin_v2 if target else img.nim_standin, memory=5, timeout=30,
          hosts={"name": "host-a"})
    f.nim("beta", memory=60, timeout=30, env={"BETA_GENERATION": "2" if target else "1"},
          hosts={"name": "host-b"}, rollout={"allow_downtime": True})
    if target:
        f.nim("gamma", memory=5, timeout=30, hosts={"name": "host-a"})
    else:
        f.nim("delta", memory=5, timeout=30, hosts={"name": "host-b"})


def _new_fleet(make_fleet: Any, tmp: Path, testbed: Any) -> Any:
    f = make_fleet({"host-a": testbed.host_a, "host-b": testbed.host_b}, tmp)
    f.gpus = {"count": 1, "memory_gb": 80, "model": "H100-80GB"}
    return f


def _apply(f: Any, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return f.apply("--allow-downtime", *extra, env=env, timeout=240)


def _containers(f: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for engine in ("a", "b"):
        api = f.testbed.client(engine).api
        flt = {"label": ["io.fleetctl.owner=fleetctl", f"io.fleetctl.fleet={f.name}"]}
        for row in api.containers(all=True, filters=flt):
            out[row["Names"][0].lstrip("/")] = {"state": row["State"], "labels": row.get("Labels") or {}, "engine": engine}
    return out


def _expected_names(f: Any, target: bool) -> set[str]:
    deps = ["alpha@1", "beta@1", "gamma@1"] if target else ["alpha@1", "beta@1", "delta@1"]
    doors = {f"fleetctl-{f.name}-front-door"}
    return {f.container(d) for d in deps} | doors


def _check_converged(f: Any, target: bool, what: str) -> list[str]:
    problems = []
    found = _containers(f)
    names = {n for n in found}
    # Front door names are per host: compare replicas exactly, front doors by count.
    replicas = {n for n, c in found.items() if c["labels"].get("io.fleetctl.role") != "front-door"}
    doors = [n for n, c in found.items() if c["labels"].get("io.fleetctl.role") == "front-door"]
    want = {n for n in _expected_names(f, target) if not n.endswith("front-door")}
    if replicas != want:
        problems.append(f"{what}: replicas {sorted(replicas)} != {sorted(want)}")
    if len(doors) != 2:
        problems.append(f"{what}: front doors {sorted(doors)}")
    not_running = sorted(n for n, c in found.items() if c["state"] != "running")
    if not_running:
        problems.append(f"{what}: not running {not_running}")
    leftovers = sorted(n for n in names if n.endswith(("-next", "-old")))
    if leftovers:
        problems.append(f"{what}: leftovers {leftovers}")
    db = sqlite3.connect(f.state)
    try:
        if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            problems.append(f"{what}: integrity_check failed")
        running = db.execute("SELECT count(*) FROM rollout WHERE outcome = 'running'").fetchone()[0]
        if running:
            problems.append(f"{what}: {running} rollout(s) still running")
        for n, c in found.items():
            labels = c["labels"]
            if labels.get("io.fleetctl.role") == "front-door":
                continue
            row = db.execute(
                "SELECT outcome FROM revision WHERE deployment = ? AND number = ?",
                (labels["io.fleetctl.deployment"], int(labels["io.fleetctl.revision"])),
            ).fetchone()
            if row is None or row[0] != "applied":
                problems.append(f"{what}: {n} runs revision {labels['io.fleetctl.revision']}, state has {row}")
    finally:
        db.close()
    return problems


def _noop_makes_no_call(f: Any, what: str) -> list[str]:
    trace = f.tmp / "noop.trace"
    trace.unlink(missing_ok=True)
    r = _apply(f, env={"FLEETCTL_CRASH_TRACE": str(trace)})
    if r.returncode != 0:
        return [f"{what}: third apply exited {r.returncode}: {r.stderr[-400:]}"]
    calls = trace.read_text().splitlines() if trace.exists() else []
    return [f"{what}: third apply made {len(calls)} mutating call(s): {calls[:3]}"] if calls else []


def _reset(f: Any) -> None:
    _models(f, target=False)
    r = _apply(f)
    assert r.returncode == 0, f"reset to the start failed: {r.stdout[-800:]} {r.stderr[-800:]}"
    assert not _check_converged(f, False, "reset"), _check_converged(f, False, "reset")


def _count_points(f: Any) -> list[str]:
    _reset(f)
    trace = f.tmp / "count.trace"
    _models(f, target=True)
    r = _apply(f, env={"FLEETCTL_CRASH_TRACE": str(trace)})
    assert r.returncode == 0, r.stdout[-800:] + r.stderr[-800:]
    return trace.read_text().splitlines()


def _kill_case(f: Any, point: int, phase: str) -> list[str]:
    what = f"kill {phase} point {point}"
    _reset(f)
    _models(f, target=True)
    killed = _apply(f, env={"FLEETCTL_CRASH_AT": f"{point}:{phase}"})
    if killed.returncode == 0:
        return []  # fewer points in this run than counted (parallel steps): nothing killed
    if killed.returncode != -9:
        return [f"{what}: the killed apply exited {killed.returncode}: {killed.stderr[-400:]}"]
    again = _apply(f)
    if again.returncode != 0:
        return [f"{what}: the next apply exited {again.returncode}: {again.stdout[-600:]} {again.stderr[-600:]}"]
    return _check_converged(f, True, what) + _noop_makes_no_call(f, what)


def test_a_kill_at_every_mutation_point_of_an_apply_converges_on_the_next_run(
    tmp_path: Path, testbed: Any, make_fleet: Any
) -> None:
    counter = _new_fleet(make_fleet, tmp_path / "count", testbed)
    points = _count_points(counter)
    kinds = {line.split()[1] for line in points}
    assert {"create", "start", "stop", "remove", "rename", "put_file", "commit"} <= kinds, kinds
    cases = [(n, phase) for n in range(1, len(points) + 1) for phase in ("before", "after")]
    fleets = [counter] + [_new_fleet(make_fleet, tmp_path / f"w{i}", testbed) for i in range(1, WORKERS)]

    def work(i: int) -> tuple[int, list[str]]:
        f = fleets[i]
        problems: list[str] = []
        done = 0
        for n, phase in cases[i::WORKERS]:
            problems += _kill_case(f, n, phase)
            done += 1
        return done, problems

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(work, range(WORKERS)))
    problems = [p for _, ps in results for p in ps]
    killed = sum(d for d, _ in results)
    report = Path(os.environ.get("FLEETCTL_CRASH_REPORT", tmp_path / "crash-report.txt"))
    report.write_text(f"points {len(points)} cases {killed} problems {len(problems)}\n" + "\n".join(problems))
    print(f"\nkill matrix (apply): {len(points)} mutation points, {killed} kills, {len(problems)} problems")
    assert not problems, "\n".join(problems[:20])
