"""`health`'s result: one sweep, as JSON and for the table (`--history`'s too)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fleetctl.ops.health.model import HealAction, HealthReport, ReplicaHealth, ReplicaState, Verdict
from fleetctl.ops.health.verdicts import exit_code
from fleetctl.results import FORMAT_VERSION, Hidden, hidden


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


@dataclass(frozen=True)
class Latency:
    request: str
    ms: float | None
    sla_ms: float | None
    over_sla: bool


@dataclass(frozen=True)
class ProfileSeen:
    id: str | None
    name: str | None
    expected: str
    problem: str | None


@dataclass(frozen=True)
class NotReadyModel:
    model: str
    why: str


@dataclass(frozen=True)
class TritonSeen:
    missing: tuple[str, ...]
    not_ready: tuple[NotReadyModel, ...]
    extra: tuple[str, ...]


@dataclass(frozen=True)
class ReplicaVerdict:
    replica: int
    host: str
    verdict: Verdict
    state: ReplicaState
    reasons: tuple[str, ...]
    failures: int
    since: str | None
    endpoint: str
    container: str
    container_state: str
    restart_count: int | None
    restarts_since_last_sweep: int | None
    crash_loop: bool
    started_at: str | None
    detail: str
    check: str | None
    probe_latency_ms: float | None
    latency: Latency | None
    profile: ProfileSeen | None
    triton: TritonSeen | None
    drift: str | None


@dataclass(frozen=True)
class VerdictCounts:
    ok: int
    degraded: int
    starting: int
    failing: int
    critical: int
    unknown: int


@dataclass(frozen=True)
class SweepSummary:
    replicas: int
    healthy: int
    degraded: int
    unhealthy: int
    stopped: int
    missing: int
    unknown: int
    verdicts: VerdictCounts


@dataclass(frozen=True)
class HostReach:
    host: str
    reachable: bool
    error: str | None


@dataclass(frozen=True)
class FrontDoorSeen:
    host: str
    url: str
    state: ReplicaState
    detail: str
    routes_current: bool


@dataclass(frozen=True)
class DeploymentVerdict:
    deployment: str
    state: str
    desired: int
    healthy: int
    serving: int
    drift: bool
    drift_reasons: tuple[str, ...]
    replicas: tuple[ReplicaVerdict, ...]


@dataclass(frozen=True)
class Repair:
    deployment: str
    replica: int
    host: str
    action: str
    target: str
    ok: bool
    detail: str
    duration_s: float


@dataclass(frozen=True)
class HealSection:
    note: str | None
    actions: tuple[Repair, ...]


@dataclass(frozen=True, kw_only=True)
class HealthResult:
    """`fleetctl health`: one sweep (and what --heal repaired)."""

    format_version: int = FORMAT_VERSION
    swept_at: str | None
    timestamp: float
    duration_s: float
    timeout_s: float
    exit_code: int
    failures_needed: int
    memory: bool
    summary: SweepSummary
    hosts: tuple[HostReach, ...]
    front_doors: tuple[FrontDoorSeen, ...]
    deployments: tuple[DeploymentVerdict, ...]
    heal: HealSection | None
    # The sweep's report, for the table.
    report: Hidden = hidden()


def _replica(r: ReplicaHealth) -> ReplicaVerdict:
    p, t = r.profile, r.triton
    return ReplicaVerdict(
        replica=r.replica,
        host=r.host,
        verdict=r.verdict,
        state=r.state,
        reasons=tuple(r.reasons),
        failures=r.failures,
        since=_iso(r.since),
        endpoint=r.endpoint,
        container=r.container,
        container_state=r.container_state,
        restart_count=r.restart_count,
        restarts_since_last_sweep=r.restarts_since_last,
        crash_loop=r.crash_loop,
        started_at=_iso(r.started_at),
        detail=r.detail,
        check=r.check,
        probe_latency_ms=_ms(r.latency_s),
        latency=None
        if r.request_latency_s is None and not r.request
        else Latency(r.request, _ms(r.request_latency_s), r.sla_ms, r.over_sla),
        profile=None
        if p is None
        else ProfileSeen(p.id, p.name, p.expected or "an optimized profile", p.problem),
        triton=None
        if t is None
        else TritonSeen(
            tuple(t.missing),
            tuple(NotReadyModel(m, w) for m, w in t.not_ready),
            tuple(t.extra),
        ),
        drift=r.drift,
    )


def _repair(a: HealAction) -> Repair:
    return Repair(
        a.deployment, a.replica, a.host, a.action, a.target, a.ok, a.detail, round(a.duration_s, 3)
    )


def health_result(report: HealthReport) -> HealthResult:
    counts = {s: report.count(s) for s in ReplicaState}
    verdicts = {v.value: report.count_verdict(v) for v in Verdict}
    return HealthResult(
        swept_at=_iso(report.swept_at),
        timestamp=round(report.swept_at, 3),
        duration_s=round(report.duration_s, 3),
        timeout_s=report.timeout_s,
        exit_code=int(exit_code(report)),
        failures_needed=report.failures_needed,
        memory=report.memory,
        summary=SweepSummary(
            replicas=len(report.replicas),
            **{s.value: n for s, n in counts.items()},
            verdicts=VerdictCounts(**verdicts),
        ),
        hosts=tuple(HostReach(h.host, h.reachable, h.error) for h in report.hosts),
        front_doors=tuple(
            FrontDoorSeen(f.host, f.url, f.state, f.detail, f.routes_current)
            for f in report.front_doors
        ),
        deployments=tuple(
            DeploymentVerdict(
                deployment=d.deployment,
                state=d.state.value,
                desired=d.desired,
                healthy=d.healthy,
                serving=d.serving,
                drift=bool(d.drift),
                drift_reasons=tuple(d.drift),
                replicas=tuple(_replica(r) for r in d.replicas),
            )
            for d in report.deployments
        ),
        heal=None
        if not report.healing
        else HealSection(report.heal_note, tuple(_repair(a) for a in report.healed)),
        report=report,
    )


@dataclass(frozen=True)
class HealthEventRow:
    at: str
    deployment: str
    replica: int
    host: str
    kind: str
    verdict: str
    detail: str
    latency_ms: float | None


@dataclass(frozen=True, kw_only=True)
class HealthHistoryResult:
    """`fleetctl health --history NAME`: recorded verdict changes and repairs, newest first."""

    format_version: int = FORMAT_VERSION
    name: str
    events: tuple[HealthEventRow, ...]
