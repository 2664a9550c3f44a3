"""`fleetctl health`: one sweep of container state and readiness, for people, cron and Prometheus.

`register(app)` adds the command to a Typer app. The sweep itself is
`fleetctl.ops.health.sweep`; this module only renders its report: a table, JSON, and the
textfile-collector file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from fleetctl.cli import render
from fleetctl.cli.options import InventoryOpt, Output, OutputOpt, StateOpt, state_path
from fleetctl.errors import ExitCode, FleetctlError
from fleetctl.ops.health import DEFAULT_TIMEOUT_S, DeploymentState, HealthReport, ReplicaState

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from rich.console import Console


REPLICA_STYLE = {
    ReplicaState.HEALTHY: "green",
    ReplicaState.UNHEALTHY: "red",
    ReplicaState.STOPPED: "red",
    ReplicaState.MISSING: "red",
    ReplicaState.UNKNOWN: "yellow",
}
DEPLOYMENT_STYLE = {
    DeploymentState.OK: "green",
    DeploymentState.DEGRADED: "yellow",
    DeploymentState.DOWN: "red",
    DeploymentState.UNKNOWN: "yellow",
}


def health(
    inventory: Path = InventoryOpt,
    output: Output = OutputOpt,
    textfile: Optional[Path] = typer.Option(
        None, "--textfile", help="Also write Prometheus textfile-collector metrics to PATH (atomically)."
    ),
    timeout: float = typer.Option(
        DEFAULT_TIMEOUT_S, "--timeout", min=0.1, help="Seconds each replica's readiness probe may take."
    ),
    state: Optional[Path] = StateOpt,
) -> None:
    """Probe every desired replica once: container state and the runtime's readiness checks.

    Exit codes: 0 all healthy, 10 a replica unhealthy, stopped or missing, 6 only hosts unreachable.
    """
    from fleetctl.adapters.observe import observe_fleet
    from fleetctl.ops.health import exit_code, http_probe, preload_probe_clients, report_to_json, sweep
    from fleetctl.runtimes.registry import runtime_names

    preload_probe_clients()
    report = sweep(
        inventory, observe_fleet, http_probe, timeout_s=timeout, known_runtimes=runtime_names(), state_path=state_path(state)
    )
    if output is Output.json:
        render.print_json(report_to_json(report))
    else:
        render_health(render.stdout_console(), report)
    # Written whatever the outcome: an unhealthy fleet is when the metrics matter.
    if textfile is not None:
        write_textfile(report, textfile)
    code = exit_code(report)
    if code is not ExitCode.OK:
        raise typer.Exit(int(code))


def render_health(console: "Console", report: HealthReport) -> None:
    from rich.table import Table
    from rich.text import Text

    dark = [h for h in report.hosts if not h.reachable]
    for h in dark:
        console.print(Text.assemble(("host unreachable: ", "red"), f"{h.host}: {h.error or 'unreachable'}"))
    if dark:
        console.print()
    table = Table(title="Health", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("deployment", "state", "healthy", "replica", "host", "replica state", "endpoint", "probe"):
        table.add_column(col, no_wrap=True)
    table.add_column("detail", overflow="fold")
    for d in report.deployments:
        dep_state = Text(d.state.value, style=DEPLOYMENT_STYLE[d.state])
        if not d.replicas:
            table.add_row(d.deployment, dep_state, f"{d.healthy}/{d.desired}", "", "", "", "", "", "")
        for i, r in enumerate(d.replicas):
            detail = Text(r.detail)
            if r.drift:
                detail.append(f" · plan would recreate ({r.drift.removeprefix('drift: ')})", style="yellow")
            table.add_row(
                d.deployment if i == 0 else "",
                dep_state if i == 0 else Text(""),
                f"{d.healthy}/{d.desired}" if i == 0 else "",
                f"#{r.replica}",
                r.host,
                Text(r.state.value, style=REPLICA_STYLE[r.state]),
                r.endpoint,
                "" if r.latency_s is None else f"{r.latency_s * 1000:.0f} ms",
                detail,
            )
    console.print(table)
    for f in report.front_doors:
        style = REPLICA_STYLE[f.state]
        console.print(Text.assemble("front door ", (f.host, "bold"), f" {f.url}: ", (f.state.value, style), f" ({f.detail})"))
    console.print()
    console.print(summary_line(report))


def summary_line(report: HealthReport) -> str:
    replicas = report.replicas
    healthy = report.count(ReplicaState.HEALTHY)
    parts = [f"{healthy}/{len(replicas)} replicas healthy"]
    others = [f"{report.count(s)} {s.value}" for s in ReplicaState if s is not ReplicaState.HEALTHY and report.count(s)]
    if others:
        parts[0] += f" ({', '.join(others)})"
    states = [f"{n} {s.value}" for s in DeploymentState if (n := sum(d.state is s for d in report.deployments))]
    parts.append(f"deployments: {', '.join(states) or 'none'}")
    drifting = sum(bool(d.drift) for d in report.deployments)
    if drifting:
        parts.append(f"{drifting} drifting (see `fleetctl plan`)")
    dark = sum(not h.reachable for h in report.hosts)
    if dark:
        parts.append(f"{dark} host(s) unreachable")
    parts.append(f"swept in {report.duration_s:.2f} s")
    return " · ".join(parts)


def metrics_registry(report: HealthReport) -> "CollectorRegistry":
    """A fresh registry holding this sweep only; labels carry names, never configuration values."""
    from prometheus_client import CollectorRegistry, Enum as EnumMetric, Gauge

    reg = CollectorRegistry()
    replica = ["deployment", "replica", "host"]
    dep = ["deployment"]

    def gauge(name: str, doc: str, labels: list[str] | None = None) -> Gauge:
        return Gauge(name, doc, labels or [], registry=reg)

    healthy = gauge("fleetctl_replica_healthy", "1 when the replica's container runs and passed its readiness checks.", replica)
    state = EnumMetric(
        "fleetctl_replica_state", "State of the replica at the last sweep.", replica,
        states=[s.value for s in ReplicaState], registry=reg,
    )
    probe_s = gauge(
        "fleetctl_probe_duration_seconds", "Time the readiness probe of a running replica took.", ["deployment", "replica"]
    )
    dep_healthy = gauge("fleetctl_deployment_healthy_replicas", "Replicas of the deployment that are healthy.", dep)
    dep_desired = gauge("fleetctl_deployment_desired_replicas", "Replicas the inventory asks for.", dep)
    dep_state = EnumMetric(
        "fleetctl_deployment_state", "State of the deployment at the last sweep.", dep,
        states=[s.value for s in DeploymentState], registry=reg,
    )
    dep_drift = gauge("fleetctl_deployment_drift", "1 when the plan would recreate a replica of the deployment.", dep)
    host_up = gauge("fleetctl_host_reachable", "1 when the host's Docker engine answered.", ["host"])
    door_up = gauge(
        "fleetctl_front_door_healthy", "1 when the host's front door runs, answers and serves the planned routes.", ["host"]
    )
    ts = gauge("fleetctl_health_sweep_timestamp_seconds", "When the last sweep started (epoch seconds).")
    took = gauge("fleetctl_health_sweep_duration_seconds", "How long the last sweep took.")

    for d in report.deployments:
        dep_healthy.labels(d.deployment).set(d.healthy)
        dep_desired.labels(d.deployment).set(d.desired)
        dep_state.labels(d.deployment).state(d.state.value)
        dep_drift.labels(d.deployment).set(1 if d.drift else 0)
        for r in d.replicas:
            labels = (r.deployment, str(r.replica), r.host)
            healthy.labels(*labels).set(1 if r.state is ReplicaState.HEALTHY else 0)
            state.labels(*labels).state(r.state.value)
            if r.latency_s is not None:
                probe_s.labels(r.deployment, str(r.replica)).set(r.latency_s)
    for h in report.hosts:
        host_up.labels(h.host).set(1 if h.reachable else 0)
    for f in report.front_doors:
        door_up.labels(f.host).set(1 if f.state is ReplicaState.HEALTHY and f.routes_current else 0)
    ts.set(report.swept_at)
    took.set(report.duration_s)
    return reg


def write_textfile(report: HealthReport, path: str | Path) -> None:
    """Write the textfile-collector file atomically (a temporary file, then a rename)."""
    from prometheus_client import write_to_textfile

    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(target), metrics_registry(report))
    except OSError as exc:
        raise FleetctlError(f"cannot write textfile {target}: {exc.strerror or exc}") from None


def register(app: typer.Typer) -> None:
    """Add `health` to `app`."""
    app.command("health")(health)
