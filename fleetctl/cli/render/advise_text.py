"""The text views of advice: the fleet table and the step-by-step account of one model."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from fleetctl.core.inventory import Costs
from fleetctl.decide.advise import LABELS, OPTIONS, WEEKS_TO_PRODUCTION, Advice, ranking_text, usd
from fleetctl.results.decide import AdviseResult

__all__ = ["AdviseResult", "advise_table", "explain", "render_advise"]

WINNER_STYLE = {"build": "magenta", "triton": "cyan", "nim": "green"}


def advise_table(advices: Sequence[Advice]) -> Group:
    """The ranking table, then each model's reasons (long text reads better below)."""
    w = advices[0].weights if advices else None
    title = "Build, Triton or NIM" + (f"  (weights {w.describe()}, from {w.source})" if w else "")
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("model", no_wrap=True)
    table.add_column("now", no_wrap=True, style="dim")
    table.add_column("ranking (0-5)", no_wrap=True)
    table.add_column("winner", no_wrap=True)
    reasons: list[RenderableType] = [Text("")]
    for a in advices:
        table.add_row(
            a.model,
            a.runtime,
            ranking_text(a),
            Text(a.winner, style=f"bold {WINNER_STYLE.get(a.winner, '')}"),
        )
        reasons.append(Text(a.model, style="bold"))
        for r in a.reasons() or ["baseline arithmetic only"]:
            reasons.append(Text(f"  • {r}"))
    reasons.append(
        Text("\n`fleetctl advise MODEL` shows the arithmetic step by step.", style="dim")
    )
    return Group(table, *reasons)


def _fmt(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.2f}"


def explain(advice: Advice, costs: Costs) -> Group:
    """The arithmetic for one model, step by step, as it was computed."""
    w = advice.weights
    f = advice.facts
    parts: list[RenderableType] = []
    facts = ", ".join(
        k if v is True else f"{k} {v}" for k, v in f.items() if v not in (None, False)
    )
    parts.append(Text.assemble((advice.model, "bold"), f"  ({facts})"))
    parts.append(
        Text(f"weights from {w.source}: {w.describe()}; total {_fmt(w.total)}", style="dim")
    )

    parts.append(Text("\n1. Baseline score x weight, per dimension", style="bold"))
    grid = Table(show_edge=False, pad_edge=False, box=None)
    grid.add_column("option", no_wrap=True)
    for t in advice.ranking[0].terms:
        grid.add_column(f"{t.dimension} (x{_fmt(t.weight)})", justify="right", no_wrap=True)
    grid.add_column("weighted sum", justify="right", no_wrap=True)
    grid.add_column(f"/ {_fmt(w.total)}", justify="right", no_wrap=True)
    for s in sorted(advice.ranking, key=lambda s: OPTIONS.index(s.option)):
        cells = [f"{_fmt(t.baseline)} x {_fmt(t.weight)} = {_fmt(t.value)}" for t in s.terms]
        grid.add_row(s.option, *cells, _fmt(s.weighted), f"{s.weighted / s.weight_total:.2f}")
    parts.append(grid)

    parts.append(Text("\n2. Facts that override the arithmetic", style="bold"))
    if not advice.adjustments:
        parts.append(Text("   none: the baseline arithmetic decides"))
    for adj in advice.adjustments:
        extra = ""
        if adj.kind == "bonus":
            extra = f"  (+{_fmt(adj.points)} x weight total {_fmt(w.total)} = +{_fmt(adj.points * w.total)})"
        elif adj.kind == "exclude":
            extra = "  (excluded, whatever its score)"
        parts.append(Text(f"   • {adj.reason}{extra}"))
    for open_fact in advice.open_facts:
        parts.append(Text(f"   ? {open_fact.reason()}", style="" if open_fact.matters else "dim"))
    for open_fact in advice.open_facts:
        parts.append(Text(f"   ? {open_fact.reason()}", style="" if open_fact.matters else "dim"))

    parts.append(Text("\n3. Scores after the facts", style="bold"))
    for i, s in enumerate(advice.ranking, 1):
        total = (
            f"{_fmt(s.weighted)} + {_fmt(s.bonus)} bonus = {_fmt(s.score)}"
            if s.bonus
            else _fmt(s.score)
        )
        line = f"   {i}. {s.option}: {total}  ({s.normalised:.2f} of 5)"
        parts.append(
            Text(line + ("  OUT" if s.excluded else ""), style="dim" if s.excluded else "")
        )

    parts.append(Text("\n4. Pricing NIM", style="bold"))
    p = advice.pricing
    if p is None:
        parts.append(Text("   not priced: NIM is out for this model"))
    else:
        alt = p.alternative
        parts.append(Text(f"   GPUs held in the plan: {p.gpus:.2f} ({p.gpu_note})"))
        parts.append(
            Text(
                f"   licence: {p.gpus:.2f} x {usd(costs.nim_license_per_gpu_year_usd)}/GPU-year = "
                f"{usd(p.licence_per_year_usd)}/year"
            )
        )
        parts.append(
            Text(
                f"   weeks saved over {LABELS[alt]} (the best other option): {_fmt(WEEKS_TO_PRODUCTION[alt])} - "
                f"{_fmt(WEEKS_TO_PRODUCTION['nim'])} = {_fmt(p.weeks_saved)} x {usd(costs.engineer_week_usd)}/week = "
                f"{usd(p.engineering_saved_usd)} once"
            )
        )
        larger = {
            "engineering": "the engineering saved",
            "licence": "the licence",
            "equal": "neither",
        }[p.larger]
        parts.append(Text(f"   larger: {larger}"))

    winner = advice.winner
    parts.append(
        Text.assemble(
            ("\n5. Winner: ", "bold"), (LABELS[winner], f"bold {WINNER_STYLE.get(winner, '')}")
        )
    )
    return Group(*parts)


def render_advise(console: Console, result: AdviseResult) -> None:
    if result.model is not None:
        console.print(explain(result.advices[0], result.costs))
    elif result.advices:
        console.print(advise_table(result.advices))
    else:
        console.print("no models in the inventory")
