"""The command line: parse, call one function, render its result.

`main()` is the single error boundary: a `FleetctlError` prints its one-line message(s)
on stderr and exits with its documented code; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fleetctl.cli import render
from fleetctl.cli.options import (
    InventoryOpt,
    Output,
    OutputOpt,
    StateOpt,
    known_runtimes,
    observer,
    state_path,
)
from fleetctl.errors import ExitCode, FleetctlError

if TYPE_CHECKING:
    from fleetctl.core.plan import Plan
    from fleetctl.results.plan import ExplainGroup

app = typer.Typer(
    name="fleetctl",
    help="Control plane for a fleet of GPU inference models (NIM, Triton) on Docker hosts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def plan(
    inventory: Path = InventoryOpt,
    output: Output = OutputOpt,
    offline: bool = typer.Option(False, "--offline", help="Plan without contacting any host."),
    explain: str | None = typer.Option(
        None,
        "--explain",
        help="Why each replica of NAME (model or name@version) went where it went.",
    ),
    out: Path | None = typer.Option(None, "-o", "--out", help="Save the plan to FILE for `apply`."),
    detailed_exitcode: bool = typer.Option(
        False,
        "--detailed-exitcode",
        help=f"Exit {int(ExitCode.CHANGES_PENDING)} when the plan has changes.",
    ),
    show_all: bool = typer.Option(
        False, "--all", help="Show every GPU and action, however large the fleet."
    ),
    state: Path | None = StateOpt,
    placement_budget: float | None = typer.Option(
        None,
        "--placement-budget",
        min=0,
        help="Seconds (CP-SAT deterministic time) the exact search may spend deciding and improving placement; 0: heuristic only (default 0.2).",
    ),
) -> None:
    """Place every replica on GPUs and show the changes, before anything moves (holds honoured)."""
    from dataclasses import replace

    from fleetctl.ops import downtime
    from fleetctl.ops.planfile import save_plan
    from fleetctl.ops.planning import plan_inventory
    from fleetctl.results.plan import plan_result

    observe = None if offline else observer()
    result = plan_inventory(
        inventory, observe, known_runtimes(), state_path(state, inventory), placement_budget
    )
    # A stop-first replacement shows, before anyone applies it, for about how long.
    result = replace(
        result, plan=downtime.with_estimates(result.plan, state_path(state, inventory))
    )
    p = result.plan
    if out is not None:
        save_plan(out, result)
    explained = _explain(p, explain) if explain else None
    render.show(
        plan_result(p, explained, show_all=show_all, saved_to=None if out is None else str(out)),
        output,
    )
    if not p.placement.feasible:
        raise typer.Exit(int(ExitCode.INFEASIBLE))
    if detailed_exitcode and p.has_changes:
        raise typer.Exit(int(ExitCode.CHANGES_PENDING))


def _explain(p: Plan, name: str) -> list[ExplainGroup]:
    """Why each replica of `name` went where it went; a model in a shared Triton server
    is placed as that server, so the server is explained."""
    from fleetctl.core.explain import explain
    from fleetctl.errors import NotFoundError
    from fleetctl.results.plan import ExplainGroup

    names: list[str] = [d.name for d in p.deployments if d.name == name or d.model == name]
    names += [
        s
        for s, members in p.server_members.items()
        if any(m.name == name or m.model == name for m in members)
    ]
    if not names:
        raise NotFoundError(f"no deployment or model named {name!r} in the inventory")
    return [
        ExplainGroup(
            notes=tuple(
                f"{m.name} is served by the shared Triton server {dep}, placed as one:"
                for m in p.server_members.get(dep, ())
                if name in (m.name, m.model)
            ),
            replicas=tuple(explain(dep, p.deployments, p.hosts, p.placement)),
        )
        for dep in names
    ]


@app.command()
def validate(inventory: Path = InventoryOpt, output: Output = OutputOpt) -> None:
    """Check the inventory: syntax, types, unknown keys, names, sizes, selectors, values that cannot work, secrets by value."""
    from fleetctl.core.loader import load, problem_json
    from fleetctl.core.resolve import deployments
    from fleetctl.errors import InventoryError
    from fleetctl.ops.secrets import refuse_secret_values
    from fleetctl.results.plan import ProblemRow, ValidateResult

    try:
        loaded = load(inventory, known_runtimes())
        refuse_secret_values(loaded)
    except InventoryError as exc:
        if output is Output.json:  # the problems as data on stdout; the lines still on stderr
            render.print_json(
                ValidateResult(
                    valid=False,
                    file=str(inventory),
                    problems=tuple(ProblemRow(**problem_json(p)) for p in exc.problems),
                )
            )
        raise
    deps = deployments(loaded.inventory)
    render.show(
        ValidateResult(
            valid=True,
            file=str(inventory),
            hosts=len(loaded.inventory.hosts),
            deployments=tuple(d.name for d in deps),
        ),
        output,
    )


@app.command()
def schema(
    out: Path = typer.Option(
        Path("inventory/fleet.schema.json"),
        "-o",
        "--out",
        help="Where to write the JSON Schema ('-' for stdout).",
    ),
    output: Output = OutputOpt,
    results: Path | None = typer.Option(
        None,
        "--results",
        metavar="DIR",
        help="Write the JSON Schemas of the commands' --output json into DIR (docs/schemas).",
    ),
) -> None:
    """Write the inventory's JSON Schema so that editors check the YAML as it is typed
    (with --results DIR: the schemas of the commands' JSON output instead)."""
    from fleetctl.results.plan import SchemaWritten

    if results is not None:
        from fleetctl.results.schemas import write_schemas

        files = write_schemas(results)
        render.show(SchemaWritten(written=str(results), files=tuple(map(str, files))), output)
        return
    from fleetctl.core.inventory import Inventory

    data = Inventory.model_json_schema()
    data["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    data["title"] = "fleetctl inventory"
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if str(out) == "-":
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    render.show(SchemaWritten(written=str(out)), output)


# Commands defined in their own modules, registered in the order `--help` lists them.
from fleetctl.cli import decide_cmds, health_cmd, hold_cmds, rollout_cmds  # noqa: E402

rollout_cmds.register(app)
hold_cmds.register(app)
health_cmd.register(app)
decide_cmds.register(app)

from fleetctl.cli import state_cmds  # noqa: E402

state_cmds.register(app)


def main() -> None:
    """Entry point: run the app behind the single error boundary."""
    from rich.text import Text

    code: int = 0
    try:
        # Standalone mode handles usage errors (exit 2), --help and typer.Exit itself;
        # everything else propagates here.
        app()
    except FleetctlError as exc:
        err = render.stderr_console()
        for line in exc.message.splitlines():
            err.print(Text.assemble(("error: ", "red"), line), soft_wrap=True)
        code = int(exc.exit_code)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            sys.stderr.write(f"{exc.code}\n")
    _exit_now(code)


def _exit_now(code: int) -> None:
    """Exit without tearing the interpreter down.

    Every command has closed its database, lock and threads by the time it returns;
    unwinding the modules of pydantic, SQLAlchemy and the docker SDK would only add
    about 0.25 s to every run.
    """
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
