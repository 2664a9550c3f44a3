"""`fleetctl advise` and `fleetctl report`: decision support over the offline plan.

`register(app)` adds both commands to a Typer app, so that the main app and tests can
carry them alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fleetctl.cli.lazy import lazy_module
from fleetctl.cli.options import InventoryOpt, Output, OutputOpt
from fleetctl.errors import FleetctlError, NotFoundError

if TYPE_CHECKING:
    from fleetctl.cli import render
    from fleetctl.ops.planning import PlanResult
else:  # the renderers pull in the plan model and rich: imported when a command prints
    render = lazy_module("fleetctl.cli.render")

WeightsOpt = typer.Option(
    None,
    "--weights",
    help="Weights NAME=N,... over control, time_to_prod, eng_cost, lock_in_freedom; "
    "overrides the inventory's team.weights (dimensions not named keep theirs).",
)


def _offline_plan(inventory: Path) -> PlanResult:
    from fleetctl.ops.planning import plan_inventory
    from fleetctl.runtimes.registry import runtime_names

    return plan_inventory(inventory, None, runtime_names())


def advise(
    model: str | None = typer.Argument(None, help="Explain one model step by step."),
    inventory: Path = InventoryOpt,
    output: Output = OutputOpt,
    weights: str | None = WeightsOpt,
) -> None:
    """Rank build, Triton and NIM for each model, with the facts that decided."""
    from fleetctl.decide.advise import advise_all
    from fleetctl.decide.holdings import holdings
    from fleetctl.decide.weights import resolve_weights
    from fleetctl.results.decide import advise_result

    result = _offline_plan(inventory)
    inv = result.loaded.inventory
    w = resolve_weights(weights, inv.team.weights)
    models = list(inv.models)
    if model is not None:
        models = [m for m in models if m.name == model]
        if not models:
            known = ", ".join(m.name for m in inv.models) or "none"
            raise NotFoundError(f"no model named {model!r} in {inventory} (models: {known})")
    advices = advise_all(models, w, inv.costs, holdings(result.plan))
    render.show(advise_result(advices, w, inv.costs, one=model is not None), output)


def report(
    inventory: Path = InventoryOpt,
    output: Output = OutputOpt,
    html: Path | None = typer.Option(
        None, "--html", help="Also write a self-contained HTML page to FILE."
    ),
) -> None:
    """What the fleet runs, how it packs, what the SLAs forced and what it costs."""
    from fleetctl.decide.report import build_report
    from fleetctl.results.decide import report_result

    result = _offline_plan(inventory)
    r = build_report(result.loaded.inventory, result.plan, str(inventory))
    if html is not None:
        from fleetctl.cli.render.html import render_html
        from fleetctl.fsutil import atomic_write_text

        try:
            atomic_write_text(html, render_html(r))
        except OSError as exc:
            raise FleetctlError(f"cannot write {html}: {exc.strerror or exc}") from None
    render.show(report_result(r, None if html is None else str(html)), output)


def register(app: typer.Typer) -> None:
    """Add `advise` and `report` to `app`."""
    app.command("advise")(advise)
    app.command("report")(report)
