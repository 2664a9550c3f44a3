"""`fleetctl health`: the sweep, the probes, JSON, the Prometheus textfile and the command.

Fakes sit at the project's own seams: the observer (an `ObservedFleet` value), the probe
(a function of probe spec and budget) and the facts reader (a function of target and
memory). Only `Prober` meets a socket: loopback servers. The pure verdict logic (grace,
streaks, crash loops, heal's choices) is in test_health_verdicts.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import typer
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from fleetctl.adapters import labels as L
from fleetctl.cli import health_cmd
from fleetctl.core.observed import ContainerRun, ObservedContainer, ObservedFleet, ObservedFrontDoor, ObservedHost
from fleetctl.core.plan import ActionKind
from fleetctl.errors import ExitCode, FleetctlError, HostUnreachableError
from fleetctl.ops.health import (ContainerFacts, DeploymentHealth, DeploymentState, HealthReport, ProbeResult,
                                 ProbeSpec, Profile, ReplicaHealth, ReplicaState, Target, Verdict, classify_replica, exit_code,
                                 report_to_json, sweep)
from fleetctl.ops.health import facts as facts_mod
from fleetctl.ops.health import probing
from fleetctl.ops.health import sweeping as sweep_mod
from fleetctl.ops.health.probing import Prober
from fleetctl.ops.planning import plan_inventory
from fleetctl.runtimes.spec import ContainerSpec, HealthCheck, http_health

CANARY = "nvapi-HEALTH-CANARY-0b1c2d"
NOT_READY = ProbeResult(False, "GET /v1/health/ready: 503", "GET /v1/health/ready answers 200")
INVENTORY = """
fleet: hx
hosts:
{hosts}
models:
  - {{name: chat, version: "1", runtime: nim, image: "nim-standin:1", gpu_memory_gb: 70, replicas: 2,
     nim: {{served_model_name: chat}}}}
  - {{name: embed, version: "1", runtime: triton, image: "triton:2.51", gpu_memory_gb: 2, hosts: {{name: h1}},
     triton: {{model_repository: /models, models: [embed]}}}}
