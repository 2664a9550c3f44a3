"""Commands about who gets which version: `release` (a rollback's hold) and `pins`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fleetctl.cli.lazy import lazy_module
from fleetctl.cli.options import InventoryOpt, Output, OutputOpt, StateOpt, observer, state_path

if TYPE_CHECKING:
    from fleetctl.cli import render
else:  # the renderers pull in the plan model and rich: imported when a command prints
    render = lazy_module("fleetctl.cli.render")


def release(
    model: str = typer.Argument(..., help="The held model (see `fleetctl pins`)."),
    inventory: Path = InventoryOpt,
    output: Output = OutputOpt,
    state: Path | None = StateOpt,
) -> None:
    """Delete a model's hold: the next apply follows the inventory again (exit 12: no hold)."""
    from fleetctl.ops.holds import release as do_release
    from fleetctl.results.fleet import ReleaseResult, hold_row

    done = do_release(inventory, model, state_path(state, inventory))
    render.show(ReleaseResult(released=hold_row(done.hold), next_apply=done.next_apply), output)


def pins(
    inventory: Path = InventoryOpt,
    output: Output = OutputOpt,
    state: Path | None = StateOpt,
) -> None:
    """Every customer pinned to a version, and every hold: route, replicas and health."""
    from fleetctl.ops.holds import pins as list_pins
    from fleetctl.results.fleet import pins_result

    rows = list_pins(inventory, state_path(state, inventory), observer())
    render.show(pins_result(rows), output)


def register(app: typer.Typer) -> None:
    for command in (release, pins):
        app.command()(command)
