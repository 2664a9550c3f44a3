"""`fleetctl state …`: commands about the state itself (`state migrate`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fleetctl.cli.lazy import lazy_module
from fleetctl.cli.options import InventoryOpt, Output, OutputOpt, StateOpt, state_path

if TYPE_CHECKING:
    from fleetctl.cli import render
else:  # the renderers pull in the plan model and rich: imported when a command prints
    render = lazy_module("fleetctl.cli.render")

state_app = typer.Typer(
    help="The state itself: copy a SQLite state into PostgreSQL.", no_args_is_help=True
)


@state_app.command("migrate")
def migrate(
    to: str = typer.Option(
        ...,
        "--to",
        help="The PostgreSQL state to copy into: postgresql://USER@HOST:PORT/DB (empty).",
    ),
    inventory: Path = InventoryOpt,
    output: Output = OutputOpt,
    state: Path | None = StateOpt,
) -> None:
    """Copy the SQLite state (--state, or the one beside the inventory) into an empty PostgreSQL state, ids kept."""
    from fleetctl.results.fleet import MigrateResult
    from fleetctl.state.paths import parse_state_location
    from fleetctl.state.transfer import migrate_state

    done = migrate_state(state_path(state, inventory), parse_state_location(to, origin="--to"))
    copied = MigrateResult(
        source=done.source,
        target=done.target,
        schema_version=done.schema_version,
        rows=dict(done.rows),
    )
    render.show(copied, output)


def register(app: typer.Typer) -> None:
    app.add_typer(state_app, name="state")
