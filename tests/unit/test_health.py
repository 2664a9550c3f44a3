"""`fleetctl health`: the sweep over fakes (targets, states, verdicts, bounds, the memory
kept in a real state file) and the pure classification it rests on.

Fakes sit at the project's own seams (health_kit.py): the observer, the probe and the
facts reader. The probes themselves are in test_health_probes.py, the outputs in
test_health_output.py, the verdict rules in test_health_verdicts.py.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from health_kit import (
    NOT_READY,
    FakeProbe,
    applied,
    dep,
    edit,
    endpoint,
    replica,
    run,
    write_inventory,
)

from fleetctl.core.observed import ContainerRun, ObservedContainer, ObservedFleet, ObservedHost
from fleetctl.core.plan import ActionKind
from fleetctl.errors import ExitCode, HostUnreachableError
from fleetctl.ops.health import (
    ContainerFacts,
    DeploymentHealth,
    DeploymentState,
    ProbeResult,
    ProbeSpec,
    Profile,
    ReplicaHealth,
    ReplicaState,
    Target,
    Verdict,
    classify_replica,
    exit_code,
)
from fleetctl.ops.health import sweeping as sweep_mod
from fleetctl.ops.planning import plan_inventory
from fleetctl.results import to_jsonable
from fleetctl.results.health import health_result


def test_a_stopped_front_door_is_unhealthy_and_stale_routes_are_named(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    observed = applied(path)
    ok = run(path, observed)
    assert [f.state for f in ok.front_doors] == [ReplicaState.HEALTHY, ReplicaState.HEALTHY]
    assert all(f.routes_current for f in ok.front_doors) and exit_code(ok) is ExitCode.OK
    h1 = observed.hosts["h1"]
    stopped = ObservedFleet(
        {
            **observed.hosts,
            "h1": replace(h1, front_doors=(replace(h1.front_doors[0], state="exited"),)),
        },
        offline=False,
    )
    report = run(path, stopped)
    assert (
        report.front_doors[0].state is ReplicaState.STOPPED
        and exit_code(report) is ExitCode.UNHEALTHY
    )
    stale = ObservedFleet(
        {
            **observed.hosts,
            "h1": replace(h1, front_doors=(replace(h1.front_doors[0], routes_hash="old"),)),
        },
        offline=False,
    )
    report = run(path, stale)
    assert not report.front_doors[0].routes_current and "stale" in report.front_doors[0].detail
    assert to_jsonable(health_result(report))["front_doors"][0]["routes_current"] is False


# -- the sweep over fakes ------------------------------------------------------------------
def test_applied_fleet_is_healthy_and_every_replica_is_probed_with_what_it_should_serve(
    tmp_path: Path,
) -> None:
    path = write_inventory(tmp_path)
    observed, probe = applied(path), FakeProbe()
    report = run(path, observed, probe, timeout_s=3.5)
    assert {r.state for r in report.replicas} == {ReplicaState.HEALTHY} and len(
        report.replicas
    ) == 3
    assert {r.verdict for r in report.replicas} == {Verdict.OK}
    assert [d.state for d in report.deployments] == [DeploymentState.OK, DeploymentState.OK]
    assert exit_code(report) is ExitCode.OK
    checks = {s.endpoint: [(h.kind, h.target) for h in s.health] for s, t in probe.seen if t == 3.5}
    doors = {f.url for fds in observed.front_doors().values() for f in fds}
    assert set(checks) == {c.endpoint for c in observed.containers()} | doors
    assert checks[endpoint(observed, "chat@1#0")] == [("http", "/v1/health/ready")]
    assert checks[endpoint(observed, "embed@1#0")] == [
        ("http", "/v2/health/ready"),
        ("triton_model", "embed"),
    ]
    specs = {ps.endpoint: ps for ps in probe.specs}
    chat, embed = specs[endpoint(observed, "chat@1#0")], specs[endpoint(observed, "embed@1#0")]
    assert (chat.runtime, chat.served_model, chat.sla_ms) == ("nim", "chat", None)
    assert (embed.runtime, embed.triton_models, embed.sample) == ("triton", ("embed",), None)
    assert all(
        r.latency_s is not None and r.latency_s >= 0 and r.drift is None for r in report.replicas
    )
    assert report.duration_s >= 0 and abs(report.swept_at - time.time()) < 60
    assert not report.memory and report.failures_needed == 1  # no state: nothing to count


def test_stopped_container_is_stopped_not_probed_and_flagged_as_drift(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    observed, probe = (
        edit(applied(path), "embed@1#0", lambda c: replace(c, state="exited")),
        FakeProbe(),
    )
    report = run(path, observed, probe)
    r = replica(report, "embed@1#0")
    assert (r.state, r.detail) == (
        ReplicaState.STOPPED,
        "container fleetctl-hx-embed-1-0 is exited",
    )
    assert (
        r.drift == "drift: container is exited" and r.verdict is Verdict.CRITICAL
    )  # no state: judged alone
    assert dep(report, "embed@1").state is DeploymentState.DOWN
    assert dep(report, "embed@1").drift == ("#0: drift: container is exited",)
    assert endpoint(observed, "embed@1#0") not in {s.endpoint for s, _ in probe.seen}
    assert exit_code(report) is ExitCode.UNHEALTHY


def test_failed_check_makes_the_replica_unhealthy_with_the_check_and_why(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    observed = applied(path)
    report = run(path, observed, FakeProbe({endpoint(observed, "chat@1#1"): NOT_READY}))
    chat = dep(report, "chat@1")
    assert [r.state for r in chat.replicas] == [ReplicaState.HEALTHY, ReplicaState.UNHEALTHY]
    assert (chat.replicas[1].detail, chat.replicas[1].check) == (NOT_READY.detail, NOT_READY.check)
    assert chat.replicas[1].reasons == (NOT_READY.detail,)
    assert chat.replicas[0].check is None
    assert (chat.state, chat.healthy, chat.serving) == (DeploymentState.DEGRADED, 1, 1)
    assert exit_code(report) is ExitCode.UNHEALTHY


def test_a_replica_that_serves_with_problems_is_degraded_and_exits_14(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    observed = applied(path)
    slow = ProbeResult(
        True,
        "ready",
        degraded=("latency 300 ms over the 200 ms SLA (POST /v1/chat/completions (1 token))",),
        request="POST /v1/chat/completions (1 token)",
        request_latency_s=0.3,
        over_sla=True,
    )
    report = run(path, observed, FakeProbe({endpoint(observed, "chat@1#0"): slow}))
    r = replica(report, "chat@1#0")
    assert (r.state, r.verdict, r.over_sla, r.reasons) == (
        ReplicaState.DEGRADED,
        Verdict.DEGRADED,
        True,
        slow.degraded,
    )
    assert (
        dep(report, "chat@1").state is DeploymentState.DEGRADED
        and dep(report, "chat@1").serving == 2
    )
    assert exit_code(report) is ExitCode.DEGRADED


def test_the_profile_named_in_the_start_up_log_degrades_a_fallback_nim(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    observed = applied(path)
    fallback = endpoint(observed, "chat@1#1")

    def facts(t: Target, memory: Any) -> ContainerFacts:
        name = (
            "vllm-bf16-tp1-pp1"
            if t.spec and t.spec.endpoint == fallback
            else "tensorrt_llm-h100-fp8-tp1-latency"
        )
        run_ = ContainerRun("running", 0, time.time() - 3600)
        return ContainerFacts(run_, Profile("ab" * 32, name, None) if t.runtime == "nim" else None)

    report = run(path, observed, facts=facts)
    assert replica(report, "chat@1#0").verdict is Verdict.OK
    r = replica(report, "chat@1#1")
    assert (r.state, r.verdict) == (ReplicaState.DEGRADED, Verdict.DEGRADED)
    assert r.reasons == (
        "fallback profile vllm-bf16-tp1-pp1 (abababababab): a generic engine, not an optimized profile",
    )
    assert exit_code(report) is ExitCode.DEGRADED


def test_removed_container_is_missing(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    r = replica(report := run(path, edit(applied(path), "embed@1#0", lambda c: None)), "embed@1#0")
    assert (r.state, r.detail, r.container, r.host) == (
        ReplicaState.MISSING,
        "no container",
        "",
        "h1",
    )
    assert exit_code(report) is ExitCode.UNHEALTHY


def test_replicas_behind_an_unreachable_host_are_unknown_and_exit_6(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    on_h2 = [f"{c.deployment}#{c.replica}" for c in applied(path).containers() if c.host == "h2"]
    assert on_h2, "the test needs a replica on h2"
    report = run(path, applied(path, {"h2": "connection refused"}))
    assert all(replica(report, k).state is ReplicaState.UNKNOWN for k in on_h2)
    assert all(replica(report, k).verdict is Verdict.UNKNOWN for k in on_h2)
    assert all(
        "h2 unreachable: connection refused" in r.detail
        for r in report.replicas
        if r.state is ReplicaState.UNKNOWN
    )
    assert [(h.host, h.reachable, h.error) for h in report.hosts] == [
        ("h1", True, None),
        ("h2", False, "connection refused"),
    ]
    assert dep(report, "embed@1").state is DeploymentState.OK
    assert exit_code(report) is ExitCode.HOST_UNREACHABLE


def test_no_container_seen_while_an_eligible_host_is_dark_is_unknown_not_missing(
    tmp_path: Path,
) -> None:
    path = write_inventory(tmp_path)
    report = run(path, edit(applied(path, {"h2": "timeout"}), "chat@1#0", lambda c: None))
    assert {r.state for r in dep(report, "chat@1").replicas} == {ReplicaState.UNKNOWN}
    assert dep(report, "chat@1").state is DeploymentState.UNKNOWN
    assert exit_code(report) is ExitCode.HOST_UNREACHABLE


def test_auto_gpu_host_unreachable_is_a_host_error(tmp_path: Path) -> None:
    path = write_inventory(tmp_path, h2_gpus="auto")
    observed = ObservedFleet(
        {"h1": ObservedHost("h1"), "h2": ObservedHost("h2", False, "refused")}, offline=False
    )
    with pytest.raises(HostUnreachableError, match="h2: refused"):
        run(path, observed)


def test_recreate_probes_the_running_container_on_its_own_port(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    # The image label no longer matches the inventory: the plan recreates, start-first, on a fresh port.
    observed = edit(
        applied(path),
        "embed@1#0",
        lambda c: replace(c, image="triton:2.50", labeled_image="triton:2.50"),
    )
    (action,) = [
        a
        for a in plan_inventory(path, lambda inv: observed).plan.actions
        if a.kind is ActionKind.RECREATE
    ]
    old = endpoint(observed, "embed@1#0")
    assert f"http://127.0.0.1:{action.port}" != old
    probe = FakeProbe()
    r = replica(run(path, observed, probe), "embed@1#0")
    assert (r.state, r.endpoint, r.drift) == (
        ReplicaState.HEALTHY,
        old,
        "image triton:2.50 -> triton:2.51",
    )
    assert old in {s.endpoint for s, _ in probe.seen}


def test_a_probe_that_raises_or_hangs_makes_only_its_replica_unhealthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep_mod, "PROBE_GRACE_S", 0.2)
    path = write_inventory(tmp_path)
    observed = applied(path)
    boom, stuck = endpoint(observed, "chat@1#0"), endpoint(observed, "chat@1#1")
    release = threading.Event()

    def probe(ps: ProbeSpec, timeout_s: float) -> ProbeResult:
        if ps.endpoint == boom:
            raise ConnectionResetError("peer reset")
        if ps.endpoint == stuck:
            release.wait(5)
        return ProbeResult(True, "ready")

    t0 = time.monotonic()
    try:
        report = run(path, observed, probe, timeout_s=0.1)
    finally:
        release.set()
    assert time.monotonic() - t0 < 3
    assert replica(report, "chat@1#0").detail == "probe failed: ConnectionResetError: peer reset"
    assert replica(report, "chat@1#1").detail == "no answer within 0.1 s"
    assert {replica(report, k).state for k in ("chat@1#0", "chat@1#1")} == {ReplicaState.UNHEALTHY}
    assert dep(report, "embed@1").state is DeploymentState.OK


def test_probes_run_concurrently(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)

    def slow(ps: ProbeSpec, timeout_s: float) -> ProbeResult:
        time.sleep(0.3)
        return ProbeResult(True, "ready")

    t0 = time.monotonic()
    assert len(run(path, applied(path), slow).replicas) == 3
    assert time.monotonic() - t0 < 0.3 * 3 * 0.8


def test_probes_queued_behind_the_concurrency_cap_still_get_their_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep_mod, "PROBE_GRACE_S", 0.1)
    path = write_inventory(tmp_path)
    report = run(
        path,
        applied(path),
        lambda ps, t: (time.sleep(0.15), ProbeResult(True, "ready"))[1],
        timeout_s=0.2,
        concurrency=1,
    )
    assert {r.state for r in report.replicas} == {ReplicaState.HEALTHY}


def test_facts_that_fail_or_hang_leave_the_verdict_to_the_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep_mod, "PROBE_GRACE_S", 0.1)
    path = write_inventory(tmp_path)
    release = threading.Event()

    def facts(t: Target, memory: Any) -> ContainerFacts:
        if t.runtime == "nim":
            raise OSError("engine gone")
        release.wait(5)
        return ContainerFacts()

    try:
        report = run(path, applied(path), timeout_s=0.2, facts=facts)
    finally:
        release.set()
    assert {r.verdict for r in report.replicas} == {Verdict.OK}
    assert all(r.restart_count is None for r in report.replicas)


# -- memory between sweeps (a real state file) ---------------------------------------------
def test_streaks_are_kept_in_the_state_between_sweeps(tmp_path: Path, state_location: Any) -> None:
    path, state = write_inventory(tmp_path), state_location
    down = edit(applied(path), "embed@1#0", lambda c: replace(c, state="exited"))
    seen = []
    for _ in range(3):
        report = run(path, down, state_path=state, failures=3)
        r = replica(report, "embed@1#0")
        seen.append((r.verdict, r.failures, exit_code(report)))
    assert seen == [
        (Verdict.FAILING, 1, ExitCode.DEGRADED),
        (Verdict.FAILING, 2, ExitCode.DEGRADED),
        (Verdict.CRITICAL, 3, ExitCode.UNHEALTHY),
    ]
    back = replica(run(path, applied(path), state_path=state, failures=3), "embed@1#0")
    assert (back.verdict, back.failures) == (Verdict.OK, 0)  # one success recovers
    from fleetctl.state.health_store import HealthMemory

    events = HealthMemory(state, "hx").events("embed")
    assert [e.verdict for e in events] == [
        "ok",
        "critical",
        "failing",
    ]  # newest first; one per change
    assert events[1].detail.startswith(
        "failing -> critical: container fleetctl-hx-embed-1-0 is exited"
    )


def test_a_crash_loop_is_seen_across_sweeps_even_when_the_probe_passes(
    tmp_path: Path, state_location: Any
) -> None:
    path, state = write_inventory(tmp_path), state_location
    restarts = iter([2, 4, 7])

    def facts(t: Target, memory: Any) -> ContainerFacts:
        count = next(restarts) if t.deployment == "embed@1" else 0
        return ContainerFacts(ContainerRun("running", count, time.time() - 1))

    verdicts = []
    for _ in range(3):
        r = replica(
            run(path, applied(path), state_path=state, failures=2, facts=facts), "embed@1#0"
        )
        verdicts.append((r.verdict, r.crash_loop, r.restarts_since_last))
    assert verdicts == [
        (Verdict.OK, False, None),
        (Verdict.FAILING, True, 2),
        (Verdict.CRITICAL, True, 3),
    ]
    assert r.reasons[0] == "crash loop: restarted 3 times since the last sweep (restart count 7)"


# -- pure decisions ------------------------------------------------------------------------
H, U, S, M, K = (
    ReplicaState.HEALTHY,
    ReplicaState.UNHEALTHY,
    ReplicaState.STOPPED,
    ReplicaState.MISSING,
    ReplicaState.UNKNOWN,
)


def test_classify_replica_edges_the_sweeps_above_do_not_reach() -> None:
    c = ObservedContainer(
        "h1", "id", "fleetctl-x-0", "x@1", 0, (0,), "h", "restarting", "img", port=26000
    )
    assert classify_replica(Target("x@1", 0, "h1", container=c), None).state is S
    running = Target(
        "x@1", 0, "h1", container=replace(c, state="running")
    )  # no spec: nothing to probe it by
    assert (classify_replica(running, None).state, classify_replica(running, None).detail) == (
        U,
        "not probed: no endpoint known",
    )
    exited = classify_replica(
        Target("x@1", 0, "h1", container=replace(c, state="exited")),
        None,
        ContainerFacts(ContainerRun("exited", 0, None, exit_code=137)),
    )
    assert exited.detail == "container fleetctl-x-0 is exited (exit code 137)"


def deployment_of(*states: ReplicaState) -> DeploymentHealth:
    return DeploymentHealth(
        "x@1",
        len(states),
        tuple(ReplicaHealth("x@1", i, "h1", s, "d") for i, s in enumerate(states)),
    )


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((H, H), "ok"),
        ((H, U), "degraded"),
        ((H, K), "degraded"),
        ((S, M), "down"),
        ((K, K), "unknown"),
        ((K, S), "unknown"),
        ((ReplicaState.DEGRADED, S), "degraded"),
        ((), "ok"),
    ],
)
def test_deployment_state(states: tuple[ReplicaState, ...], expected: str) -> None:
    assert deployment_of(*states).state.value == expected
