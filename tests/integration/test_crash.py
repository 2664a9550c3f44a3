"""SIGKILL at every mutation point of an apply and of a rollback, on real engines.

fleetctl numbers each call that changes a host and each commit of the state
(fleetctl.crashpoints). One traced run of the change (and one of the change back)
counts them; then, for every point, before and after its call, the change is run again
from its starting fleet and killed there. After each kill:

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

WORKERS = 6
# A plain `make test` runs a third of the cases (before the call at every third point,
# after it at the points just before those), to stay well within its time; CI (.ci/run)
# sets FLEETCTL_CRASH_MATRIX=full and kills at every point, before and after.
FULL = os.environ.get("FLEETCTL_CRASH_MATRIX") == "full"

# The kill matrices stay on SQLite: after each SIGKILL they read the state file itself
# (PRAGMA integrity_check, and the row behind each container's revision label, with
# sqlite3). The suite's pass on PostgreSQL (FLEETCTL_TEST_STATE=postgresql, .ci/run)
# leaves this file out; run that way anyway, it is skipped rather than put on SQLite
# behind the caller's back (docs/state.md, "Tests on both backends").
pytestmark = pytest.mark.skipif(
    os.environ.get("FLEETCTL_TEST_STATE", "sqlite") == "postgresql",
    reason="the kill matrices read the SQLite state file directly: SQLite only",
)


def _sampled(cases: list[tuple]) -> list[tuple]:  # type: ignore[type-arg]
    if FULL:
        return cases
    return [c for c in cases if (c[-2] + (0 if c[-1] == "before" else 1)) % 3 == 0]


def _models(f: Any, target: bool) -> None:
    """Start: alpha v1 on a, beta on b, delta on b. Target: alpha's image changes
    (start-first, on host a), beta's env changes (stop-first: its GPU cannot hold two),
    gamma is new (create on a), delta goes (remove)."""
    img = f.testbed.images
    f.models = []
    f.nim(
        "alpha",
        image=img.nim_standin_v2 if target else img.nim_standin,
        memory=5,
        timeout=30,
        hosts={"name": "host-a"},
    )
    f.nim(
        "beta",
        memory=60,
        timeout=30,
        env={"BETA_GENERATION": "2" if target else "1"},
        hosts={"name": "host-b"},
        rollout={"allow_downtime": True},
    )
    if target:
        f.nim("gamma", memory=5, timeout=30, hosts={"name": "host-a"})
    else:
        f.nim("delta", memory=5, timeout=30, hosts={"name": "host-b"})


def _new_fleet(make_fleet: Any, tmp: Path, testbed: Any) -> Any:
    f = make_fleet({"host-a": testbed.host_a, "host-b": testbed.host_b}, tmp)
    f.gpus = {"count": 1, "memory_gb": 80, "model": "H100-80GB"}
    return f


def _apply(
    f: Any, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return f.apply("--allow-downtime", *extra, env=env, timeout=240)


def _containers(f: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """This fleet's managed containers on engines a and b, by (engine, name)."""
    out = {}
    for engine in ("a", "b"):
        api = f.testbed.client(engine).api
        flt = {"label": ["io.fleetctl.owner=fleetctl", f"io.fleetctl.fleet={f.name}"]}
        for row in api.containers(all=True, filters=flt):
            out[(engine, row["Names"][0].lstrip("/"))] = {
                "state": row["State"],
                "labels": row.get("Labels") or {},
            }
    return out


def _expected_names(f: Any, target: bool) -> set[str]:
    deps = ["alpha@1", "beta@1", "gamma@1"] if target else ["alpha@1", "beta@1", "delta@1"]
    doors = {f"fleetctl-{f.name}-front-door"}
    return {f.container(d) for d in deps} | doors


def _check_converged(f: Any, target: bool, what: str) -> list[str]:
    problems = []
    found = _containers(f)
    replicas = {
        n for (_, n), c in found.items() if c["labels"].get("io.fleetctl.role") != "front-door"
    }
    doors = [
        n for (_, n), c in found.items() if c["labels"].get("io.fleetctl.role") == "front-door"
    ]
    want = {n for n in _expected_names(f, target) if not n.endswith("front-door")}
    if sorted(replicas) != sorted(want) or len(replicas) != sum(
        1 for c in found.values() if c["labels"].get("io.fleetctl.role") != "front-door"
    ):
        problems.append(f"{what}: replicas {sorted(found)} != {sorted(want)}")
    if len(doors) != 2:
        problems.append(f"{what}: front doors {sorted(doors)}")
    not_running = sorted(n for (_, n), c in found.items() if c["state"] != "running")
    if not_running:
        problems.append(f"{what}: not running {not_running}")
    leftovers = sorted(n for (_, n) in found if n.endswith(("-next", "-old")))
    if leftovers:
        problems.append(f"{what}: leftovers {leftovers}")
    db = sqlite3.connect(f.state)
    try:
        if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            problems.append(f"{what}: integrity_check failed")
        running = db.execute("SELECT count(*) FROM rollout WHERE outcome = 'running'").fetchone()[0]
        if running:
            problems.append(f"{what}: {running} rollout(s) still running")
        for (_, n), c in found.items():
            labels = c["labels"]
            if labels.get("io.fleetctl.role") == "front-door":
                continue
            row = db.execute(
                "SELECT outcome FROM revision WHERE deployment = ? AND number = ?",
                (labels["io.fleetctl.deployment"], int(labels["io.fleetctl.revision"])),
            ).fetchone()
            if row is None or row[0] != "applied":
                problems.append(
                    f"{what}: {n} runs revision {labels['io.fleetctl.revision']}, state has {row}"
                )
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