"""
HOST = """  - {{name: {name}, docker: "unix:///run/{name}.sock", simulated: true, gpus: {gpus}, network: host,
     address: 127.0.0.1, ports: {ports}, labels: {{name: {name}}}}}"""
DECLARED = "{count: 2, memory_gb: 80}"


def write_inventory(tmp: Path, h2_gpus: str = DECLARED) -> Path:
    hosts = "\n".join(
        HOST.format(name=n, gpus=g, ports=p) for n, g, p in (("h1", DECLARED, "26000-26099"), ("h2", h2_gpus, "26100-26199"))
    )
    path = tmp / "fleet.yaml"
    path.write_text(INVENTORY.format(hosts=hosts))
    return path


def applied(path: Path, unreachable: dict[str, str] | None = None) -> ObservedFleet:
    """The fleet as observed right after a successful apply of the offline plan."""
    result = plan_inventory(path, None)
    unreachable = unreachable or {}
    by_host: dict[str, list[ObservedContainer]] = {h.name: [] for h in result.loaded.inventory.hosts}
    for a in result.plan.actions:
        image = result.plan.deployment(a.deployment).image
        name = L.container_name(a.deployment, a.replica, "hx")
        by_host[a.host].append(
            ObservedContainer(a.host, f"id-{name}", name, a.deployment, a.replica, a.gpus, a.spec_hash, "running", image,
                              labeled_image=image, port=a.port, endpoint=f"http://127.0.0.1:{a.port}")
        )
    doors = {
        s.host: (ObservedFrontDoor(s.host, f"fd-{s.host}", L.front_door_name("hx"), "running", s.image, s.spec_hash(),
                                   s.port, s.url, result.plan.routes_hash),)
        for s in result.plan.front_door_sites
    }
    return ObservedFleet(
        {h: ObservedHost(h, False, unreachable[h]) if h in unreachable
         else ObservedHost(h, containers=tuple(cs), front_doors=doors.get(h, ()))
         for h, cs in by_host.items()},
        offline=False,
    )


def test_a_stopped_front_door_is_unhealthy_and_stale_routes_are_named(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    observed = applied(path)
    ok = run(path, observed)
    assert [f.state for f in ok.front_doors] == [ReplicaState.HEALTHY, ReplicaState.HEALTHY]
    assert all(f.routes_current for f in ok.front_doors) and exit_code(ok) is ExitCode.OK
    h1 = observed.hosts["h1"]
    stopped = ObservedFleet({**observed.hosts, "h1": replace(h1, front_doors=(replace(h1.front_doors[0], state="exited"),))}, offline=False)
    report = run(path, stopped)
    assert report.front_doors[0].state is ReplicaState.STOPPED and exit_code(report) is ExitCode.UNHEALTHY
    stale = ObservedFleet({**observed.hosts, "h1": replace(h1, front_doors=(replace(h1.front_doors[0], routes_hash="old"),))}, offline=False)
    report = run(path, stale)
    assert not report.front_doors[0].routes_current and "stale" in report.front_doors[0].detail
    assert report_to_json(report)["front_doors"][0]["routes_current"] is False


def edit(observed: ObservedFleet, key: str, change: Callable[[ObservedContainer], ObservedContainer | None]) -> ObservedFleet:
    """`change` the container of replica `key` ("dep@v#n"); None removes it."""
    def one(c: ObservedContainer) -> ObservedContainer | None:
        return change(c) if f"{c.deployment}#{c.replica}" == key else c

    hosts = {n: replace(h, containers=tuple(x for c in h.containers if (x := one(c)) is not None)) for n, h in observed.hosts.items()}
    return ObservedFleet(hosts, offline=False)


class FakeProbe:
    """Answers by endpoint; records every probe spec it was asked about."""

    def __init__(self, failing: dict[str, ProbeResult] | None = None) -> None:
        self.failing = failing or {}
        self.seen: list[tuple[ContainerSpec, float]] = []
        self.specs: list[ProbeSpec] = []
        self.lock = threading.Lock()

    def __call__(self, ps: ProbeSpec, timeout_s: float) -> ProbeResult:
        with self.lock:
            self.seen.append((ps.spec, timeout_s))
            self.specs.append(ps)
        return self.failing.get(ps.endpoint, ProbeResult(True, "ready"))

    def close(self) -> None:
        pass


def no_facts(t: Target, memory: Any) -> ContainerFacts:
    return ContainerFacts()


def run(path: Path, observed: ObservedFleet, probe: Callable[[ProbeSpec, float], ProbeResult] | None = None,
        timeout_s: float = 5.0, **options: Any) -> HealthReport:
    options.setdefault("facts", no_facts)
    return sweep(path, lambda inv: observed, probe or FakeProbe(), timeout_s=timeout_s, **options)


def replica(report: HealthReport, key: str) -> ReplicaHealth:
    return next(r for r in report.replicas if f"{r.deployment}#{r.replica}" == key)


def dep(report: HealthReport, name: str) -> DeploymentHealth:
    return next(d for d in report.deployments if d.deployment == name)


def endpoint(observed: ObservedFleet, key: str) -> str:
    return next(c.endpoint for c in observed.containers() if f"{c.deployment}#{c.replica}" == key)


# -- the sweep over fakes ------------------------------------------------------------------
def test_applied_fleet_is_healthy_and_every_replica_is_probed_with_what_it_should_serve(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    observed, probe = applied(path), FakeProbe()
    report = run(path, observed, probe, timeout_s=3.5)
    assert {r.state for r in report.replicas} == {ReplicaState.HEALTHY} and len(report.replicas) == 3
    assert {r.verdict for r in report.replicas} == {Verdict.OK}
    assert [d.state for d in report.deployments] == [DeploymentState.OK, DeploymentState.OK]
    assert exit_code(report) is ExitCode.OK
    checks = {s.endpoint: [(h.kind, h.target) for h in s.health] for s, t in probe.seen if t == 3.5}
    doors = {f.url for fds in observed.front_doors().values() for f in fds}
    assert set(checks) == {c.endpoint for c in observed.containers()} | doors
    assert checks[endpoint(observed, "chat@1#0")] == [("http", "/v1/health/ready")]
    assert checks[endpoint(observed, "embed@1#0")] == [("http", "/v2/health/ready"), ("triton_model", "embed")]
    specs = {ps.endpoint: ps for ps in probe.specs}
    chat, embed = specs[endpoint(observed, "chat@1#0")], specs[endpoint(observed, "embed@1#0")]
    assert (chat.runtime, chat.served_model, chat.sla_ms) == ("nim", "chat", None)
    assert (embed.runtime, embed.triton_models, embed.sample) == ("triton", ("embed",), None)
    assert all(r.latency_s is not None and r.latency_s >= 0 and r.drift is None for r in report.replicas)
    assert report.duration_s >= 0 and abs(report.swept_at - time.time()) < 60
    assert not report.memory and report.failures_needed == 1  # no state: nothing to count


def test_stopped_container_is_stopped_not_probed_and_flagged_as_drift(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    observed, probe = edit(applied(path), "embed@1#0", lambda c: replace(c, state="exited")), FakeProbe()
    report = run(path, observed, probe)
    r = replica(report, "embed@1#0")
    assert (r.state, r.detail) == (ReplicaState.STOPPED, "container fleetctl-hx-embed-1-0 is exited")
    assert r.drift == "drift: container is exited" and r.verdict is Verdict.CRITICAL  # no state: judged alone
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
    slow = ProbeResult(True, "ready", degraded=("latency 300 ms over the 200 ms SLA (POST /v1/chat/completions (1 token))",),
                       request="POST /v1/chat/completions (1 token)", request_latency_s=0.3, over_sla=True)
    report = run(path, observed, FakeProbe({endpoint(observed, "chat@1#0"): slow}))
    r = replica(report, "chat@1#0")
    assert (r.state, r.verdict, r.over_sla, r.reasons) == (ReplicaState.DEGRADED, Verdict.DEGRADED, True, slow.degraded)
    assert dep(report, "chat@1").state is DeploymentState.DEGRADED and dep(report, "chat@1").serving == 2
    assert exit_code(report) is ExitCode.DEGRADED


def test_the_profile_named_in_the_start_up_log_degrades_a_fallback_nim(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    observed = applied(path)
    fallback = endpoint(observed, "chat@1#1")

    def facts(t: Target, memory: Any) -> ContainerFacts:
        name = "vllm-bf16-tp1-pp1" if t.spec and t.spec.endpoint == fallback else "tensorrt_llm-h100-fp8-tp1-latency"
        run_ = ContainerRun("running", 0, time.time() - 3600)
        return ContainerFacts(run_, Profile("ab" * 32, name, None) if t.runtime == "nim" else None)

    report = run(path, observed, facts=facts)
    assert replica(report, "chat@1#0").verdict is Verdict.OK
    r = replica(report, "chat@1#1")
    assert (r.state, r.verdict) == (ReplicaState.DEGRADED, Verdict.DEGRADED)
    assert r.reasons == ("fallback profile vllm-bf16-tp1-pp1 (abababababab): a generic engine, not an optimized profile",)
    assert exit_code(report) is ExitCode.DEGRADED


def test_removed_container_is_missing(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    r = replica(report := run(path, edit(applied(path), "embed@1#0", lambda c: None)), "embed@1#0")
    assert (r.state, r.detail, r.container, r.host) == (ReplicaState.MISSING, "no container", "", "h1")
    assert exit_code(report) is ExitCode.UNHEALTHY


def test_replicas_behind_an_unreachable_host_are_unknown_and_exit_6(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    on_h2 = [f"{c.deployment}#{c.replica}" for c in applied(path).containers() if c.host == "h2"]
    assert on_h2, "the test needs a replica on h2"
    report = run(path, applied(path, {"h2": "connection refused"}))
    assert all(replica(report, k).state is ReplicaState.UNKNOWN for k in on_h2)
    assert all(replica(report, k).verdict is Verdict.UNKNOWN for k in on_h2)
    assert all("h2 unreachable: connection refused" in r.detail for r in report.replicas if r.state is ReplicaState.UNKNOWN)
    assert [(h.host, h.reachable, h.error) for h in report.hosts] == [("h1", True, None), ("h2", False, "connection refused")]
    assert dep(report, "embed@1").state is DeploymentState.OK
    assert exit_code(report) is ExitCode.HOST_UNREACHABLE


def test_no_container_seen_while_an_eligible_host_is_dark_is_unknown_not_missing(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    report = run(path, edit(applied(path, {"h2": "timeout"}), "chat@1#0", lambda c: None))
    assert {r.state for r in dep(report, "chat@1").replicas} == {ReplicaState.UNKNOWN}
    assert dep(report, "chat@1").state is DeploymentState.UNKNOWN
    assert exit_code(report) is ExitCode.HOST_UNREACHABLE


def test_auto_gpu_host_unreachable_is_a_host_error(tmp_path: Path) -> None:
    path = write_inventory(tmp_path, h2_gpus="auto")
    observed = ObservedFleet({"h1": ObservedHost("h1"), "h2": ObservedHost("h2", False, "refused")}, offline=False)
    with pytest.raises(HostUnreachableError, match="h2: refused"):
        run(path, observed)


def test_recreate_probes_the_running_container_on_its_own_port(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    # The image label no longer matches the inventory: the plan recreates, start-first, on a fresh port.
    observed = edit(applied(path), "embed@1#0", lambda c: replace(c, image="triton:2.50", labeled_image="triton:2.50"))
    (action,) = [a for a in plan_inventory(path, lambda inv: observed).plan.actions if a.kind is ActionKind.RECREATE]
    old = endpoint(observed, "embed@1#0")
    assert f"http://127.0.0.1:{action.port}" != old
    probe = FakeProbe()
    r = replica(run(path, observed, probe), "embed@1#0")
    assert (r.state, r.endpoint, r.drift) == (ReplicaState.HEALTHY, old, "image triton:2.50 -> triton:2.51")
    assert old in {s.endpoint for s, _ in probe.seen}


def test_a_probe_that_raises_or_hangs_makes_only_its_replica_unhealthy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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


def test_probes_queued_behind_the_concurrency_cap_still_get_their_turn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep_mod, "PROBE_GRACE_S", 0.1)
    path = write_inventory(tmp_path)
    report = run(path, applied(path), lambda ps, t: (time.sleep(0.15), ProbeResult(True, "ready"))[1], timeout_s=0.2,
                 concurrency=1)
    assert {r.state for r in report.replicas} == {ReplicaState.HEALTHY}


def test_facts_that_fail_or_hang_leave_the_verdict_to_the_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
def test_streaks_are_kept_in_the_state_between_sweeps(tmp_path: Path) -> None:
    path, state = write_inventory(tmp_path), tmp_path / "state.db"
    down = edit(applied(path), "embed@1#0", lambda c: replace(c, state="exited"))
    seen = []
    for _ in range(3):
        report = run(path, down, state_path=state, failures=3)
        r = replica(report, "embed@1#0")
        seen.append((r.verdict, r.failures, exit_code(report)))
    assert seen == [(Verdict.FAILING, 1, ExitCode.DEGRADED), (Verdict.FAILING, 2, ExitCode.DEGRADED),
                    (Verdict.CRITICAL, 3, ExitCode.UNHEALTHY)]
    back = replica(run(path, applied(path), state_path=state, failures=3), "embed@1#0")
    assert (back.verdict, back.failures) == (Verdict.OK, 0)  # one success recovers
    from fleetctl.state.health_store import HealthMemory

    events = HealthMemory(state, "hx").events("embed")
    assert [e.verdict for e in events] == ["ok", "critical", "failing"]  # newest first; one per change
    assert events[1].detail.startswith("failing -> critical: container fleetctl-hx-embed-1-0 is exited")


def test_a_crash_loop_is_seen_across_sweeps_even_when_the_probe_passes(tmp_path: Path) -> None:
    path, state = write_inventory(tmp_path), tmp_path / "state.db"
    restarts = iter([2, 4, 7])

    def facts(t: Target, memory: Any) -> ContainerFacts:
        count = next(restarts) if t.deployment == "embed@1" else 0
        return ContainerFacts(ContainerRun("running", count, time.time() - 1))

    verdicts = []
    for _ in range(3):
        r = replica(run(path, applied(path), state_path=state, failures=2, facts=facts), "embed@1#0")
        verdicts.append((r.verdict, r.crash_loop, r.restarts_since_last))
    assert verdicts == [(Verdict.OK, False, None), (Verdict.FAILING, True, 2), (Verdict.CRITICAL, True, 3)]
    assert r.reasons[0] == "crash loop: restarted 3 times since the last sweep (restart count 7)"


# -- pure decisions ------------------------------------------------------------------------
H, U, S, M, K = ReplicaState.HEALTHY, ReplicaState.UNHEALTHY, ReplicaState.STOPPED, ReplicaState.MISSING, ReplicaState.UNKNOWN


def test_classify_replica_edges_the_sweeps_above_do_not_reach() -> None:
    c = ObservedContainer("h1", "id", "fleetctl-x-0", "x@1", 0, (0,), "h", "restarting", "img", port=26000)
    assert classify_replica(Target("x@1", 0, "h1", container=c), None).state is S
    running = Target("x@1", 0, "h1", container=replace(c, state="running"))  # no spec: nothing to probe it by
    assert (classify_replica(running, None).state, classify_replica(running, None).detail) == (U, "not probed: no endpoint known")
    exited = classify_replica(Target("x@1", 0, "h1", container=replace(c, state="exited")), None,
                              ContainerFacts(ContainerRun("exited", 0, None, exit_code=137)))
    assert exited.detail == "container fleetctl-x-0 is exited (exit code 137)"


def deployment_of(*states: ReplicaState) -> DeploymentHealth:
    return DeploymentHealth("x@1", len(states), tuple(ReplicaHealth("x@1", i, "h1", s, "d") for i, s in enumerate(states)))


@pytest.mark.parametrize(
    ("states", "expected"),
    [((H, H), "ok"), ((H, U), "degraded"), ((H, K), "degraded"), ((S, M), "down"), ((K, K), "unknown"), ((K, S), "unknown"),
     ((ReplicaState.DEGRADED, S), "degraded"), ((), "ok")],
)
def test_deployment_state(states: tuple[ReplicaState, ...], expected: str) -> None:
    assert deployment_of(*states).state.value == expected


# -- JSON and textfile ---------------------------------------------------------------------
def unhealthy_report(tmp_path: Path) -> HealthReport:
    path = write_inventory(tmp_path)
    observed = edit(applied(path), "embed@1#0", lambda c: replace(c, state="exited"))
    slow = ProbeResult(True, "ready", degraded=("latency 300 ms over the 200 ms SLA (POST /v1/chat/completions (1 token))",),
                       request="POST /v1/chat/completions (1 token)", request_latency_s=0.3, over_sla=True)
    probe = FakeProbe({endpoint(observed, "chat@1#1"): NOT_READY, endpoint(observed, "chat@1#0"): slow})
    return run(path, observed, probe)


def test_json_shape(tmp_path: Path) -> None:
    data = report_to_json(unhealthy_report(tmp_path))
    json.dumps(data)
    assert set(data) == {"swept_at", "timestamp", "duration_s", "timeout_s", "exit_code", "failures_needed", "memory", "summary",
                         "hosts", "front_doors", "deployments", "heal"}
    assert data["swept_at"].endswith("+00:00") and data["exit_code"] == 10 and data["heal"] is None
    assert data["summary"] == {"replicas": 3, "healthy": 0, "degraded": 1, "unhealthy": 1, "stopped": 1, "missing": 0, "unknown": 0,
                               "verdicts": {"ok": 0, "degraded": 1, "starting": 0, "failing": 0, "critical": 2, "unknown": 0}}
    assert data["hosts"] == [{"host": "h1", "reachable": True, "error": None}, {"host": "h2", "reachable": True, "error": None}]
    chat, embed = data["deployments"]
    assert [chat[k] for k in ("deployment", "state", "desired", "healthy", "serving", "drift")] == ["chat@1", "degraded", 2, 0, 1, False]
    assert [embed[k] for k in ("state", "drift", "drift_reasons")] == ["down", True, ["#0: drift: container is exited"]]
    slow, r = chat["replicas"]
    assert set(r) == {"replica", "host", "verdict", "state", "reasons", "failures", "since", "endpoint", "container",
                      "container_state", "restart_count", "restarts_since_last_sweep", "crash_loop", "started_at", "detail",
                      "check", "probe_latency_ms", "latency", "profile", "triton", "drift"}
    assert [r[k] for k in ("verdict", "state", "detail", "check", "reasons")] == [
        "critical", "unhealthy", NOT_READY.detail, NOT_READY.check, [NOT_READY.detail]]
    assert r["endpoint"].startswith("http://127.0.0.1:") and isinstance(r["probe_latency_ms"], float)
    assert slow["verdict"] == "degraded" and slow["latency"] == {
        "request": "POST /v1/chat/completions (1 token)", "ms": 300.0, "sla_ms": None, "over_sla": True}
    assert [embed["replicas"][0][k] for k in ("probe_latency_ms", "container_state", "latency")] == [None, "exited", None]


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def sample(m: Samples, name: str, **labels: str) -> float:
    return m[(name, tuple(sorted(labels.items())))]


def test_textfile_round_trips_through_the_prometheus_parser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NGC_API_KEY", CANARY)
    report = unhealthy_report(tmp_path)
    out = tmp_path / "collector" / "fleetctl.prom"
    health_cmd.write_textfile(report, out)
    text = out.read_text()
    assert CANARY not in text
    assert [p.name for p in out.parent.iterdir()] == ["fleetctl.prom"]  # no temporary left behind
    m = parse(text)
    for key, healthy, up in (("chat@1#0", 0, 1), ("chat@1#1", 0, 0), ("embed@1#0", 0, 0)):
        r = replica(report, key)
        labels = {"deployment": r.deployment, "replica": str(r.replica), "host": r.host}
        assert sample(m, "fleetctl_replica_healthy", **labels) == healthy
        assert sample(m, "fleetctl_replica_up", **labels) == up
    embed0 = {"deployment": "embed@1", "replica": "0", "host": "h1"}
    chat0 = {"deployment": "chat@1", "replica": "0", "host": replica(report, "chat@1#0").host}
    assert sample(m, "fleetctl_replica_state", fleetctl_replica_state="stopped", **embed0) == 1
    assert sample(m, "fleetctl_replica_state", fleetctl_replica_state="healthy", **embed0) == 0
    assert sample(m, "fleetctl_replica_verdict", fleetctl_replica_verdict="critical", **embed0) == 1
    assert sample(m, "fleetctl_replica_verdict", fleetctl_replica_verdict="degraded", **chat0) == 1
    assert sample(m, "fleetctl_replica_consecutive_failures", **embed0) == 1
    assert sample(m, "fleetctl_probe_latency_seconds", **chat0) == pytest.approx(0.3)
    assert sample(m, "fleetctl_deployment_healthy_replicas", deployment="chat@1") == 0
    assert sample(m, "fleetctl_deployment_serving_replicas", deployment="chat@1") == 1
    assert sample(m, "fleetctl_deployment_desired_replicas", deployment="chat@1") == 2
    assert sample(m, "fleetctl_deployment_state", deployment="chat@1", fleetctl_deployment_state="degraded") == 1
    assert sample(m, "fleetctl_deployment_drift", deployment="embed@1") == 1
    assert sample(m, "fleetctl_deployment_drift", deployment="chat@1") == 0
    assert sample(m, "fleetctl_host_reachable", host="h2") == 1
    assert sample(m, "fleetctl_front_door_healthy", host="h1") == 1
    assert sample(m, "fleetctl_probe_duration_seconds", deployment="chat@1", replica="1") >= 0
    assert ("fleetctl_probe_duration_seconds", (("deployment", "embed@1"), ("replica", "0"))) not in m  # never probed
    assert sample(m, "fleetctl_health_sweep_timestamp_seconds") == pytest.approx(report.swept_at)
    assert sample(m, "fleetctl_health_sweep_duration_seconds") == pytest.approx(report.duration_s)
    assert sample(m, "fleetctl_health_exit_code") == 10


def test_textfile_write_failure_is_a_fleetctl_error(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(FleetctlError, match="cannot write textfile"):
        health_cmd.write_textfile(HealthReport(1.7e9, 0.1, 5.0, (), ()), tmp_path / "taken")


# -- the command ---------------------------------------------------------------------------
@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """The command on a fresh Typer app, over a faked observer, probe and Docker facts."""
    import fleetctl.adapters.observe as observe

    app = typer.Typer()
    health_cmd.register(app)

    @app.callback()
    def _root() -> None:  # keeps `health` a subcommand, as in the real app
        pass

    def invoke(observed: ObservedFleet, probe: FakeProbe, *args: str) -> Any:
        monkeypatch.setattr(observe, "observe_fleet", lambda inv: observed)
        monkeypatch.setattr(probing, "Prober", lambda: probe)
        monkeypatch.setattr(facts_mod, "DockerFacts", lambda inv: no_facts)
        return CliRunner().invoke(app, ["health", *args], env={"COLUMNS": "250"})

    return invoke


def test_cli_table_exit_0_then_critical_after_the_failures_it_takes(tmp_path: Path, cli: Callable[..., Any]) -> None:
    path, state = write_inventory(tmp_path), str(tmp_path / "state.db")
    observed = applied(path)
    r = cli(observed, FakeProbe(), "-f", str(path), "--state", state)
    assert r.exit_code == 0, r.output
    assert "3/3 replicas ok" in r.output and "deployments: 2 ok" in r.output
    bad = ProbeResult(False, "model embed: not ready", "model embed is READY")
    r = cli(observed, FakeProbe({endpoint(observed, "embed@1#0"): bad}), "-f", str(path), "--state", state, "--failures", "2")
    assert r.exit_code == ExitCode.DEGRADED, r.output
    assert "model embed: not ready" in r.output and "2/3 replicas ok (1 failing)" in r.output and "failing 1/2" in r.output
    r = cli(observed, FakeProbe({endpoint(observed, "embed@1#0"): bad}), "-f", str(path), "--state", state, "--failures", "2")
    assert r.exit_code == ExitCode.UNHEALTHY and "(1 critical)" in r.output


def test_cli_json_only_and_textfile_even_when_unhealthy(tmp_path: Path, cli: Callable[..., Any]) -> None:
    path = write_inventory(tmp_path)
    observed = edit(applied(path), "embed@1#0", lambda c: replace(c, state="exited"))
    prom = tmp_path / "fleetctl.prom"
    args = ("-f", str(path), "--output", "json", "--textfile", str(prom), "--timeout", "2", "--state", str(tmp_path / "s.db"),
            "--failures", "1")
    r = cli(observed, FakeProbe(), *args)
    assert r.exit_code == ExitCode.UNHEALTHY
    data = json.loads(r.stdout)
    assert data["timeout_s"] == 2.0 and data["summary"]["stopped"] == 1 and data["memory"] is True
    assert sample(parse(prom.read_text()), "fleetctl_deployment_healthy_replicas", deployment="embed@1") == 0


def test_cli_history_shows_verdict_changes_newest_first(tmp_path: Path, cli: Callable[..., Any]) -> None:
    path, state = write_inventory(tmp_path), str(tmp_path / "state.db")
    good, down = applied(path), edit(applied(path), "embed@1#0", lambda c: replace(c, state="exited"))
    for observed in (good, down, down, good):
        cli(observed, FakeProbe(), "-f", str(path), "--state", state, "--failures", "2")
    r = cli(good, FakeProbe(), "-f", str(path), "--state", state, "--history", "embed", "--output", "json")
    assert r.exit_code == 0, r.output
    events = json.loads(r.stdout)["events"]
    assert [(e["deployment"], e["verdict"]) for e in events] == [("embed@1", v) for v in ("ok", "critical", "failing", "ok")]
    r = cli(good, FakeProbe(), "-f", str(path), "--state", state, "--history", "chat@1")
    assert r.exit_code == 0 and "new -> ok" in r.output
    r = cli(good, FakeProbe(), "-f", str(path), "--state", state, "--history", "nothing")
    assert isinstance(r.exception, FleetctlError) and r.exception.exit_code is ExitCode.NOT_FOUND  # main() maps it to 12
