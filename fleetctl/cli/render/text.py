"""The text renderer: each result of `fleetctl.results` as people read it (rich).

`render_text(console, result)` dispatches on the result's type; the views below it are
also used while a command runs (apply shows the plan before it asks). Nothing here
decides anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatch
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fleetctl.cli.render.style import BAR_WIDTH, PALETTE
from fleetctl.core.plan import ActionKind, Plan, gpu_map
from fleetctl.results.fleet import (
    ApplyResult,
    DownResult,
    MigrateResult,
    PinsResult,
    ReleaseResult,
    RevisionsResult,
    RolloutsResult,
    StatusResult,
)
from fleetctl.results.plan import PlanResult, SchemaWritten, ValidateResult

# Past these sizes the table view summarises (a person cannot read 10,000 rows; the
# JSON output always has everything, and --all shows every row).
MAX_GPU_ROWS = 64
MAX_HOST_ROWS = 40
MAX_ACTION_ROWS = 60
ACTION_STYLE = {
    ActionKind.CREATE: "green",
    ActionKind.RECREATE: "yellow",
    ActionKind.REMOVE: "red",
    ActionKind.KEEP: "dim",
    ActionKind.LOAD: "green",
    ActionKind.RELOAD: "yellow",
    ActionKind.UNLOAD: "red",
}


def memory_bar(
    used: float, total: float, tenants: Sequence[dict[str, Any]], colors: dict[str, str]
) -> Text:
    bar = Text()
    filled = 0
    for t in tenants:
        cells = max(1, round(BAR_WIDTH * t["memory_gb"] / total)) if total else 0
        cells = min(cells, BAR_WIDTH - filled)
        bar.append("█" * cells, style=colors[t["deployment"]])
        filled += cells
    bar.append("░" * (BAR_WIDTH - filled), style="grey37")
    return bar


def render_host_summary(console: Console, plan: Plan, limit: int | None) -> None:
    """One line per host for fleets too large for a GPU-by-GPU map."""
    hosts = gpu_map(plan)
    table = Table(
        title=f"GPU map by host ({len(hosts)} hosts)",
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    for col, just in (
        ("host", "left"),
        ("memory", "left"),
        ("GPUs used", "right"),
        ("used", "right"),
        ("replicas", "right"),
    ):
        table.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    shown = hosts if limit is None else hosts[:limit]
    for host in shown:
        cap = sum(g["memory_gb"] for g in host["gpus"])
        used = sum(g["used_gb"] for g in host["gpus"])
        cells = round(BAR_WIDTH * used / cap) if cap else 0
        bar = Text("█" * cells, style="cyan").append("░" * (BAR_WIDTH - cells), style="grey37")
        busy = sum(1 for g in host["gpus"] if g["tenants"])
        replicas = len(
            {(t["deployment"], t["replica"]) for g in host["gpus"] for t in g["tenants"]}
        )
        table.add_row(
            host["host"], bar, f"{busy}/{len(host['gpus'])}", f"{used:g}/{cap:g} GB", str(replicas)
        )
    console.print(table)
    if len(shown) < len(hosts):
        console.print(
            f"[dim]… {len(hosts) - len(shown)} more hosts (--all shows them, --output json has every GPU)[/dim]"
        )


def render_gpu_map(console: Console, plan: Plan, show_all: bool = False) -> None:
    if not show_all and sum(len(h.gpus) for h in plan.hosts) > MAX_GPU_ROWS:
        render_host_summary(console, plan, MAX_HOST_ROWS)
        return
    colors: dict[str, str] = {}
    for d in plan.deployments:
        colors.setdefault(d.name, PALETTE[len(colors) % len(PALETTE)])
    for host in gpu_map(plan):
        models = sorted({g["model"] for g in host["gpus"] if g["model"]})
        title = f"GPU map · {host['host']}" + (" (simulated)" if host["simulated"] else "")
        if len(models) == 1:
            title += f" · {len(host['gpus'])} x {models[0]}"
        elif models:  # groups of different GPUs
            count = {m: sum(1 for g in host["gpus"] if g["model"] == m) for m in models}
            title += " · " + " + ".join(f"{n} x {m}" for m, n in count.items())
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


def render_actions(
    console: Console, plan: Plan, *, show_keep: bool = True, show_all: bool = False
) -> None:
    table = Table(title="Actions", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("action", "replica", "host", "GPUs", "port", "why"):
        table.add_column(col, no_wrap=col != "why")
    rows = [a for a in plan.actions if show_keep or a.kind is not ActionKind.KEEP]
    if not show_all and len(rows) > MAX_ACTION_ROWS:
        # Changes first: they are what a reviewer must see.
        rows = sorted(rows, key=lambda a: a.kind is ActionKind.KEEP)
    hidden = rows[MAX_ACTION_ROWS:] if not show_all else []
    for a in rows[: len(rows) - len(hidden)]:
        why = a.reason + (f" [blocked: {a.blocked}]" if a.blocked else "")
        if a.downtime:
            took = (
                f"about {a.unavailable_s:g} s"
                if a.unavailable_s is not None
                else "until its successor is ready"
            )
            why += f" [stop-first: out of service for {took}]"
        table.add_row(
            Text(a.kind.value, style=ACTION_STYLE[a.kind]),
            f"{a.deployment}#{a.replica}",
            a.host,
            ",".join(str(g) for g in a.gpus),
            "" if a.port is None else str(a.port),
            why,
        )
    for f in plan.front_doors:
        if not show_keep and not f.mutating:
            continue
        why = f.reason + (f" [blocked: {f.blocked}]" if f.blocked else "")
        style = {"create": "green", "recreate": "yellow", "reload": "cyan", "remove": "red"}.get(
            f.kind.value, "dim"
        )
        table.add_row(
            Text(f.kind.value, style=style),
            "front door",
            f.host,
            "",
            "" if f.port is None else str(f.port),
            why,
        )
    console.print(table)
    if hidden:
        counts = ", ".join(
            f"{n} {k.value}" for k in ActionKind if (n := sum(1 for a in hidden if a.kind is k))
        )
        console.print(
            f"[dim]… {len(hidden)} more actions ({counts}); --all shows them, --output json has every one[/dim]"
        )


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
    console.print(
        f"[dim]placement: {s.placement_search} · gap to the lower bound {s.gpus_gap:.1%}[/dim]"
    )
    doors = plan.front_door_changes
    if plan.front_door_sites:
        console.print(
            f"front doors: {len(plan.front_door_sites)} ({len(doors)} to change) · "
            + ", ".join(s.url for s in plan.front_door_sites[:3])
            + (" …" if len(plan.front_door_sites) > 3 else "")
        )
    render_notes(console, plan)
    for host, why in sorted(plan.unreachable.items()):
        console.print(f"[red]host {host} unreachable:[/red] {why}")
    for u in plan.placement.unplaced:
        console.print(
            f"[red]cannot place {u.deployment}#{u.replica}:[/red] " + "; ".join(u.reasons)
        )


def render_notes(console: Console, plan: Plan) -> None:
    """The plan's notes (holds in force or lifted, what a rollback does), one line each."""
    for note in plan.notes:
        console.print(Text.assemble(("note: ", "cyan"), note), highlight=False)


