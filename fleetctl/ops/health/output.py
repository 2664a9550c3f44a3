"""The report as JSON (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fleetctl.ops.health.model import HealAction, HealthReport, ReplicaHealth, ReplicaState, Verdict
from fleetctl.ops.health.verdicts import exit_code


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def replica_json(r: ReplicaHealth) -> dict[str, Any]:
    p = r.profile
    t = r.triton
    return {
        "replica": r.replica,
        "host": r.host,
        "verdict": r.verdict.value,
        "state": r.state.value,
        "reasons": list(r.reasons),
        "failures": r.failures,
        "since": _iso(r.since),
        "endpoint": r.endpoint,
        "container": r.container,
        "container_state": r.container_state,
        "restart_count": r.restart_count,
        "restarts_since_last_sweep": r.restarts_since_last,
        "crash_loop": r.crash_loop,
        "started_at": _iso(r.started_at),
        "detail": r.detail,
        "check": r.check,
        "probe_latency_ms": _ms(r.latency_s),
        "latency": None
        if r.request_latency_s is None and not r.request
        else {
            "request": r.request,
            "ms": _ms(r.request_latency_s),
            "sla_ms": r.sla_ms,
            "over_sla": r.over_sla,
        },
        "profile": None
        if p is None
        else {
            "id": p.id,
            "name": p.name,
            "expected": p.expected or "an optimized profile",
            "problem": p.problem,
        },
        "triton": None
        if t is None
        else {
            "missing": list(t.missing),
            "not_ready": [{"model": m, "why": w} for m, w in t.not_ready],
            "extra": list(t.extra),
        },
        "drift": r.drift,
    }


def heal_json(a: HealAction) -> dict[str, Any]:
    return {
        "deployment": a.deployment,
        "replica": a.replica,
        "host": a.host,
        "action": a.action,
        "target": a.target,
        "ok": a.ok,
        "detail": a.detail,
        "duration_s": round(a.duration_s, 3),
    }


def report_to_json(report: HealthReport) -> dict[str, Any]:
    return {
        "swept_at": _iso(report.swept_at),
        "timestamp": round(report.swept_at, 3),
        "duration_s": round(report.duration_s, 3),
        "timeout_s": report.timeout_s,
        "exit_code": int(exit_code(report)),
        "failures_needed": report.failures_needed,
        "memory": report.memory,
        "summary": {
            "replicas": len(report.replicas),
            **{s.value: report.count(s) for s in ReplicaState},
            "verdicts": {v.value: report.count_verdict(v) for v in Verdict},
        },
        "hosts": [
            {"host": h.host, "reachable": h.reachable, "error": h.error} for h in report.hosts
        ],
        "front_doors": [
            {
                "host": f.host,
                "url": f.url,
                "state": f.state.value,
                "detail": f.detail,
                "routes_current": f.routes_current,
            }
            for f in report.front_doors
        ],
        "deployments": [
            {
                "deployment": d.deployment,
                "state": d.state.value,
                "desired": d.desired,
                "healthy": d.healthy,
                "serving": d.serving,
                "drift": bool(d.drift),
                "drift_reasons": list(d.drift),
                "replicas": [replica_json(r) for r in d.replicas],
            }
            for d in report.deployments
        ],
        "heal": None
        if not report.healing
        else {"note": report.heal_note, "actions": [heal_json(a) for a in report.healed]},
    }