def _converge(f: Any, target: bool) -> None:
    _models(f, target)
    r = _apply(f)
    assert r.returncode == 0, f"apply failed: {r.stdout[-800:]} {r.stderr[-800:]}"
    problems = _check_converged(f, target, "setup")
    assert not problems, problems


def _count_points(f: Any, target: bool) -> int:
    """Mutation points of the change to `target` from the other side (the fleet ends there)."""
    _converge(f, not target)
    trace = f.tmp / f"count-{target}.trace"
    _models(f, target)
    r = _apply(f, env={"FLEETCTL_CRASH_TRACE": str(trace)})
    assert r.returncode == 0, r.stdout[-800:] + r.stderr[-800:]
    kinds = {line.split()[1] for line in trace.read_text().splitlines()}
    assert {"create", "start", "stop", "remove", "rename", "put_file", "commit"} <= kinds, kinds
    return len(trace.read_text().splitlines())


def _kill_case(f: Any, target: bool, point: int, phase: str) -> list[str]:
    """From the other side, the change to `target` killed at `point`; the fleet ends at
    `target` (so the next case goes back the other way without a reset)."""
    what = f"to {'target' if target else 'start'}: kill {phase} point {point}"
    _models(f, target)
    killed = _apply(f, env={"FLEETCTL_CRASH_AT": f"{point}:{phase}"})
    if killed.returncode == 0:
        return []  # fewer points in this run than counted (parallel steps): nothing killed
    if killed.returncode != -9:
        return [f"{what}: the killed apply exited {killed.returncode}: {killed.stderr[-400:]}"]
    again = _apply(f)
    if again.returncode != 0:
        return [
            f"{what}: the next apply exited {again.returncode}: {again.stdout[-600:]} {again.stderr[-600:]}"
        ]
    return _check_converged(f, target, what) + _noop_makes_no_call(f, what)


def test_a_kill_at_every_mutation_point_of_an_apply_converges_on_the_next_run(
    tmp_path: Path, testbed: Any, make_fleet: Any
) -> None:
    fleets = [_new_fleet(make_fleet, tmp_path / f"w{i}", testbed) for i in range(WORKERS)]
    # Both directions are a multi-host change with start-first, stop-first, a create and
    # a removal; the cases alternate between them so each starts where the last ended.
    points = {True: _count_points(fleets[0], True), False: _count_points(fleets[0], False)}
    cases = _sampled(
        [
            (t, n, ph)
            for t in (True, False)
            for n in range(1, points[t] + 1)
            for ph in ("before", "after")
        ]
    )

    def work(i: int) -> tuple[int, list[str]]:
        f = fleets[i]
        mine = cases[i::WORKERS]
        todo = {True: [c for c in mine if c[0]], False: [c for c in mine if not c[0]]}
        _converge(f, False)  # worker 0 is there already; the others get there
        problems: list[str] = []
        done, target = 0, True
        while todo[True] or todo[False]:
            if not todo[target]:
                _converge(f, target)  # nothing left this way: just cross over
            else:
                _, n, phase = todo[target].pop(0)
                problems += _kill_case(f, target, n, phase)
                done += 1
            target = not target
        return done, problems

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(work, range(WORKERS)))
    problems = [p for _, ps in results for p in ps]
    killed = sum(d for d, _ in results)
    report = Path(os.environ.get("FLEETCTL_CRASH_REPORT", tmp_path / "crash-report.txt"))
    with report.open("a") as out:
        out.write(
            f"apply: points {points[True]} + {points[False]} cases {killed} problems {len(problems)}\n"
            + "\n".join(problems)
            + "\n"
        )
    print(
        f"\nkill matrix (apply): {points[True]} + {points[False]} mutation points, {killed} kills, "
        f"{len(problems)} problems"
    )
    assert not problems, "\n".join(problems[:20])


# -- a rollback, killed at every point -----------------------------------------------------