def render_recovery(console: Console, plan: Plan) -> None:
    """What an interrupted rollout left, and how apply ends it before the actions below."""
    if not plan.recovery:
        return
    console.print(
        "[yellow]An interrupted rollout left replicas under temporary names; apply first:[/yellow]"
    )
    for r in plan.recovery:
        how = (
            f"gate {r.container} again and rename it {r.final_name}"
            + (f" (else restore {r.fallback})" if r.fallback else " (else remove it)")
            if r.kind.value == "finish"
            else f"rename {r.container} back to {r.final_name} and start it"
        )
        console.print(
            f"  {r.kind.value:8} {r.deployment}#{r.replica} on {r.host}: {how}",
            markup=False,
            highlight=False,
        )
    console.print()


def render_plan(console: Console, plan: Plan, show_all: bool = False) -> None:
    render_gpu_map(console, plan, show_all)
    console.print()
    render_recovery(console, plan)
    render_actions(console, plan, show_all=show_all)
    console.print()
    render_summary(console, plan)


STATE_STYLE = {"ok": "green", "degraded": "yellow", "down": "red", "orphaned": "magenta"}


def render_status(console: Console, report: Any) -> None:
    hosts = Table(title="Hosts", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("host", "reachable", "GPUs", "containers", "docker"):
        hosts.add_column(col, no_wrap=col != "docker")
    for h in report.hosts:
        g = h["gpus"]
        groups = [] if isinstance(g, str) else g if isinstance(g, list) else [g]
        gpus = (
            g
            if isinstance(g, str)
            else " + ".join(f"{x['count']} x {x['memory_gb']:g} GB" for x in groups)
        )
        if h["simulated"]:
            gpus += " (sim)"
        reach = (
            Text("yes", style="green") if h["reachable"] else Text(f"no: {h['error']}", style="red")
        )
        hosts.add_row(h["host"], reach, gpus, str(h["containers"]), h["docker"])
    console.print(hosts)
    console.print()
    if report.front_doors:
        doors = Table(title="Front doors", title_justify="left", show_edge=False, pad_edge=False)
        for col in ("host", "url", "state", "routes"):
            doors.add_column(col, no_wrap=True)
        for f in report.front_doors:
            style = "green" if f["state"] == "running" and f["routes_current"] else "yellow"
            routes = "current" if f["routes_current"] else "stale (apply reloads them)"
            doors.add_row(f["host"], f["url"], Text(f["state"], style=style), routes)
        console.print(doors)
        console.print()
    table = Table(title="Deployments", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("deployment", "state", "#", "host:GPUs", "endpoint (or container state)", "rev"):
        table.add_column(col, no_wrap=True)
    pinned = []
    for d in report.deployments:
        if d.customers:
            pinned.append(f"{d.deployment} for {', '.join(d.customers)}")
        name = d.deployment + (" *" if d.customers else "")
        state = Text(f"{d.state} {d.running}/{d.desired}", style=STATE_STYLE.get(d.state, ""))
        if not d.replicas:
            table.add_row(name, state, "", "", "", "")
        for i, r in enumerate(d.replicas):
            table.add_row(
                name if i == 0 else "",
                state if i == 0 else Text(""),
                str(r.replica),
                f"{r.host}:{','.join(str(g) for g in r.gpus)}",
                r.endpoint if r.state == "running" else Text(f"container {r.state}", style="red"),
                "" if r.revision is None else str(r.revision),
            )
    console.print(table)
    for d in report.deployments:
        if d.members:
            served = ", ".join(f"{n} ({', '.join(ms)})" for n, ms in d.members)
            console.print(
                f"{d.deployment} is a shared Triton server for {served}",
                markup=False,
                highlight=False,
            )
    if pinned:
        console.print(Text("* pinned: " + "; ".join(pinned), style="dim"))
    urls = [d for d in report.deployments if d.client_url]
    if urls:
        console.print()
        console.print("Clients use the front door:")
        for d in urls:
            who = f" with {report.customer_header}: {', '.join(d.customers)}" if d.customers else ""
            console.print(
                f"  {d.deployment:<28} {d.client_url}{who}", markup=False, highlight=False
            )


OUTCOME_STYLE = {
    "succeeded": "green",
    "applied": "green",
    "failed": "red",
    "partial": "yellow",
    "rolled_back": "magenta",
    "running": "cyan",
}


def render_revisions(console: Console, data: RevisionsResult) -> None:
    table = Table(
        title=f"Revisions of {data.deployment}",
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    for col in ("rev", "created (UTC)", "outcome", "image", "placement", "rollout"):
        table.add_column(col, no_wrap=col != "placement")
    for r in data.revisions:
        where = ", ".join(
            f"#{p.replica} {p.host} GPU {','.join(str(g) for g in p.gpus)}" for p in r.placement
        )
        table.add_row(
            str(r.number),
            r.created_at,
            Text(r.outcome, style=OUTCOME_STYLE.get(r.outcome, "")),
            r.image,
            where,
            str(r.rollout_id),
        )
    console.print(table)
    for r in data.revisions:
        if r.reason or r.log_tail:
            step = r.failed_step
            where = f" ({step.action} of replica {step.replica} on {step.host})" if step else ""
            console.print(
                Text.assemble((f"revision {r.number} failed{where}: ", "red"), r.reason or "")
            )
            for line in (r.log_tail or "").rstrip().splitlines()[-15:]:
                console.print(Text("  " + line, style="dim"))
    hold = data.hold
    if hold:
        console.print(
            f"{hold.model} is held at {hold.deployment} (revision {hold.revision}) since {hold.created_at}: "
            f"`fleetctl release {hold.model}` follows the inventory again",
            markup=False,
        )


def render_rollouts(console: Console, data: RolloutsResult) -> None:
    table = Table(title="Rollouts", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("id", "started (UTC)", "command", "user", "outcome", "summary"):
        table.add_column(col, no_wrap=col != "summary")
    for r in data.rollouts:
        table.add_row(
            str(r.id),
            r.started_at,
            r.command,
            r.user,
            Text(r.outcome, style=OUTCOME_STYLE.get(r.outcome, "")),
            r.summary,
        )
    console.print(table)


def render_pins(console: Console, rows: Sequence[Any]) -> None:
    """`fleetctl pins`: customers pinned to a version, and the holds, with their routes."""
    table = Table(title="Pins and holds", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("customer", "model", "version", "route", "replicas", "health"):
        table.add_column(col, no_wrap=col != "route")
    for r in rows:
        if r.kind == "hold":
            who = Text(
                "everyone else (hold)" if r.in_force else "hold, lifted",
                style="magenta" if r.in_force else "dim",
            )
            route = r.url or "(no front door)"
        else:
            who = Text(r.customer or "")
            route = f"{r.url or '(no front door)'}  {r.header}: {r.value}"
        table.add_row(
            who,
            r.model,
            r.version,
            route,
            f"{r.running}/{r.desired}",
            Text(r.health, style=STATE_STYLE.get(r.health, "")),
        )
    console.print(table)
    if not rows:
        console.print("[dim]no customer is pinned and no model is held[/dim]")


def render_apply(console: Console, result: ApplyResult) -> None:
    """What a rollout did: its failures with their log lines, then one summary line."""
    r = result.outcome
    if r.noop:
        console.print("[green]nothing to do:[/green] every replica is up to date")
        render_notes(console, r.plan)
        return
    failed = r.failed
    doors_failed = r.failed_front_doors
    for o in failed:
        console.print(
            f"[red]✗ {o.action.kind.value} {o.action.deployment}#{o.action.replica} on {o.action.host}:[/red] {o.detail}"
        )
        if o.log_tail:
            console.print("[dim]  last log lines of the new container:[/dim]")
            for line in o.log_tail.rstrip().splitlines()[-15:]:
                console.print(f"  [dim]{line}[/dim]", markup=False)
    for d in doors_failed:
        console.print(f"[red]✗ front door on {d.action.host}:[/red] {d.detail}")
    for problem in r.routing_problems:
        console.print(f"[yellow]! {problem}[/yellow]")
    ok = len(r.outcomes) - len(failed)
    line = f"rollout {r.rollout_id}: {ok} step(s) ok, {len(failed)} failed"
    if r.front_doors:
        line += f"; front doors: {len(r.front_doors) - len(doors_failed)} ok, {len(doors_failed)} failed"
    console.print(line)
    if r.plan.front_door_sites:
        console.print("front door: " + ", ".join(s.url for s in r.plan.front_door_sites))


def render_explain(console: Console, result: PlanResult) -> None:
    for group in result.explained:
        for note in group.notes:
            console.print()
            console.print(note, markup=False)
        for e in group.replicas:
            console.print()
            console.print(e.render())


@singledispatch
def render_text(result: Any, console: Console) -> None:
    """The text view of a command's result (dispatched on the result's type)."""
    if _register_more():
        render_text(result, console)
        return
    raise TypeError(f"no text view for {type(result).__name__}")


@render_text.register
def _(result: PlanResult, console: Console) -> None:
    render_plan(console, result.plan, result.show_all)
    if result.explain is not None:
        render_explain(console, result)
    if result.saved_to is not None:
        console.print(
            f"plan saved to {result.saved_to}: apply it with `fleetctl apply --plan {result.saved_to}`"
        )


@render_text.register
def _(result: ValidateResult, console: Console) -> None:
    console.print(
        f"[green]✓[/green] {result.file}: {result.hosts} hosts, {len(result.deployments or ())} deployments"
    )


@render_text.register
def _(result: SchemaWritten, console: Console) -> None:
    for f in result.files or (result.written,):
        console.print(f"wrote {f}", markup=False)


@render_text.register
def _(result: StatusResult, console: Console) -> None:
    render_status(console, result.report)


@render_text.register
def _(result: RolloutsResult, console: Console) -> None:
    render_rollouts(console, result)


@render_text.register
def _(result: RevisionsResult, console: Console) -> None:
    render_revisions(console, result)


@render_text.register
def _(result: ApplyResult, console: Console) -> None:
    render_apply(console, result)


@render_text.register
def _(result: DownResult, console: Console) -> None:
    n = len(result.removed)
    console.print(f"removed {n} container(s)" if result.outcomes else "nothing to remove")


@render_text.register
def _(result: ReleaseResult, console: Console) -> None:
    h = result.released
    console.print(
        f"released {h.model} (it was held at {h.deployment}, revision {h.revision}, by `{h.command}`)",
        markup=False,
    )
    console.print(result.next_apply, markup=False)


@render_text.register
def _(result: PinsResult, console: Console) -> None:
    render_pins(console, result.rows)


@render_text.register
def _(result: MigrateResult, console: Console) -> None:
    counted = ", ".join(f"{n} {t}" for t, n in result.rows.items())
    console.print(
        f"copied {result.source} into {result.target} (schema version {result.schema_version}): {counted}",
        markup=False,
    )
    console.print(
        f"use it with --state {result.target} or FLEETCTL_STATE={result.target}", markup=False
    )


_MORE: list[bool] = []


def _register_more() -> bool:
    """Register the views of report, advise and health (their own modules, imported only
    by the commands that need them); False once they are."""
    if _MORE:
        return False
    _MORE.append(True)
    from fleetctl.cli.render import advise_text, health_text, report_text

    views: list[tuple[type, Any]] = [
        (advise_text.AdviseResult, advise_text.render_advise),
        (report_text.ReportResult, report_text.render_report_result),
        (health_text.HealthResult, health_text.render_health_result),
        (health_text.HealthHistoryResult, health_text.render_health_history),
    ]
    for kind, view in views:
        render_text.register(kind, lambda result, console, view=view: view(console, result))
    return True
