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
from typer.core import TyperGroup

from fleetctl.cli.lazy import lazy_module
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
    from typer._click import Command, Context, HelpFormatter

    from fleetctl.cli import render
    from fleetctl.core.plan import Plan
    from fleetctl.results.plan import ExplainGroup
else:  # the renderers pull in the plan model and rich: imported when a command prints
    render = lazy_module("fleetctl.cli.render")


class _Commands(TyperGroup):
    """The app's commands, some of them imported only when they run.

    A command whose module is costly to import (`health` declares its options with the
    sweep's defaults, so importing it imports the whole sweep) is registered as a
    stand-in that carries its one-line summary, for the command list of `--help`; the
    module itself is imported when that command is resolved to run, or to show its own
    help. Every other command of the run then starts without it.
    """

    deferred: dict[str, str] = {}  # command name -> module whose register(app) adds it
    _listing = False

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        self._listing = True  # the command list needs the summaries only
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        # Each command's whole summary, wrapped, instead of cut at the width with "...".
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                summary = (command.short_help or command.help or "").split("\n\n")[0]
                rows.append((name, " ".join(summary.split())))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        module = self.deferred.get(cmd_name)
        if module is not None and not self._listing:
            import importlib

            from typer.main import get_command

            one = typer.Typer(rich_markup_mode=self.rich_markup_mode)  # the app's help style
            importlib.import_module(module).register(one)
            self.commands[cmd_name] = get_command(one)  # a one-command app is that command
            self.deferred = {n: m for n, m in self.deferred.items() if n != cmd_name}
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    cls=_Commands,
    name="fleetctl",
    help="Control plane for a fleet of GPU inference models (NIM, Triton) on Docker hosts.",
    no_args_is_help=True,
    # --install-completion / --show-completion for bash, zsh, fish and PowerShell.
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain help and usage errors: rich's help panels cost more than the rest of `--help`.
    rich_markup_mode=None,
    # Inherited by every command and sub-command: `fleetctl plan -h` as well as --help.
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        # The version is written once, in pyproject.toml; the installed metadata carries it.
        sys.stdout.write(f"fleetctl {version('fleetctl')}\n")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        callback=_print_version,
        help="Print fleetctl's version and exit.",
    ),
) -> None:
    """Control plane for a fleet of GPU inference models (NIM, Triton) on Docker hosts."""


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
    from fleetctl.core.loader import problem_json
    from fleetctl.core.resolve import deployments
    from fleetctl.errors import InventoryError
    from fleetctl.ops.secrets import refuse_secret_values
    from fleetctl.results.plan import ProblemRow, ValidateResult
    from fleetctl.runtimes.inventory import load

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
    from fleetctl.core.runtime_blocks import inventory_schema
    from fleetctl.runtimes.registry import builtin_catalog

    data = inventory_schema(builtin_catalog())
    data["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    data["title"] = "fleetctl inventory"
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if str(out) == "-":
        sys.stdout.write(text)
        return
    from fleetctl.fsutil import atomic_write_text

    try:
        atomic_write_text(out, text)
    except OSError as exc:
        raise FleetctlError(f"cannot write {out}: {exc.strerror or exc}") from None
    render.show(SchemaWritten(written=str(out)), output)


def _deferred(name: str, module: str, summary: str) -> None:
    """Register `name` from `module` without importing it (see `_Commands`); `summary`
    is the first paragraph of the command's docstring (a unit test holds them equal)."""

    def stand_in() -> None:  # replaced by the real command before anything runs
        raise AssertionError(f"{name} ran without its module")

    app.command(name, help=summary, add_help_option=False)(stand_in)
    _Commands.deferred[name] = module


HEALTH_SUMMARY = (
    "Sweep every desired replica: container, readiness, served model, profile, latency, drift."
)

# Commands defined in their own modules, registered in the order `--help` lists them.
from fleetctl.cli import decide_cmds, hold_cmds, rollout_cmds  # noqa: E402

rollout_cmds.register(app)
hold_cmds.register(app)
_deferred("health", "fleetctl.cli.health_cmd", HEALTH_SUMMARY)
decide_cmds.register(app)

from fleetctl.cli import state_cmds  # noqa: E402

state_cmds.register(app)


def main() -> None:
    """Entry point: run the app behind the single error boundary."""
    code: int = 0
    try:
        # Standalone mode handles usage errors (exit 2), --help and typer.Exit itself;
        # everything else propagates here.
        # One name in usage lines and completion, also as `python -m fleetctl`.
        app(prog_name="fleetctl")
    except FleetctlError as exc:
        sys.stderr.writelines(f"{_error_prefix()}{line}\n" for line in exc.message.splitlines())
        code = int(exc.exit_code)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            sys.stderr.write(f"{exc.code}\n")
    _exit_now(code)


def _error_prefix() -> str:
    """'error: ', red on a terminal (unless NO_COLOR or TERM=dumb): written directly, since
    an error that ends a command early should not wait for rich to import."""
    import os

    plain = not sys.stderr.isatty() or "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb"
    return "error: " if plain else "\x1b[31merror:\x1b[0m "


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
