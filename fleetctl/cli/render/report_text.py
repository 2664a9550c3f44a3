"""The text view of the fleet report."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fleetctl.cli.render.style import BAR_WIDTH, PALETTE
from fleetctl.decide.advise import usd
from fleetctl.decide.report import HOURS_PER_MONTH, Report
from fleetctl.results.decide import ReportResult

__all__ = ["ReportResult", "render_report", "render_report_result"]


def _bar(capacity: float, tenants: list[tuple[float, str]]) -> Text:
    bar = Text()
    filled = 0
    for memory, style in tenants:
        cells = max(1, round(BAR_WIDTH * memory / capacity)) if capacity else 0
        cells = min(cells, BAR_WIDTH - filled)
        bar.append("█" * cells, style=style)
        filled += cells
    bar.append("░" * (BAR_WIDTH - filled), style="grey37")
    return bar


def render_report(console: Console, r: Report) -> None:
    console.print(Text(f"Fleet report{': ' + r.inventory if r.inventory else ''}", style="bold"))
    console.print(
        f"{r.models} models, {len(r.deployments)} deployments · "
        "by runtime: "
        + ", ".join(f"{k} {len(v)} ({', '.join(v)})" for k, v in r.by_runtime.items())
    )
    console.print(
        "by framework: "
        + ", ".join(f"{k} {len(v)} ({', '.join(v)})" for k, v in r.by_framework.items())
    )
    console.print(
        f"GPU memory demanded {r.demanded_gb:g} GB over all replicas (fleet usable {r.capacity_gb:g} GB)"
    )
    console.print(
        f"[bold]GPUs: {r.gpus_packed} after packing[/bold] · {r.gpus_naive} with one GPU per replica · "
        f"lower bound {r.gpus_lower_bound} · {r.gpus_total} in the fleet"
    )
    for line in r.triton_servers:
        console.print(line)
    console.print()

    colors: dict[str, str] = {}
    for d in r.deployments:
        colors.setdefault(d.name, PALETTE[len(colors) % len(PALETTE)])
    table = Table(title="Per GPU", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("host / GPU", "memory", "used", "memory %", "compute %", "tenants"):
        table.add_column(
            col,
            no_wrap=col != "tenants",
            justify="right" if "%" in col or col == "used" else "left",
        )
    for g in r.gpu_rows:
        tenants = Text()
        for i, t in enumerate(g.tenants):
            tenants.append(", " if i else "")
            tenants.append(f"{t.deployment}#{t.replica}", style=colors.get(t.deployment, ""))
            tenants.append(f" {t.memory_gb:g} GB", style="dim")
        if not g.tenants:
            tenants.append("idle", style="dim")
        table.add_row(
            f"{g.host} #{g.index}",
            _bar(g.capacity_gb, [(t.memory_gb, colors.get(t.deployment, "")) for t in g.tenants]),
            f"{g.used_gb:g}/{g.capacity_gb:g} GB",
            f"{100 * g.memory_share:.0f}%",
            f"{100 * g.util:.0f}%",
            tenants,
        )
    console.print(table)
    console.print()

    console.print(Text("SLA conflicts (pairs that fit by memory, not by latency)", style="bold"))
    if not r.conflicts:
        console.print("  none: every pair that fits one GPU by memory also keeps its SLAs")
    for f in r.conflicts:
        console.print(f"  [red]✗[/red] {f.message()} [dim](on {f.gpu})[/dim]")
    for f in r.at_limit:
        console.print(f"  [yellow]![/yellow] at the limit: {f.message()} [dim](on {f.gpu})[/dim]")
    console.print()

    c = r.costs
    costs = Table(
        title=f"Cost per month ({usd(c.gpu_hour_usd)}/GPU-hour x {HOURS_PER_MONTH} h)",
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    costs.add_column("")
    costs.add_column(f"packed ({r.gpus_packed} GPUs)", justify="right")
    costs.add_column(f"one per replica ({r.gpus_naive} GPUs)", justify="right")
    costs.add_row("GPUs", usd(c.packed_usd_month), usd(c.naive_usd_month))
    if c.runs_nim:
        costs.add_row(
            "NIM licence",
            f"{usd(c.nim_licence_packed_usd_month)} ({c.nim_gpus_packed} GPU)",
            f"{usd(c.nim_licence_naive_usd_month)} ({c.nim_gpus_naive} GPU)",
        )
    costs.add_row(
        Text("total", style="bold"), usd(c.total_packed_usd_month), usd(c.total_naive_usd_month)
    )
    console.print(costs)
    console.print(f"[green]packing saves {usd(c.saved_usd_month)} per month[/green]")
    for replica, why in r.unplaced:
        console.print(f"[red]cannot place {replica}:[/red] {why}")


def render_report_result(console: Console, result: ReportResult) -> None:
    render_report(console, result.report)
    if result.html is not None:
        console.print(f"wrote {result.html}", markup=False)
