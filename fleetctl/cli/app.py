"""The command line: parse, call one function, render its result.

`main()` is the single error boundary: a `FleetctlError` prints its one-line message(s)
on stderr and exits with its documented code; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from fleetctl.cli import render
from fleetctl.errors import ExitCode, FleetctlError

app = typer.Typer(
    name="fleetctl",
    help="Control plane for a fleet of GPU inference models (NIM, Triton) on Docker hosts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Output(str, enum.Enum):
    table = "table"
    json = "json"


InventoryOpt = typer.Option(
    "inventory/fleet.yaml", "-f", "--inventory", help="Inventory file (YAML).", envvar="FLEETCTL_INVENTORY"
)
OutputOpt = typer.Option(Output.table, "--output", help="table for people, json for machines.")


def _known_runtimes() -> list[str]:
    from fleetctl.runtimes.registry import runtime_names

    return runtime_names()


@app.command()
def plan(
    inventory: Path = InventoryOpt,
    output: Output = OutputOpt,
    offline: bool = typer.Option(False, "--offline", help="Plan without contacting any host."),
    explain: Optional[str] = typer.Option(None, "--explain", help="Why each replica of NAME (model or name@version) went where it went."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Save the plan to FILE for `apply`."),
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode", help=f"Exit {int(ExitCode.CHANGES_PENDING)} when the plan has changes."
    ),
    show_all: bool = typer.Option(False, "--all", help="Show every GPU and action, however large the fleet."),
) -> None:
    """Place every replica on GPUs and show the changes, before anything moves."""
    from fleetctl.core.plan import plan_to_json
    from fleetctl.ops.planning import plan_inventory
    from fleetctl.ops.planfile import save_plan

    observe = None if offline else _observer()
    result = plan_inventory(inventory, observe, _known_runtimes())
    p = result.plan
    if out is not None:
        save_plan(out, result)
    if output is Output.json:
        data = plan_to_json(p)
        if explain:
            data["explain"] = _explain_json(p, explain)
        render.print_json(data)
    else:
        console = render.stdout_console()
        render.render_plan(console, p, show_all)
        if explain:
            _render_explain(console, p, explain)
        if out is not None:
            console.print(f"plan saved to {out}: apply it with `fleetctl apply --plan {out}`")
    if not p.placement.feasible:
        raise typer.Exit(int(ExitCode.INFEASIBLE))
    if detailed_exitcode and p.has_changes:
        raise typer.Exit(int(ExitCode.CHANGES_PENDING))


def _explain_targets(p, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    from fleetctl.errors import NotFoundError

    names = [d.name for d in p.deployments if d.name == name or d.model == name]
    if not names:
        raise NotFoundError(f"no deployment or model named {name!r} in the inventory")
    return names


def _explain_json(p, name: str) -> list[dict]:  # type: ignore[no-untyped-def]
    from dataclasses import asdict

    from fleetctl.core.explain import explain

    out = []
    for dep in _explain_targets(p, name):
        out.extend(asdict(e) for e in explain(dep, p.deployments, p.hosts, p.placement))
    return out


def _render_explain(console, p, name: str) -> None:  # type: ignore[no-untyped-def]
    from fleetctl.core.explain import explain

    for dep in _explain_targets(p, name):
        for e in explain(dep, p.deployments, p.hosts, p.placement):
            console.print()
            console.print(e.render() if hasattr(e, "render") else str(e))


def _observer():  # type: ignore[no-untyped-def]
    from fleetctl.adapters.observe import observe_fleet

    return observe_fleet


@app.command()
def validate(inventory: Path = InventoryOpt, output: Output = OutputOpt) -> None:
    """Check the inventory: syntax, types, unknown keys, names, sizes, selectors."""
    from fleetctl.core.resolve import deployments
    from fleetctl.ops.planning import load_inventory

    loaded = load_inventory(inventory, _known_runtimes())
    deps = deployments(loaded.inventory)
    if output is Output.json:
        render.print_json(
            {"valid": True, "file": str(inventory), "hosts": len(loaded.inventory.hosts), "deployments": [d.name for d in deps]}
        )
    else:
        render.stdout_console().print(
            f"[green]✓[/green] {inventory}: {len(loaded.inventory.hosts)} hosts, {len(deps)} deployments"
        )


@app.command()
def schema(
    out: Path = typer.Option(Path("inventory/fleet.schema.json"), "-o", "--out", help="Where to write the JSON Schema ('-' for stdout)."),
    output: Output = OutputOpt,
) -> None:
    """Write the inventory's JSON Schema so that editors check the YAML as it is typed."""
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
    if output is Output.json:
        render.print_json({"written": str(out)})
    else:
        render.stdout_console().print(f"wrote {out}")


