"""Every decision of a health sweep (pure: values in, values out).

`classify_replica` says what this sweep saw of one replica; `judge` adds the memory of
the sweeps before (start-up grace, failure streaks, crash loops) and returns the verdict
and the memory to keep; `classify` groups replicas into deployments; `exit_code` is the
command's answer.

The rules, in order:

1. A replica no reachable host can show is `unknown`; its memory is kept as it was.
2. A restart count that rose since the last sweep of the same container is a crash loop:
   a failure, whatever the probe said at this instant (a crash-looping container answers
   between crashes, and would otherwise flip the verdict from one sweep to the next).
3. A running container whose checks fail within its start-up grace (its start-up budget,
   or `--grace`) of a (re)start, and that has not been judged otherwise since that start,
   is `starting`: not counted, not reset. A replica that served and then fails is failing.
4. Any other failure (a check failed, stopped, missing, crash loop) adds one to the
   replica's streak: `failing` below `--failures` sweeps in a row, `critical` from there.
5. One sweep that finds it serving ends the streak: `ok`, or `degraded` when it serves
   with a problem (fallback profile, over its SLA, an extra Triton model loaded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from fleetctl.core.fleet import ReplicaKey
from fleetctl.core.plan import Plan
from fleetctl.errors import ExitCode
from fleetctl.ops.health.model import (
    FAILED,
    ContainerFacts,
    DeploymentHealth,
    HealthReport,
    ProbeResult,
    ReplicaHealth,
    ReplicaState,
    Target,
    Verdict,
)
from fleetctl.state.health_store import Event, Memory


def classify_replica(
    t: Target, probe: ProbeResult | None, facts: ContainerFacts | None = None
) -> ReplicaHealth:
    """What this sweep saw of the replica, on its own."""
    c = t.container
    facts = facts or ContainerFacts()
    run = facts.run
    base: dict[str, Any] = dict(
        deployment=t.deployment,
        replica=t.replica,
        host=t.host,
        endpoint=t.spec.endpoint if t.spec else (c.endpoint if c else ""),
        container=c.name if c else "",
        container_id=c.id if c else "",
        container_state=c.state if c else "",
        drift=t.drift,
        restart_count=run.restart_count if run else None,
        started_at=run.started_at if run else None,
        profile=facts.profile,
        sla_ms=t.probe.sla_ms if t.probe else None,
    )
    if t.unreachable is not None:
        return ReplicaHealth(
            state=ReplicaState.UNKNOWN, detail=t.unreachable, reasons=(t.unreachable,), **base
        )
    if c is None:
        note = t.note or "no container"
        return ReplicaHealth(state=ReplicaState.MISSING, detail=note, reasons=(note,), **base)
    if not c.running:
        detail = f"container {c.name} is {c.state or 'not running'}"
        if run is not None and run.exit_code:
            detail += f" (exit code {run.exit_code})"
        return ReplicaHealth(state=ReplicaState.STOPPED, detail=detail, reasons=(detail,), **base)
    if probe is None:
        detail = "not probed: no endpoint known"
        return ReplicaHealth(state=ReplicaState.UNHEALTHY, detail=detail, reasons=(detail,), **base)
    profile_problem = facts.profile.problem if facts.profile else None
    degraded = tuple(probe.degraded) + ((profile_problem,) if profile_problem else ())
    timed: dict[str, Any] = dict(
        latency_s=probe.latency_s,
        request=probe.request,
        request_latency_s=probe.request_latency_s,
        over_sla=probe.over_sla,
        triton=probe.drift,
    )
    if not probe.ok:
        problems = tuple(probe.problems) or (probe.detail,)
        return ReplicaHealth(
            state=ReplicaState.UNHEALTHY,
            detail=probe.detail,
            check=probe.check,
            reasons=problems + degraded,
            **timed,
            **base,
        )
    if degraded:
        return ReplicaHealth(
            state=ReplicaState.DEGRADED,
            detail="; ".join(degraded),
            reasons=degraded,
            **timed,
            **base,
        )
    return ReplicaHealth(state=ReplicaState.HEALTHY, detail=probe.detail, **timed, **base)


def judge(
    r: ReplicaHealth,
    prev: Memory | None,
    *,
    now: float,
    failures_needed: int,
    grace_s: float,
) -> tuple[ReplicaHealth, Memory, Event | None]:
    """The verdict on one replica given its memory; the memory to keep; the event to log
    when the verdict changed."""
    if r.state is ReplicaState.UNKNOWN:
        kept = prev or Memory(verdict=Verdict.UNKNOWN.value, since=now, checked_at=now)
        return replace(r, verdict=Verdict.UNKNOWN, failures=kept.failures, since=None), kept, None

    same_run = prev is not None and bool(r.container_id) and prev.container_id == r.container_id
    rose = 0
    if (
        same_run
        and prev is not None
        and prev.restart_count is not None
        and r.restart_count is not None
    ):
        rose = max(0, r.restart_count - prev.restart_count)
    crashes = (prev.crashes + 1 if prev else 1) if rose else 0
    reasons = list(r.reasons)
    if rose:
        reasons.insert(
            0,
            f"crash loop: restarted {rose} time{'s' if rose > 1 else ''} since the last sweep (restart count {r.restart_count})",
        )
    failures = prev.failures if prev else 0
    age = now - r.started_at if r.started_at is not None else None
    # A run that has been judged past "starting" (it served, or failed after its grace)
    # never goes back to it: the grace is for a start, not for a fall.
    same_start = (
        same_run
        and prev is not None
        and prev.started_at is not None
        and r.started_at is not None
        and abs(prev.started_at - r.started_at) < 1e-3
    )
    started_before = (
        same_start
        and prev is not None
        and prev.verdict not in (Verdict.STARTING.value, Verdict.UNKNOWN.value)
    )
    young = age is not None and 0 <= age < grace_s and not started_before
    if rose == 0 and r.state is ReplicaState.UNHEALTHY and young:
        verdict = Verdict.STARTING
        reasons.insert(
            0, f"starting: started {age:.0f} s ago, within its {grace_s:g} s start-up grace"
        )
    elif rose or r.state in FAILED:
        failures += 1
        verdict = Verdict.CRITICAL if failures >= failures_needed else Verdict.FAILING
    elif r.state is ReplicaState.DEGRADED:
        failures, verdict = 0, Verdict.DEGRADED
    else:
        failures, verdict = 0, Verdict.OK

    since = prev.since if prev is not None and prev.verdict == verdict.value else now
    profile = r.profile
    memory = Memory(
        container_id=r.container_id,
        restart_count=r.restart_count,
        started_at=r.started_at,
        failures=failures,
        crashes=crashes,
        verdict=verdict.value,
        since=since,
        checked_at=now,
        reasons=tuple(reasons),
        profile_id=profile.id if profile else None,
        profile_name=profile.name if profile else None,
    )
    out = replace(
        r,
        verdict=verdict,
        reasons=tuple(reasons),
        failures=failures,
        restarts_since_last=rose if same_run else None,
        crash_loop=bool(rose),
        since=since,
    )
    event = None
    if prev is None or prev.verdict != verdict.value:
        was = prev.verdict if prev else "new"
        why = "; ".join(reasons) or r.detail
        latency = None if r.request_latency_s is None else round(r.request_latency_s * 1000, 1)
        event = Event(
            now,
            r.deployment,
            r.replica,
            r.host,
            "verdict",
            verdict.value,
            f"{was} -> {verdict.value}: {why}",
            latency,
        )
    return out, memory, event


def judge_all(
    replicas: Sequence[ReplicaHealth],
    memory: Mapping[ReplicaKey, Memory],
    *,
    now: float,
    failures_needed: int,
    grace: Mapping[ReplicaKey, float],
) -> tuple[list[ReplicaHealth], dict[ReplicaKey, Memory], list[Event]]:
    judged, kept, events = [], {}, []
    for r in replicas:
        out, m, e = judge(
            r,
            memory.get(r.key),
            now=now,
            failures_needed=failures_needed,
            grace_s=grace.get(r.key, 0.0),
        )
        judged.append(out)
        kept[r.key] = m
        if e is not None:
            events.append(e)
    return judged, kept, events


def classify(plan: Plan, replicas: Sequence[ReplicaHealth]) -> tuple[DeploymentHealth, ...]:
    by_dep: dict[str, list[ReplicaHealth]] = {}
    for r in replicas:
        by_dep.setdefault(r.deployment, []).append(r)
    return tuple(
        DeploymentHealth(
            d.name, d.replicas, tuple(sorted(by_dep.get(d.name, []), key=lambda r: r.replica))
        )
        for d in plan.deployments
    )


def exit_code(report: HealthReport) -> ExitCode:
    """10 critical; 14 degraded (or failing below --failures, or repaired by --heal this
    sweep); 6 when only unseen hosts stand in the way; else 0. A replica `starting`
    within its grace counts as fine."""
    healed = {(h.deployment, h.replica) for h in report.healed if h.ok}
    replicas = report.replicas
    critical = [r for r in replicas if r.verdict is Verdict.CRITICAL and r.key not in healed]
    if critical or any(f.state in FAILED for f in report.front_doors):
        return ExitCode.UNHEALTHY
    if any(r.verdict in (Verdict.DEGRADED, Verdict.FAILING) or r.key in healed for r in replicas):
        return ExitCode.DEGRADED
    if any(r.verdict is Verdict.UNKNOWN for r in replicas) or any(
        not h.reachable for h in report.hosts
    ):
        return ExitCode.HOST_UNREACHABLE
    return ExitCode.OK
