"""The text views of a health sweep and of a replica's health history."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fleetctl.ops.health.model import DeploymentState, HealthReport, ReplicaState, Verdict
from fleetctl.results.health import HealthHistoryResult, HealthResult

__all__ = [
    "HealthHistoryResult",
    "HealthResult",
    "render_health",
    "render_health_history",
    "render_health_result",
    "summary_line",
]

VERDICT_STYLE = {
    Verdict.OK: "green",
    Verdict.DEGRADED: "yellow",
    Verdict.STARTING: "cyan",
    Verdict.FAILING: "yellow",
    Verdict.CRITICAL: "red",
    Verdict.UNKNOWN: "yellow",
}
REPLICA_STYLE = {
    ReplicaState.HEALTHY: "green",
    ReplicaState.DEGRADED: "yellow",
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


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.0f}"


def render_health(console: Console, report: HealthReport) -> None:
    dark = [h for h in report.hosts if not h.reachable]
    for h in dark:
        console.print(
            Text.assemble(("host unreachable: ", "red"), f"{h.host}: {h.error or 'unreachable'}")
        )
    if dark:
        console.print()
    table = Table(title="Health", title_justify="left", show_edge=False, pad_edge=False)
    for col in (
        "deployment",
        "state",
        "serving",
        "replica",
        "host",
        "verdict",
        "seen",
        "endpoint",
        "latency ms / SLA",
    ):
        table.add_column(col, no_wrap=True)
    table.add_column("reasons", overflow="fold")
    for d in report.deployments:
        dep_state = Text(d.state.value, style=DEPLOYMENT_STYLE[d.state])
        if not d.replicas:
            table.add_row(d.deployment, dep_state, f"{d.serving}/{d.desired}", *[""] * 7)
        for i, r in enumerate(d.replicas):
            verdict = r.verdict.value
            if r.verdict is Verdict.FAILING:
                verdict += f" {r.failures}/{report.failures_needed}"
            elif r.verdict is Verdict.CRITICAL and r.failures > 1:
                verdict += f" ({r.failures} sweeps)"
            reasons = Text("; ".join(r.reasons) or r.detail)
            if r.drift:
                reasons.append(
                    f" · plan would recreate ({r.drift.removeprefix('drift: ')})", style="yellow"
                )
            sla = (
                f" / {r.sla_ms:g}"
                if r.sla_ms is not None and r.request_latency_s is not None
                else ""
            )
            table.add_row(
                d.deployment if i == 0 else "",
                dep_state if i == 0 else Text(""),
                f"{d.serving}/{d.desired}" if i == 0 else "",
                f"#{r.replica}",
                r.host,
                Text(verdict, style=VERDICT_STYLE[r.verdict]),
                Text(r.state.value, style=REPLICA_STYLE[r.state]),
                r.endpoint,
                Text(_ms(r.request_latency_s) + sla, style="yellow" if r.over_sla else ""),
                reasons,
            )
    console.print(table)
    for f in report.front_doors:
        style = REPLICA_STYLE[f.state]
        console.print(
            Text.assemble(
                "front door ",
                (f.host, "bold"),
                f" {f.url}: ",
                (f.state.value, style),
                f" ({f.detail})",
            )
        )
    if report.healing:
        console.print()
        if report.heal_note:
            console.print(Text(report.heal_note, style="yellow"))
        elif not report.healed:
            console.print("heal: nothing critical to repair")
        for a in report.healed:
            mark = (
                ("ok", "green")
                if a.ok
                else (("skipped", "yellow") if a.action == "none" else ("failed", "red"))
            )
            what = a.action if a.action != "none" else "left alone"
            console.print(
                Text.assemble(
                    "heal ",
                    (f"{a.deployment}#{a.replica}", "bold"),
                    f" on {a.host}: {what} ",
                    (a.target, "bold"),
                    " ",
                    mark,
                    f": {a.detail}",
                )
            )
    console.print()
    console.print(summary_line(report))


def summary_line(report: HealthReport) -> str:
    replicas = report.replicas
    parts = [f"{report.count_verdict(Verdict.OK)}/{len(replicas)} replicas ok"]
    others = [
        f"{report.count_verdict(v)} {v.value}"
        for v in Verdict
        if v is not Verdict.OK and report.count_verdict(v)
    ]
    if others:
        parts[0] += f" ({', '.join(others)})"
    states = [
        f"{n} {s.value}"
        for s in DeploymentState
        if (n := sum(d.state is s for d in report.deployments))
    ]
    parts.append(f"deployments: {', '.join(states) or 'none'}")
    drifting = sum(bool(d.drift) for d in report.deployments)
    if drifting:
        parts.append(f"{drifting} drifting (see `fleetctl plan`)")
    dark = sum(not h.reachable for h in report.hosts)
    if dark:
        parts.append(f"{dark} host(s) unreachable")
    if report.healed:
        parts.append(f"{sum(a.ok for a in report.healed)}/{len(report.healed)} repairs ok")
    parts.append(f"swept in {report.duration_s:.2f} s")
    return " · ".join(parts)


def render_health_result(console: Console, result: HealthResult) -> None:
    render_health(console, result.report)


def render_health_history(console: Console, result: HealthHistoryResult) -> None:
    table = Table(
        title=f"Health history · {result.name} (newest first)",
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    for col in ("at", "replica", "host", "kind", "verdict"):
        table.add_column(col, no_wrap=True)
    table.add_column("detail", overflow="fold")
    for e in result.events:
        style = (
            VERDICT_STYLE.get(Verdict(e.verdict), "")
            if e.verdict in Verdict._value2member_map_
            else ""
        )
        table.add_row(
            e.at,
            f"{e.deployment}#{e.replica}",
            e.host,
            e.kind,
            Text(e.verdict, style=style),
            e.detail,
        )
    console.print(table)