def _chat(f: Any, image: str) -> None:
    f.models = []
    f.nim("chat", image=image, memory=30, timeout=30, replicas=2)


def _rollback(f: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return f.cli(
        "rollback",
        "chat@1",
        "--to-revision",
        "1",
        "--yes",
        "--allow-downtime",
        "--state",
        str(f.state),
        env=env,
        timeout=240,
    )


def _roll_forward(f: Any) -> None:
    """Release the hold and apply the inventory's newer image (the start of each case)."""
    f.cli("release", "chat", "--state", str(f.state))
    _chat(f, f.testbed.images.nim_standin_v2)
    r = _apply(f)
    assert r.returncode == 0, r.stdout[-800:] + r.stderr[-800:]


def _check_rolled_back(f: Any, what: str) -> list[str]:
    problems = []
    found = _containers(f)
    replicas = {
        n: c for (_, n), c in found.items() if c["labels"].get("io.fleetctl.role") != "front-door"
    }
    want = {f.container("chat@1", 0), f.container("chat@1", 1)}
    if set(replicas) != want or len(replicas) != 2:
        problems.append(f"{what}: replicas {sorted(found)}")
    images = {c["labels"].get("io.fleetctl.image") for c in replicas.values()}
    if images != {f.testbed.images.nim_standin}:
        problems.append(f"{what}: images {images}")
    if any(c["state"] != "running" for c in found.values()):
        problems.append(f"{what}: not all running")
    db = sqlite3.connect(f.state)
    try:
        if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            problems.append(f"{what}: integrity_check failed")
        if db.execute("SELECT count(*) FROM rollout WHERE outcome = 'running'").fetchone()[0]:
            problems.append(f"{what}: a rollout is still running")
        hold = db.execute("SELECT revision FROM hold WHERE model = 'chat'").fetchone()
        if hold is None or hold[0] != 1:
            problems.append(f"{what}: hold {hold}")
        for c in replicas.values():
            labels = c["labels"]
            row = db.execute(
                "SELECT outcome FROM revision WHERE deployment = 'chat@1' AND number = ?",
                (int(labels["io.fleetctl.revision"]),),
            ).fetchone()
            if row is None or row[0] != "applied":
                problems.append(
                    f"{what}: runs revision {labels['io.fleetctl.revision']}, state has {row}"
                )
    finally:
        db.close()
    return problems


def test_a_kill_at_every_mutation_point_of_a_rollback_converges_when_it_is_run_again(
    tmp_path: Path, testbed: Any, make_fleet: Any
) -> None:
    fleets = [_new_fleet(make_fleet, tmp_path / f"r{i}", testbed) for i in range(WORKERS)]
    for f in fleets:  # revision 1 (the image to go back to), then the newer image
        _chat(f, testbed.images.nim_standin)
        assert _apply(f).returncode == 0
        _roll_forward(f)
    trace = tmp_path / "rollback.trace"
    counted = _rollback(fleets[0], env={"FLEETCTL_CRASH_TRACE": str(trace)})
    assert counted.returncode == 0, counted.stdout[-800:] + counted.stderr[-800:]
    points = len(trace.read_text().splitlines())
    assert {"create", "rename", "remove", "put_file", "commit"} <= {
        ln.split()[1] for ln in trace.read_text().splitlines()
    }
    _roll_forward(fleets[0])
    cases = _sampled([(n, ph) for n in range(1, points + 1) for ph in ("before", "after")])

    def work(i: int) -> tuple[int, list[str]]:
        f, problems, done = fleets[i], [], 0
        for n, phase in cases[i::WORKERS]:
            what = f"rollback: kill {phase} point {n}"
            killed = _rollback(f, env={"FLEETCTL_CRASH_AT": f"{n}:{phase}"})
            if killed.returncode not in (0, -9):
                problems.append(f"{what}: exited {killed.returncode}: {killed.stderr[-400:]}")
            elif killed.returncode == -9:
                again = _rollback(f)
                if again.returncode != 0:
                    problems.append(
                        f"{what}: run again, exited {again.returncode}: {again.stdout[-500:]} {again.stderr[-500:]}"
                    )
                else:
                    problems += _check_rolled_back(f, what) + _noop_makes_no_call(f, what)
                done += 1
            _roll_forward(f)
        return done, problems

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(work, range(WORKERS)))
    problems = [p for _, ps in results for p in ps]
    killed = sum(d for d, _ in results)
    report = Path(os.environ.get("FLEETCTL_CRASH_REPORT", tmp_path / "crash-report.txt"))
    with report.open("a") as out:
        out.write(
            f"rollback: points {points} cases {killed} problems {len(problems)}\n"
            + "\n".join(problems)
            + "\n"
        )
    print(
        f"\nkill matrix (rollback): {points} mutation points, {killed} kills, {len(problems)} problems"
    )
    assert not problems, "\n".join(problems[:20])
