"""Options and helpers shared by every command module."""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from pathlib import Path

import typer

from fleetctl.errors import ExitCode, FleetctlError

DEFAULT_INVENTORY = "inventory/fleet.yaml"


class Output(str, enum.Enum):
    table = "table"
    json = "json"


InventoryOpt = typer.Option(
    DEFAULT_INVENTORY,
    "-f",
    "--inventory",
    help="Inventory file (YAML).",
    envvar="FLEETCTL_INVENTORY",
)
OutputOpt = typer.Option(Output.table, "--output", help="table for people, json for machines.")
# parser=str: a postgresql:// URL must reach `resolve_state_path` as typed (a Path would fold its "//").
StateOpt = typer.Option(
    None,
    "--state",
    help="State: a SQLite file or postgresql://USER@HOST:PORT/DB (default: state/fleetctl.db beside the inventory).",
    envvar="FLEETCTL_STATE",
    parser=str,
)
YesOpt = typer.Option(False, "-y", "--yes", help="Do not ask for confirmation.")
AllowDowntimeOpt = typer.Option(
    False,
    "--allow-downtime",
    help="Permit stop-first replacements where no GPU can hold the old and new replica.",
)


def known_runtimes() -> list[str]:
    from fleetctl.runtimes.registry import runtime_names

    return runtime_names()


def observer() -> Callable:
    from fleetctl.adapters.observe import observe_fleet

    return observe_fleet


def state_path(state: Path | str | None, inventory: Path | None = None):
    """The state location (a SQLite `Path` or a PostgreSQL `DatabaseURL`); by default
    beside `inventory`."""
    from fleetctl.state.paths import resolve_state_path

    return resolve_state_path(str(state) if state else None, inventory)


def confirm(question: str, yes: bool) -> bool:
    """Ask, unless --yes; without a terminal to ask on, refuse rather than guess."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise FleetctlError(
            f"{question} needs confirmation: rerun with --yes (stdin is not a terminal)",
            exit_code=ExitCode.ABORTED,
        )
    return typer.confirm(question, default=False)
