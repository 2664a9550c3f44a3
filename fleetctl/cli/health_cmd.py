"""`fleetctl health`: one sweep for people, cron and Prometheus; `--heal` repairs.

`register(app)` adds the command to a Typer app. The sweep is `fleetctl.ops.health`;
this module renders its report (a table or JSON) and the history; the textfile is
`fleetctl.cli.health_metrics`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fleetctl.cli.health_metrics import metrics_registry, write_textfile
from fleetctl.cli.lazy import lazy_module
from fleetctl.cli.options import InventoryOpt, Output, OutputOpt, StateOpt, state_path
from fleetctl.errors import ExitCode
from fleetctl.ops.health import (
    DEFAULT_FAILURES,
    DEFAULT_TIMEOUT_S,
    DeploymentState,
    HealthReport,
    ReplicaState,
    Verdict,
)
from fleetctl.ops.health.heal import DEFAULT_HEAL_TIMEOUT_S
from fleetctl.ops.health.sweeping import MAX_PROBE_WORKERS
from fleetctl.state.health_store import DEFAULT_RETENTION_DAYS

if TYPE_CHECKING:
    from rich.console import Console

    from fleetctl.cli import render
else:  # the renderers pull in the plan model and rich: imported when a command prints
    render = lazy_module("fleetctl.cli.render")

__all__ = [
    "health",
    "metrics_registry",
    "register",
    "render_health",
    "summary_line",
    "write_textfile",
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


def health(
    inventory: Path = InventoryOpt,
    output: Output = OutputOpt,
    textfile: Path | None = typer.Option(
        None,
        "--textfile",
        help="Also write Prometheus textfile-collector metrics to PATH (atomically).",
    ),
    timeout: float = typer.Option(
        DEFAULT_TIMEOUT_S,
        "--timeout",
        min=0.1,
        help="Seconds all of one replica's checks may take together.",
    ),
    failures: int = typer.Option(
        DEFAULT_FAILURES,
        "--failures",
        min=1,
        help="Failing sweeps in a row before a replica is critical.",
    ),
    grace: float | None = typer.Option(
        None,
        "--grace",
        min=0,
        help="Seconds after a start a replica is 'starting' (default: its start-up budget).",
    ),
    heal: bool = typer.Option(
        False, "--heal", help="Repair critical replicas: start, recreate, reload models, restart."
    ),
    heal_timeout: float = typer.Option(
        DEFAULT_HEAL_TIMEOUT_S,
        "--heal-timeout",
        min=1,
        help="Seconds a repaired replica may take to be ready.",
    ),
    concurrency: int = typer.Option(
        MAX_PROBE_WORKERS, "--concurrency", min=1, max=512, help="Replicas probed at once."
    ),
    history: str | None = typer.Option(
        None,
        "--history",
        metavar="NAME",
        help="Show the recorded verdict changes and repairs of NAME (model or name@version).",
    ),
    keep_days: float = typer.Option(
        DEFAULT_RETENTION_DAYS,
        "--keep-days",
        min=0.01,
        help="Days the state keeps verdict changes and repairs.",
    ),
    state: Path | None = StateOpt,
) -> None:
    """Sweep every desired replica: container, readiness, served model, profile, latency, drift.

    Exit codes: 0 ok, 14 degraded (or failing, not yet --failures times), 10 critical,
    6 only hosts unreachable.
    """
    from fleetctl.cli.compose import outside
    from fleetctl.ops.health import report_to_json
    from fleetctl.ops.health.sweeping import run_sweep
    from fleetctl.runtimes.registry import runtime_names

    if history is not None:
        return show_history(inventory, history, output, state)
    options = dict(
        timeout_s=timeout,
        known_runtimes=runtime_names(),
        failures=failures,
        grace_s=grace,
        concurrency=concurrency,
        retention_days=keep_days,
    )
    world = outside()
    if heal:
        from fleetctl.ops.health.heal import sweep_and_heal

        report = sweep_and_heal(
            inventory,
            world,
            state_path=state_path(state, inventory),
            heal_timeout_s=heal_timeout,
            **options,
        )
    else:
        report = run_sweep(
            inventory,
            world.observe,
            state_path=state_path(state, inventory),
            inspectors=world.inspectors,
            **options,  # type: ignore[arg-type]
        ).report
    if output is Output.json:
        render.print_json(report_to_json(report))
    else:
        render_health(render.stdout_console(), report)
    # Written whatever the outcome: an unhealthy fleet is when the metrics matter.
    if textfile is not None:
        write_textfile(report, textfile)
    from fleetctl.ops.health import exit_code

    code = exit_code(report)
    if code is not ExitCode.OK:
        raise typer.Exit(int(code))


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.0f}"


def render_health(console: Console, report: HealthReport) -> None:
    from rich.table import Table
    from rich.text import Text

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


def show_history(inventory: Path, name: str, output: Output, state: Path | None) -> None:
    from fleetctl.errors import NotFoundError
    from fleetctl.runtimes.inventory import load
    from fleetctl.runtimes.registry import runtime_names
    from fleetctl.state.health_store import HealthMemory

    inv = load(inventory, runtime_names()).inventory
    events = HealthMemory(state_path(state, inventory), inv.fleet).events(name, limit=200)
    if not events:
        raise NotFoundError(
            f"no health history of {name} in {state_path(state, inventory)} (sweeps record verdict changes there)"
        )
    rows = [
        {
            "at": datetime.fromtimestamp(e.at, UTC).isoformat(timespec="seconds"),
            "deployment": e.deployment,
            "replica": e.replica,
            "host": e.host,
            "kind": e.kind,
            "verdict": e.verdict,
            "detail": e.detail,
            "latency_ms": e.latency_ms,
        }
        for e in events
    ]
    if output is Output.json:
        render.print_json({"name": name, "events": rows})
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"Health history · {name} (newest first)",
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    for col in ("at", "replica", "host", "kind", "verdict"):
        table.add_column(col, no_wrap=True)
    table.add_column("detail", overflow="fold")
    for row in rows:
        verdict = row["verdict"]
        style = (
            VERDICT_STYLE.get(Verdict(verdict), "") if verdict in Verdict._value2member_map_ else ""
        )
        table.add_row(
            row["at"],
            f"{row['deployment']}#{row['replica']}",
            row["host"],
            row["kind"],
            Text(verdict, style=style),
            row["detail"],
        )
    render.stdout_console().print(table)


def register(app: typer.Typer) -> None:
    """Add `health` to `app`."""
    app.command("health")(health)