StateOpt = typer.Option(None, "--state", help="State database (default state/fleetctl.db).", envvar="FLEETCTL_STATE")
YesOpt = typer.Option(False, "-y", "--yes", help="Do not ask for confirmation.")


def _state_path(state: Optional[Path]) -> Path:
    from fleetctl.state.paths import resolve_state_path

    return resolve_state_path(str(state) if state else None)


def _confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise FleetctlError(f"{question} needs confirmation: rerun with --yes (stdin is not a terminal)", exit_code=ExitCode.ABORTED)
    return typer.confirm(question, default=False)


class _Progress:
    """The rollout reporter for the CLI, started once the user said yes: a live display
    on a terminal, one line per finished step otherwise (logs, CI, cron)."""

    def __init__(self, console) -> None:  # type: ignore[no-untyped-def]
        self.console = console
        self.live = None

    def start(self, actions) -> None:  # type: ignore[no-untyped-def]
        if not self.console.is_terminal:
            return
        from fleetctl.cli.progress import RichReporter

        self.live = RichReporter(self.console, actions)
        self.live.__enter__()

    def step_started(self, action) -> None:  # type: ignore[no-untyped-def]
        if self.live:
            self.live.step_started(action)

    def step_finished(self, outcome) -> None:  # type: ignore[no-untyped-def]
        if self.live:
            self.live.step_finished(outcome)
            return
        a = outcome.action
        took = outcome.finished_at - outcome.started_at
        status = "ok    " if outcome.ok else "FAILED"
        self.console.print(
            f"{status} {a.kind.value} {a.deployment}#{a.replica} on {a.host} ({took:.1f} s)", markup=False, highlight=False
        )

    def close(self) -> None:
        if self.live:
            self.live.__exit__(None, None, None)


@app.command()
def apply(
    inventory: Path = InventoryOpt,
    plan_file: Optional[Path] = typer.Option(None, "--plan", help="Apply a plan saved by `plan -o FILE` (refused if the fleet changed)."),
    output: Output = OutputOpt,
    yes: bool = YesOpt,
    state: Optional[Path] = StateOpt,
) -> None:
    """Converge the hosts: launch, replace and remove containers, health-gated."""
    from fleetctl.ops import applying

    console = render.stderr_console() if output is Output.json else render.stdout_console()
    progress = _Progress(console)

    def confirm(p) -> bool:  # type: ignore[no-untyped-def]
        if output is Output.table:
            render.render_plan(console, p)
        # A saved plan was already reviewed when it was made.
        ok = _confirm(f"Apply {len(p.changes)} change(s)?", yes or plan_file is not None)
        if ok:
            progress.start(p.actions)
        return ok

    try:
        result = applying.apply(
            inventory,
            state_path=_state_path(state),
            observe=_observer(),
            confirm=confirm,
            reporter=progress,
            plan_file=plan_file,
        )
    finally:
        progress.close()
    _report_apply(console, result, output)


@app.command()
def rollback(
    deployment: str = typer.Argument(..., help="The deployment, NAME@VERSION (e.g. chat-llm@v3)."),
    to: Optional[int] = typer.Option(None, "--to", help="Revision number to restore (default: the one before the current)."),
    inventory: Path = InventoryOpt,
    output: Output = OutputOpt,
    yes: bool = YesOpt,
    state: Optional[Path] = StateOpt,
) -> None:
    """Restore an exact earlier revision of one deployment (see `history NAME@VERSION`)."""
    from fleetctl.ops.rollback import rollback as do_rollback

    console = render.stderr_console() if output is Output.json else render.stdout_console()
    progress = _Progress(console)

    def confirm(p, number: int) -> bool:  # type: ignore[no-untyped-def]
        if output is Output.table:
            render.render_actions(console, p, show_keep=False)
        ok = _confirm(f"Roll {deployment} back to revision {number} ({len(p.changes)} change(s))?", yes)
        if ok:
            progress.start(p.actions)
        return ok

    try:
        result, number = do_rollback(
            inventory, deployment, to=to, state_path=_state_path(state), observe=_observer(), confirm=confirm, reporter=progress
        )
    finally:
        progress.close()
    if output is Output.table and not result.failed and not result.noop:
        console.print(
            f"{deployment} is at revision {number}. The inventory still says otherwise: "
            "update it, or the next apply rolls forward again."
        )
    _report_apply(console, result, output)


