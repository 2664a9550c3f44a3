"""The Prometheus textfile of a health sweep (node_exporter's textfile collector).

A fresh registry holding this sweep only, written with prometheus_client to a temporary
file renamed over the target, so the collector never reads half a file. Metric names and
units follow Prometheus' conventions (base units: seconds; `_info`-free, 0/1 gauges for
conditions). Labels carry names (deployment, replica, host, model) and states, nothing
from the containers' configuration: no secret can reach the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fleetctl.errors import FleetctlError
from fleetctl.ops.health import DeploymentState, HealthReport, ReplicaState, Verdict, exit_code
from fleetctl.ops.health.model import SERVING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


def metrics_registry(report: HealthReport) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry, Gauge
    from prometheus_client import Enum as EnumMetric

    reg = CollectorRegistry()
    rep = ["deployment", "replica", "host"]
    dep = ["deployment"]

    def gauge(name: str, doc: str, labels: list[str] | None = None) -> Gauge:
        return Gauge(name, doc, labels or [], registry=reg)

    def enum(name: str, doc: str, labels: list[str], states: list[str]) -> EnumMetric:
        return EnumMetric(name, doc, labels, states=states, registry=reg)

    up = gauge(
        "fleetctl_replica_up", "1 when the replica serves (healthy or degraded), else 0.", rep
    )
    healthy = gauge(
        "fleetctl_replica_healthy", "1 when the replica passed every check with nothing amiss.", rep
    )
    state = enum(
        "fleetctl_replica_state",
        "What the last sweep saw of the replica.",
        rep,
        [s.value for s in ReplicaState],
    )
    verdict = enum(
        "fleetctl_replica_verdict",
        "The verdict on the replica, with the memory of earlier sweeps.",
        rep,
        [v.value for v in Verdict],
    )
    failures = gauge(
        "fleetctl_replica_consecutive_failures", "Sweeps in a row the replica failed.", rep
    )
    restarts = gauge(
        "fleetctl_replica_container_restarts",
        "Restarts of the replica's container by Docker's restart policy.",
        rep,
    )
    crash = gauge(
        "fleetctl_replica_crash_loop",
        "1 when the container's restart count rose since the last sweep.",
        rep,
    )
    probe_s = gauge(
        "fleetctl_probe_duration_seconds",
        "Time every check of a running replica took together.",
        ["deployment", "replica"],
    )
    latency = gauge(
        "fleetctl_probe_latency_seconds",
        "Latency of the one real request the sweep timed (NIM: a one-token "
        "chat completion; Triton: the health.sample inference, else a model-ready call).",
        rep,
    )
    violation = gauge(
        "fleetctl_sla_violation",
        "1 when the timed request took longer than the model's sla_ms.",
        rep,
    )
    fallback = gauge(
        "fleetctl_nim_fallback_profile", "1 when a NIM runs a generic or unexpected profile.", rep
    )
    drift = gauge(
        "fleetctl_triton_model_drift",
        "1 per declared model missing or not READY, or loaded model not declared.",
        [*rep, "model", "kind"],
    )
    sla = gauge("fleetctl_deployment_sla_seconds", "The deployment's latency target (sla_ms).", dep)
    dep_healthy = gauge(
        "fleetctl_deployment_healthy_replicas", "Replicas of the deployment that are healthy.", dep
    )
    dep_serving = gauge(
        "fleetctl_deployment_serving_replicas",
        "Replicas of the deployment that serve (healthy or degraded).",
        dep,
    )
    dep_desired = gauge(
        "fleetctl_deployment_desired_replicas", "Replicas the inventory asks for.", dep
    )
    dep_state = enum(
        "fleetctl_deployment_state",
        "State of the deployment at the last sweep.",
        dep,
        [s.value for s in DeploymentState],
    )
    dep_drift = gauge(
        "fleetctl_deployment_drift",
        "1 when the plan would recreate a replica of the deployment.",
        dep,
    )
    host_up = gauge(
        "fleetctl_host_reachable", "1 when the host's Docker engine answered.", ["host"]
    )
    door_up = gauge(
        "fleetctl_front_door_healthy",
        "1 when the host's front door runs, answers and serves the planned routes.",
        ["host"],
    )
    heals = gauge(
        "fleetctl_heal_actions",
        "Repairs health --heal made in the last sweep.",
        ["action", "outcome"],
    )
    ts = gauge(
        "fleetctl_health_sweep_timestamp_seconds", "When the last sweep started (epoch seconds)."
    )
    took = gauge("fleetctl_health_sweep_duration_seconds", "How long the last sweep took.")
    code = gauge(
        "fleetctl_health_exit_code",
        "The exit code of the last sweep (0 ok, 14 degraded, 10 critical, 6 hosts unreachable).",
    )

    for d in report.deployments:
        dep_healthy.labels(d.deployment).set(d.healthy)
        dep_serving.labels(d.deployment).set(d.serving)
        dep_desired.labels(d.deployment).set(d.desired)
        dep_state.labels(d.deployment).state(d.state.value)
        dep_drift.labels(d.deployment).set(1 if d.drift else 0)
        slas = {r.sla_ms for r in d.replicas if r.sla_ms is not None}
        if slas:
            sla.labels(d.deployment).set(min(slas) / 1000)
        for r in d.replicas:
            labels = (r.deployment, str(r.replica), r.host)
            up.labels(*labels).set(1 if r.state in SERVING else 0)
            healthy.labels(*labels).set(1 if r.state is ReplicaState.HEALTHY else 0)
            state.labels(*labels).state(r.state.value)
            verdict.labels(*labels).state(r.verdict.value)
            failures.labels(*labels).set(r.failures)
            if r.restart_count is not None:
                restarts.labels(*labels).set(r.restart_count)
            crash.labels(*labels).set(1 if r.crash_loop else 0)
            if r.latency_s is not None:
                probe_s.labels(r.deployment, str(r.replica)).set(r.latency_s)
            if r.request_latency_s is not None:
                latency.labels(*labels).set(r.request_latency_s)
                if r.sla_ms is not None:
                    violation.labels(*labels).set(1 if r.over_sla else 0)
            if r.profile is not None and r.profile.found:
                fallback.labels(*labels).set(1 if r.profile.problem else 0)
            t = r.triton
            if t is not None:
                for m in t.missing:
                    drift.labels(*labels, m, "missing").set(1)
                for m, _ in t.not_ready:
                    drift.labels(*labels, m, "not_ready").set(1)
                for m in t.extra:
                    drift.labels(*labels, m, "extra").set(1)
    for h in report.hosts:
        host_up.labels(h.host).set(1 if h.reachable else 0)
    for f in report.front_doors:
        door_up.labels(f.host).set(1 if f.state is ReplicaState.HEALTHY and f.routes_current else 0)
    counted: dict[tuple[str, str], int] = {}
    for a in report.healed:
        key = (a.action, "ok" if a.ok else ("skipped" if a.action == "none" else "failed"))
        counted[key] = counted.get(key, 0) + 1
    for (action, outcome), n in counted.items():
        heals.labels(action, outcome).set(n)
    ts.set(report.swept_at)
    took.set(report.duration_s)
    code.set(int(exit_code(report)))
    return reg


def write_textfile(report: HealthReport, path: str | Path) -> None:
    """Write the textfile-collector file atomically (a temporary file, fsynced, then a rename)."""
    from prometheus_client import generate_latest

    from fleetctl.fsutil import atomic_write_bytes

    target = Path(path)
    try:
        atomic_write_bytes(target, generate_latest(metrics_registry(report)))
    except OSError as exc:
        raise FleetctlError(f"cannot write textfile {target}: {exc.strerror or exc}") from None
