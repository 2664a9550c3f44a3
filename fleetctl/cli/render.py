"""Render results for people (rich) or machines (JSON). Nothing here decides anything."""

from __future__ import annotations

import json
import sys
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fleetctl.core.plan import ActionKind, Plan, gpu_map

BAR_WIDTH = 16
# Colours cycle over tenants so that neighbours on one bar can be told apart.
PALETTE = ["cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta"]
ACTION_STYLE = {
    ActionKind.CREATE: "green",
    ActionKind.RECREATE: "yellow",
    ActionKind.REMOVE: "red",
    ActionKind.KEEP: "dim",
}


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def memory_bar(used: float, total: float, tenants: Sequence[dict[str, Any]], colors: dict[str, str]) -> Text:
    bar = Text()
    filled = 0
    for t in tenants:
        cells = max(1, round(BAR_WIDTH * t["memory_gb"] / total)) if total else 0
        cells = min(cells, BAR_WIDTH - filled)
        bar.append("█" * cells, style=colors[t["deployment"]])
        filled += cells
    bar.append("░" * (BAR_WIDTH - filled), style="grey37")
    return bar


def render_gpu_map(console: Console, plan: Plan) -> None:
    colors: dict[str, str] = {}
    for d in plan.deployments:
        colors.setdefault(d.name, PALETTE[len(colors) % len(PALETTE)])
    for host in gpu_map(plan):
        models = sorted({g["model"] for g in host["gpus"] if g["model"]})
        title = f"GPU map · {host['host']}" + (" (simulated)" if host["simulated"] else "")
        if models:
            title += f" · {len(host['gpus'])} x {'/'.join(models)}"
        table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("GPU", no_wrap=True)
        table.add_column("memory", no_wrap=True)
        table.add_column("used", justify="right", no_wrap=True)
        table.add_column("SM", justify="right", no_wrap=True)
        table.add_column("tenants (predicted p95 / SLA ms)", ratio=1)
        for g in host["gpus"]:
            tenants = Text()
            for i, t in enumerate(g["tenants"]):
                if i:
                    tenants.append(", ")
                tenants.append(f"{t['deployment']}#{t['replica']}", style=colors[t["deployment"]])
                if t["predicted_p95_ms"] is not None and t["sla_ms"]:
                    tenants.append(f" {t['predicted_p95_ms']:g}/{t['sla_ms']:g}", style="dim")
            if not g["tenants"]:
                tenants.append("idle", style="dim")
            table.add_row(
                f"#{g['index']}",
                memory_bar(g["used_gb"], g["memory_gb"], g["tenants"], colors),
                f"{g['used_gb']:g}/{g['memory_gb']:g} GB",
                f"{100 * g['util']:.0f}%",
                tenants,
            )
        console.print(table)


def render_actions(console: Console, plan: Plan, *, show_keep: bool = True) -> None:
    table = Table(title="Actions", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("action", "replica", "host", "GPUs", "port", "why"):
        table.add_column(col, no_wrap=col != "why")
    for a in plan.actions:
        if a.kind is ActionKind.KEEP and not show_keep:
            continue
        why = a.reason + (f" [blocked: {a.blocked}]" if a.blocked else "")
        table.add_row(
            Text(a.kind.value, style=ACTION_STYLE[a.kind]),
            f"{a.deployment}#{a.replica}",
            a.host,
            ",".join(str(g) for g in a.gpus),
            "" if a.port is None else str(a.port),
            why,
        )
    console.print(table)


def render_summary(console: Console, plan: Plan) -> None:
    s = plan.summary
    ch = s.changes
    console.print(
        f"[bold]GPUs used {s.gpus_used}[/bold] of {s.gpus_total} "
        f"(lower bound {s.gpus_lower_bound}, one GPU per replica {s.gpus_naive}) · "
        f"{s.deployments} deployments, {s.replicas} replicas · "
        f"[green]{ch['create']} to create[/green], [yellow]{ch['recreate']} to recreate[/yellow], "
        f"[red]{ch['remove']} to remove[/red], {ch['keep']} unchanged"
    )
    for host, why in sorted(plan.unreachable.items()):
        console.print(f"[red]host {host} unreachable:[/red] {why}")
    for u in plan.placement.unplaced:
        console.print(f"[red]cannot place {u.deployment}#{u.replica}:[/red] " + "; ".join(u.reasons))


def render_plan(console: Console, plan: Plan) -> None:
    render_gpu_map(console, plan)
    console.print()
    render_actions(console, plan)
    console.print()
    render_summary(console, plan)


STATE_STYLE = {"ok": "green", "degraded": "yellow", "down": "red", "orphaned": "magenta"}


def render_status(console: Console, report: Any) -> None:
    hosts = Table(title="Hosts", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("host", "docker", "reachable", "GPUs", "containers"):
        hosts.add_column(col)
    for h in report.hosts:
        g = h["gpus"]
        gpus = g if isinstance(g, str) else f"{g['count']} x {g['memory_gb']:g} GB {g['model']}".strip()
        if h["simulated"]:
            gpus += " (simulated)"
        reach = Text("yes", style="green") if h["reachable"] else Text(f"no: {h['error']}", style="red")
        hosts.add_row(h["host"], h["docker"], reach, gpus, str(h["containers"]))
    console.print(hosts)
    console.print()
    table = Table(title="Deployments", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("deployment", "state", "replicas", "host", "GPUs", "container", "endpoint", "rev"):
        table.add_column(col, no_wrap=True)
    for d in report.deployments:
        name = d.deployment + (f" (pinned: {', '.join(d.customers)})" if d.customers else "")
        state = Text(d.state, style=STATE_STYLE.get(d.state, ""))
        if not d.replicas:
            table.add_row(name, state, f"{d.running}/{d.desired}", "", "", "", "", "")
        for i, r in enumerate(d.replicas):
            table.add_row(
                name if i == 0 else "",
                state if i == 0 else Text(""),
                f"{d.running}/{d.desired}" if i == 0 else "",
                r.host,
                ",".join(str(g) for g in r.gpus),
                f"{r.container} ({r.state})",
                r.endpoint,
                "" if r.revision is None else str(r.revision),
            )
    console.print(table)


OUTCOME_STYLE = {"succeeded": "green", "applied": "green", "failed": "red", "partial": "yellow", "rolled_back": "magenta", "running": "cyan"}


def render_history(console: Console, data: dict[str, Any]) -> None:
    if "revisions" in data:
        table = Table(title=f"Revisions of {data['deployment']}", title_justify="left", show_edge=False, pad_edge=False)
        for col in ("rev", "created (UTC)", "outcome", "image", "placement", "rollout"):
            table.add_column(col, no_wrap=col != "placement")
        for r in data["revisions"]:
            where = ", ".join(f"#{p['replica']} {p['host']} GPU {','.join(str(g) for g in p['gpus'])}" for p in r["placement"])
            table.add_row(
                str(r["number"]),
                r["created_at"],
                Text(r["outcome"], style=OUTCOME_STYLE.get(r["outcome"], "")),
                r["image"],
                where,
                str(r["rollout_id"]),
            )
        console.print(table)
        return
    table = Table(title="Rollouts", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("id", "started (UTC)", "command", "user", "outcome", "summary"):
        table.add_column(col, no_wrap=col != "summary")
    for r in data["rollouts"]:
        table.add_row(
            str(r["id"]), r["started_at"], r["command"], r["user"], Text(r["outcome"], style=OUTCOME_STYLE.get(r["outcome"], "")), r["summary"]
        )
    console.print(table)