@app.command()
def history(
    deployment: Optional[str] = typer.Argument(None, help="NAME@VERSION: its revisions instead of the rollouts."),
    limit: int = typer.Option(20, "--limit", help="How many rollouts to show."),
    output: Output = OutputOpt,
    state: Optional[Path] = StateOpt,
) -> None:
    """Past rollouts, or the revisions of one deployment."""
    from fleetctl.ops.rollback import history as read_history

    data = read_history(_state_path(state), deployment, limit)
    if output is Output.json:
        render.print_json(data)
    else:
        render.render_history(render.stdout_console(), data)


def _report_apply(console, result, output: Output) -> None:  # type: ignore[no-untyped-def]
    from fleetctl.core.plan import plan_to_json

    failed = result.failed
    if output is Output.json:
        render.print_json(
            {
                "changed": not result.noop,
                "rollout_id": result.rollout_id,
                "steps": [
                    {
                        "action": o.action.kind.value,
                        "deployment": o.action.deployment,
                        "replica": o.action.replica,
                        "host": o.action.host,
                        "ok": o.ok,
                        "detail": o.detail,
                        "container": o.container,
                        "log_tail": o.log_tail,
                    }
                    for o in result.outcomes
                ],
                "plan": plan_to_json(result.plan),
            }
        )
    elif result.noop:
        console.print("[green]nothing to do:[/green] every replica is up to date")
    else:
        for o in failed:
            console.print(f"[red]✗ {o.action.kind.value} {o.action.deployment}#{o.action.replica} on {o.action.host}:[/red] {o.detail}")
            if o.log_tail:
                console.print("[dim]  last log lines of the new container:[/dim]")
                for line in o.log_tail.rstrip().splitlines()[-15:]:
                    console.print(f"  [dim]{line}[/dim]", markup=False)
        ok = len(result.outcomes) - len(failed)
        console.print(f"rollout {result.rollout_id}: {ok} step(s) ok, {len(failed)} failed")
    if failed:
        if all(o.action.blocked for o in failed):
            raise typer.Exit(int(ExitCode.HOST_UNREACHABLE))
        raise typer.Exit(int(ExitCode.ROLLOUT_FAILED))


@app.command()
def status(inventory: Path = InventoryOpt, output: Output = OutputOpt) -> None:
    """Deployments, versions, hosts and GPUs, container state and endpoints."""
    from fleetctl.ops.planning import load_inventory
    from fleetctl.ops.status import fleet_status

    loaded = load_inventory(inventory)
    report = fleet_status(loaded.inventory, _observer()(loaded.inventory))
    if output is Output.json:
        render.print_json(report.to_json())
    else:
        render.render_status(render.stdout_console(), report)


@app.command()
def down(
    inventory: Path = InventoryOpt,
    output: Output = OutputOpt,
    yes: bool = YesOpt,
    state: Optional[Path] = StateOpt,
) -> None:
    """Remove every managed container on the inventory's hosts."""
    from fleetctl.ops import applying

    console = render.stderr_console() if output is Output.json else render.stdout_console()

    def confirm(removals) -> bool:  # type: ignore[no-untyped-def]
        if output is Output.table:
            for a in removals:
                console.print(f"[red]remove[/red] {a.container} ({a.deployment}#{a.replica}) on {a.host}")
        return _confirm(f"Remove {len(removals)} container(s)?", yes)

    result = applying.down(inventory, state_path=_state_path(state), observe=_observer(), confirm=confirm)
    if output is Output.json:
        render.print_json({"removed": [o.action.container for o in result.outcomes if o.ok], "failed": [o.detail for o in result.failed]})
    else:
        n = sum(1 for o in result.outcomes if o.ok)
        console.print(f"removed {n} container(s)" if result.outcomes else "nothing to remove")
    if result.failed:
        raise typer.Exit(int(ExitCode.ROLLOUT_FAILED))


from fleetctl.cli import decide_cmds  # noqa: E402 (commands defined in their own module)

decide_cmds.register(app)

from fleetctl.cli import health_cmd  # noqa: E402 (commands defined in their own module)

health_cmd.register(app)


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
