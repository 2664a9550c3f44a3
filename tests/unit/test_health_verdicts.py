"""The pure decisions of `fleetctl health`: verdicts with memory, exit codes, the NIM
profile, heal's choices; and the memory itself in a real state file.

Fakes only at the project's own seams (a `HostAPI` for heal); no Docker, no sockets.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fleetctl.errors import ExitCode
from fleetctl.ops.health import (
    FrontDoorHealth,
    HealAction,
    HealthReport,
    HostHealth,
    Profile,
    ReplicaHealth,
    ReplicaState,
    Target,
    TritonDrift,
    Verdict,
    exit_code,
    judge,
)
from fleetctl.ops.health.heal import choose, heal_events, sweep_and_heal
from fleetctl.ops.health.model import DeploymentHealth
from fleetctl.ops.health.profiles import parse_profile, profile_problem
from fleetctl.state.health_store import Event, HealthMemory, Memory
from fleetctl.state.lock import StateLock

NOW = 1_750_000_000.0
H, D, U, S, M, K = (
    ReplicaState.HEALTHY,
    ReplicaState.DEGRADED,
    ReplicaState.UNHEALTHY,
    ReplicaState.STOPPED,
    ReplicaState.MISSING,
    ReplicaState.UNKNOWN,
)


def seen(
    state: ReplicaState,
    *,
    restarts: int | None = 0,
    started: float | None = NOW - 3600,
    cid: str = "c1",
    reasons: tuple[str, ...] = ("why",),
) -> ReplicaHealth:
    return ReplicaHealth(
        "m@1",
        0,
        "h1",
        state,
        "detail",
        container="fleetctl-m-1-0",
        container_id=cid,
        restart_count=restarts,
        started_at=started,
        reasons=reasons if state is not H else (),
    )


def sweeps(
    *observations: ReplicaHealth, failures: int = 3, grace: float = 60.0
) -> list[tuple[Verdict, int]]:
    """Judge observations one sweep after another (a minute apart), carrying the memory."""
    memory: Memory | None = None
    out = []
    for i, r in enumerate(observations):
        judged, memory, _ = judge(
            r, memory, now=NOW + 60 * i, failures_needed=failures, grace_s=grace
        )
        out.append((judged.verdict, judged.failures))
    return out


# -- streaks, grace, crash loops ------------------------------------------------------------
def test_failures_count_up_to_critical_and_one_success_recovers() -> None:
    assert sweeps(seen(U), seen(S), seen(M), seen(U), seen(H), seen(U)) == [
        (Verdict.FAILING, 1),
        (Verdict.FAILING, 2),
        (Verdict.CRITICAL, 3),
        (Verdict.CRITICAL, 4),
        (Verdict.OK, 0),
        (Verdict.FAILING, 1),
    ]


def test_failures_1_is_critical_at_first_sight() -> None:
    assert sweeps(seen(S), failures=1) == [(Verdict.CRITICAL, 1)]


def test_degraded_serves_so_it_ends_a_streak_and_is_never_critical() -> None:
    assert sweeps(seen(U), seen(U), seen(D), seen(D)) == [
        (Verdict.FAILING, 1),
        (Verdict.FAILING, 2),
        (Verdict.DEGRADED, 0),
        (Verdict.DEGRADED, 0),
    ]


def test_a_container_started_within_its_grace_is_starting_not_failing() -> None:
    young = seen(U, started=NOW - 10)
    judged, memory, _ = judge(young, None, now=NOW, failures_needed=1, grace_s=60)
    assert (judged.verdict, judged.failures) == (Verdict.STARTING, 0)
    assert judged.reasons[0] == "starting: started 10 s ago, within its 60 s start-up grace"
    # Past the grace, the same failure counts; a stopped container is never "starting".
    later, _, _ = judge(young, memory, now=NOW + 60, failures_needed=1, grace_s=60)
    assert later.verdict is Verdict.CRITICAL
    assert (
        judge(seen(S, started=NOW - 10), None, now=NOW, failures_needed=1, grace_s=60)[0].verdict
        is Verdict.CRITICAL
    )


def test_a_replica_that_served_and_then_fails_is_failing_even_within_its_grace() -> None:
    fresh = NOW - 10
    assert sweeps(
        seen(U, started=fresh), seen(H, started=fresh), seen(U, started=fresh), grace=600
    ) == [(Verdict.STARTING, 0), (Verdict.OK, 0), (Verdict.FAILING, 1)]
    # The same run failing on past its grace does not go back to starting either.
    assert sweeps(seen(U, started=fresh), seen(U, started=fresh), grace=30) == [
        (Verdict.STARTING, 0),
        (Verdict.FAILING, 1),
    ]


def test_starting_neither_counts_nor_resets_a_streak() -> None:
    assert sweeps(seen(U), seen(U, started=NOW + 60 - 5), seen(U, started=NOW - 3600)) == [
        (Verdict.FAILING, 1),
        (Verdict.STARTING, 1),
        (Verdict.FAILING, 2),
    ]


def test_a_rising_restart_count_is_a_crash_loop_even_when_the_probe_passes() -> None:
    obs = [
        seen(H, restarts=0),
        seen(H, restarts=2, started=NOW + 55),
        seen(H, restarts=3, started=NOW + 115),
        seen(H, restarts=3),
    ]
    memory, out = None, []
    for i, r in enumerate(obs):
        judged, memory, _ = judge(r, memory, now=NOW + 60 * i, failures_needed=2, grace_s=600)
        out.append((judged.verdict, judged.crash_loop, judged.restarts_since_last, memory.crashes))
    assert out == [
        (Verdict.OK, False, None, 0),
        (Verdict.FAILING, True, 2, 1),
        (Verdict.CRITICAL, True, 1, 2),
        (Verdict.OK, False, 0, 0),
    ]


def test_a_new_container_is_not_a_crash_loop_of_the_old_one() -> None:
    _, memory, _ = judge(
        seen(H, restarts=5, cid="old"), None, now=NOW, failures_needed=1, grace_s=0
    )
    judged, _, _ = judge(
        seen(H, restarts=0, cid="new"), memory, now=NOW + 60, failures_needed=1, grace_s=0
    )
    assert (judged.verdict, judged.crash_loop, judged.restarts_since_last) == (
        Verdict.OK,
        False,
        None,
    )


def test_unknown_keeps_the_memory_as_it_was() -> None:
    _, memory, _ = judge(seen(U), None, now=NOW, failures_needed=3, grace_s=0)
    judged, kept, event = judge(seen(K), memory, now=NOW + 60, failures_needed=3, grace_s=0)
    assert (judged.verdict, kept, event) == (Verdict.UNKNOWN, memory, None)
    after, _, _ = judge(seen(U), kept, now=NOW + 120, failures_needed=3, grace_s=0)
    assert after.failures == 2


def test_an_event_only_when_the_verdict_changes_and_since_keeps_its_start() -> None:
    r1, m1, e1 = judge(
        seen(U, reasons=("GET /v1/health/ready: 503",)), None, now=NOW, failures_needed=2, grace_s=0
    )
    r2, m2, e2 = judge(seen(U), m1, now=NOW + 60, failures_needed=2, grace_s=0)
    r3, m3, e3 = judge(seen(U), m2, now=NOW + 120, failures_needed=2, grace_s=0)
    assert (
        e1 is not None
        and e1.detail == "new -> failing: GET /v1/health/ready: 503"
        and e1.kind == "verdict"
    )
    assert e2 is not None and e2.verdict == "critical" and e3 is None
    assert (r2.since, r3.since, m3.since) == (NOW + 60, NOW + 60, NOW + 60)


# -- exit codes -----------------------------------------------------------------------------
def report_of(
    *verdicts: Verdict,
    hosts_up: bool = True,
    doors: tuple[ReplicaState, ...] = (),
    healed: tuple[HealAction, ...] = (),
) -> HealthReport:
    reps = tuple(ReplicaHealth("x@1", i, "h1", H, "d", verdict=v) for i, v in enumerate(verdicts))
    hosts = (HostHealth("h1", True), HostHealth("h2", hosts_up, None if hosts_up else "refused"))
    fds = tuple(FrontDoorHealth("h1", "u", s, "d") for s in doors)
    return HealthReport(
        NOW, 0.2, 5.0, hosts, (DeploymentHealth("x@1", len(reps), reps),), fds, healed=healed
    )


OK, DG, ST, FL, CR, UN = (
    Verdict.OK,
    Verdict.DEGRADED,
    Verdict.STARTING,
    Verdict.FAILING,
    Verdict.CRITICAL,
    Verdict.UNKNOWN,
)


@pytest.mark.parametrize(
    ("verdicts", "hosts_up", "expected"),
    [
        ((OK, OK), True, ExitCode.OK),
        ((OK, ST), True, ExitCode.OK),  # within its grace: fine
        ((OK, DG), True, ExitCode.DEGRADED),
        ((OK, FL), True, ExitCode.DEGRADED),  # failing, not yet --failures times
        ((DG, CR), True, ExitCode.UNHEALTHY),
        ((UN, CR), False, ExitCode.UNHEALTHY),
        ((UN, DG), False, ExitCode.DEGRADED),  # 6 says "only hosts unreachable"
        ((OK, UN), False, ExitCode.HOST_UNREACHABLE),
        (
            (OK, OK),
            False,
            ExitCode.HOST_UNREACHABLE,
        ),  # a dark host is a problem even with nothing on it
    ],
)
def test_exit_code(verdicts: tuple[Verdict, ...], hosts_up: bool, expected: ExitCode) -> None:
    assert exit_code(report_of(*verdicts, hosts_up=hosts_up)) is expected


def test_exit_codes_are_distinct_and_documented_values() -> None:
    assert (ExitCode.OK, ExitCode.HOST_UNREACHABLE, ExitCode.UNHEALTHY, ExitCode.DEGRADED) == (
        0,
        6,
        10,
        14,
    )
    assert len({int(c) for c in ExitCode}) == len(ExitCode)


def test_a_failed_front_door_is_critical_and_a_repaired_replica_only_degraded() -> None:
    assert exit_code(report_of(OK, doors=(S,))) is ExitCode.UNHEALTHY
    fixed = HealAction("x@1", 0, "h1", "start", True, "started; ready in 1.0 s")
    assert exit_code(report_of(CR, healed=(fixed,))) is ExitCode.DEGRADED
    assert exit_code(report_of(CR, healed=(replace(fixed, ok=False),))) is ExitCode.UNHEALTHY


# -- the NIM profile ------------------------------------------------------------------------
LOG = """INFO 2025-06-01 12:00:00.001 nim_standin] NIM_MAX_MODEL_LEN=8192
{warning}INFO 2025-06-01 12:00:00.002 nim_standin] Selected profile: {pid} ({name})
INFO 2025-06-01 12:00:00.003 nim_standin] Profile metadata: llm_engine: vllm
"""
WARNING = (
    "WARNING 2025-06-01 12:00:00.002 nim_standin] No optimized profile is compatible with the detected GPUs "
    "(stand-in: STANDIN_FALLBACK_PROFILE=1); falling back to a generic vllm profile\n"
)
PID = "cd" * 32


def test_profile_read_from_the_log_head() -> None:
    p = parse_profile(
        LOG.format(warning="", pid=PID, name="tensorrt_llm-h100-fp8-tp1-latency"), None
    )
    assert (p.id, p.name, p.fallback_warning, p.problem) == (
        PID,
        "tensorrt_llm-h100-fp8-tp1-latency",
        False,
        None,
    )
    fallback = parse_profile(LOG.format(warning=WARNING, pid=PID, name="vllm-bf16-tp1-pp1"), None)
    assert fallback.fallback_warning
    assert (
        fallback.problem
        == "fallback profile vllm-bf16-tp1-pp1 (cdcdcdcdcdcd): a generic engine, not an optimized profile"
    )
    assert parse_profile("no such line\n", None) == Profile(None, None, None, False)
    assert Profile(None, None, None).problem is None  # nothing named: nothing to judge


@pytest.mark.parametrize(
    ("name", "expected", "warned", "problem"),
    [
        ("vllm-bf16-tp1-pp1", "vllm-bf16-tp1-pp1", False, None),  # asked for by name
        ("vllm-bf16-tp1-pp1", PID, False, None),  # asked for by id
        (
            "tensorrt_llm-h100-fp8-tp1-latency",
            "tensorrt_llm-a100-bf16-tp2-latency",
            False,
            "profile tensorrt_llm-h100-fp8-tp1-latency (cdcdcdcdcdcd), expected tensorrt_llm-a100-bf16-tp2-latency (nim.model_profile)",
        ),
        (
            "sglang-bf16-tp1",
            None,
            False,
            "fallback profile sglang-bf16-tp1 (cdcdcdcdcdcd): a generic engine, not an optimized profile",
        ),
        (
            "tensorrt_llm-h100-fp8-tp1-latency",
            None,
            True,
            "profile tensorrt_llm-h100-fp8-tp1-latency (cdcdcdcdcdcd): the start-up log says no optimized profile fits",
        ),
    ],
)
def test_profile_against_the_expected_one(
    name: str, expected: str | None, warned: bool, problem: str | None
) -> None:
    assert profile_problem(Profile(PID, name, expected, warned)) == problem


# -- heal's choices -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "container_state", "crash", "drift", "runtime", "expected"),
    [
        (M, "", False, None, "nim", "recreate"),
        (S, "exited", False, None, "nim", "start"),
        (S, "created", False, None, "nim", "start"),
        (S, "restarting", False, None, "nim", "none: Docker's restart policy is restarting it"),
        (S, "paused", False, None, "nim", "none: paused by hand (docker unpause it)"),
        (
            U,
            "running",
            True,
            None,
            "nim",
            "none: crash loop; Docker's restart policy already restarts it (its log says why)",
        ),
        (
            U,
            "running",
            False,
            TritonDrift(not_ready=(("e", "is UNAVAILABLE (unloaded)"),)),
            "triton",
            "load_model",
        ),
        (U, "running", False, TritonDrift(missing=("e",)), "triton", "restart"),
        (U, "running", False, None, "nim", "restart"),
    ],
)
def test_heal_chooses_the_least_it_takes(
    state: ReplicaState,
    container_state: str,
    crash: bool,
    drift: TritonDrift | None,
    runtime: str,
    expected: str,
) -> None:
    r = ReplicaHealth(
        "x@1",
        0,
        "h1",
        state,
        "d",
        container_state=container_state,
        crash_loop=crash,
        triton=drift,
        verdict=Verdict.CRITICAL,
    )
    assert choose(r, Target("x@1", 0, "h1", runtime=runtime)) == expected


def test_heal_events_name_the_repair_and_its_outcome() -> None:
    r = ReplicaHealth("x@1", 0, "h1", S, "d", verdict=Verdict.CRITICAL)
    (e,) = heal_events(
        [HealAction("x@1", 0, "h1", "start", True, "started; ready in 0.6 s", "fleetctl-x-1-0")],
        [r],
    )
    assert (e.kind, e.verdict, e.detail) == (
        "heal",
        "critical",
        "start fleetctl-x-1-0: ok: started; ready in 0.6 s",
    )


def test_heal_with_the_state_locked_sweeps_and_says_why_it_did_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_location: Any
) -> None:
    import fleetctl.ops.health.heal as heal_mod

    state = state_location
    report = HealthReport(NOW, 0.1, 5.0, (), ())
    monkeypatch.setattr(heal_mod, "run_sweep", lambda *a, **kw: type("S", (), {"report": report})())
    with StateLock(state, "apply"):
        # Nothing outside is reached: the sweep is replaced and nothing may be healed.
        nothing = SimpleNamespace(observe=lambda inv: None, inspectors=lambda inv: {})
        out = sweep_and_heal(tmp_path / "fleet.yaml", nothing, state_path=state)  # type: ignore[arg-type]
    assert out.healing and not out.healed
    assert (
        out.heal_note is not None
        and out.heal_note.startswith("nothing healed: state ")
        and "(apply)" in out.heal_note
    )


# -- the memory in a real state file ---------------------------------------------------------
def test_memory_round_trips_and_is_scoped_by_fleet(state_location: Any) -> None:
    path = state_location
    a, b = HealthMemory(path, "a"), HealthMemory(path, "b")
    assert a.read() == {} and a.events() == []  # no file yet: nothing, and nothing created
    if isinstance(path, Path):
        assert not path.exists()
    m = Memory(
        "cid", 3, NOW - 5.25, 2, 1, "failing", NOW - 60, NOW, ("x", "y"), PID, "vllm-bf16-tp1-pp1"
    )
    event = Event(
        round(time.time(), 3), "m@1", 0, "h1", "verdict", "failing", "new -> failing: x", 12.5
    )
    assert a.update(lambda old: ({("m@1", 0): m}, [event], len(old))) == 0
    b.update(lambda old: ({("m@1", 0): replace(m, failures=9)}, [], None))
    assert a.read() == {("m@1", 0): m} and b.read()[("m@1", 0)].failures == 9
    assert (
        a.events("m") == [event]
        and a.events("m@1", 0) == [event]
        and a.events("m@2") == []
        and b.events() == []
    )
    # Replicas a sweep no longer returns (gone from the inventory) are forgotten.
    a.update(lambda old: ({}, [], None))
    assert a.read() == {} and b.read() != {}
    if isinstance(path, Path):
        mode = path.stat().st_mode & 0o777
        assert mode == 0o600


def test_memory_update_is_one_transaction_so_concurrent_sweeps_both_count(
    state_location: Any,
) -> None:
    mem = HealthMemory(state_location, "f")
    mem.ensure()

    def bump(old: Any) -> Any:
        m = old.get(("m@1", 0), Memory(verdict="failing"))
        time.sleep(0.01)  # widen the window a lost update would need
        return {("m@1", 0): replace(m, failures=m.failures + 1)}, [], None

    threads = [
        threading.Thread(
            target=lambda: [HealthMemory(mem.path, "f").update(bump) for _ in range(5)]
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mem.read()[("m@1", 0)].failures == 20


def test_old_events_are_dropped_after_the_retention(state_location: Any) -> None:
    mem = HealthMemory(state_location, "f")
    old = Event(time.time() - 3 * 86400, "m@1", 0, "h1", "verdict", "ok", "old")
    new = Event(time.time(), "m@1", 0, "h1", "verdict", "critical", "new")
    mem.update(lambda m: ({}, [old, new], None), retention_days=30)
    assert len(mem.events()) == 2
    mem.update(lambda m: ({}, [], None), retention_days=2)
    assert [e.detail for e in mem.events()] == ["new"]


def test_a_state_made_before_migration_4_is_migrated_on_first_use(tmp_path: Path) -> None:
    from fleetctl.state.migrations import MIGRATIONS

    path = tmp_path / "s.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    for m in MIGRATIONS[:3]:
        for statement in m.statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 'then')", (m.version,))
    conn.commit()
    conn.close()
    mem = HealthMemory(path, "f")
    assert mem.read() == {}
    mem.update(lambda m: ({("m@1", 0): Memory(verdict="ok")}, [], None))
    assert mem.read()[("m@1", 0)].verdict == "ok"
    versions = [
        v
        for (v,) in sqlite3.connect(path).execute(
            "SELECT version FROM schema_migrations ORDER BY version"
        )
    ]
    assert versions == [m.version for m in MIGRATIONS]  # every migration, the health ones included
