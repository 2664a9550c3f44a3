"""Commands that read or change the hosts: apply, rollback, history, status, down."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from fleetctl.cli.lazy import lazy_module
from fleetctl.cli.options import (
    AllowDowntimeOpt,
    InventoryOpt,
    Output,
    OutputOpt,
    StateOpt,
    YesOpt,
    observer,
    state_path,
)
from fleetctl.cli.options import confirm as ask
from fleetctl.errors import ExitCode
from fleetctl.ops import interrupt

if TYPE_CHECKING:
    from rich.console import Console

    from fleetctl.cli import render
    from fleetctl.results.fleet import ApplyResult
else:  # the renderers pull in the plan model and rich: imported when a command prints
    render = lazy_module("fleetctl.cli.render")


class _Progress:
    """The rollout reporter for the CLI, started once the user said yes: a live display
    on a terminal, one line per finished step otherwise (logs, CI, cron)."""

    def __init__(self, console) -> None:
        self.console = console
        self.live: Any = None  # a RichReporter while a terminal shows progress

    def start(self, actions) -> None:
        if not self.console.is_terminal:
            return
        from fleetctl.cli.progress import RichReporter

        self.live = RichReporter(self.console, actions)
        self.live.__enter__()

    def step_started(self, action) -> None:
        if self.live:
            self.live.step_started(action)

    def step_finished(self, outcome) -> None:
        if self.live:
            self.live.step_finished(outcome)
            return
        a = outcome.action
        took = outcome.finished_at - outcome.started_at
        status = "ok    " if outcome.ok else "FAILED"
        self.console.print(
            f"{status} {a.kind.value} {a.deployment}#{a.replica} on {a.host} ({took:.1f} s)",
            markup=False,
            highlight=False,
        )

    def close(self) -> None:
        if self.live:
            self.live.__exit__(None, None, None)


def _stopping(console) -> None:
    render.stderr_console().print(
        "stopping: the steps in flight finish and are recorded; no new step starts (again to exit at once)",
        markup=False,
        highlight=False,
    )


def apply(
    inventory: Path = InventoryOpt,
    plan_file: Path | None = typer.Option(
        None, "--plan", help="Apply a plan saved by `plan -o FILE` (refused if the fleet changed)."
    ),
    output: Output = OutputOpt,
    yes: bool = YesOpt,
    state: Path | None = StateOpt,
    allow_downtime: bool = AllowDowntimeOpt,
) -> None:
    """Converge the hosts: launch, replace and remove containers, health-gated."""
    from fleetctl.cli.compose import outside
    from fleetctl.ops import applying

    console = render.stderr_console() if output is Output.json else render.stdout_console()
    progress = _Progress(console)

    def confirm(p) -> bool:
        if output is Output.table:
            render.render_plan(console, p)
        # A saved plan was already reviewed when it was made.
        ok = ask(f"Apply {len(p.changes)} change(s)?", yes or plan_file is not None)
        if ok:
            progress.start(p.actions)
        return ok

    try:
        with interrupt.graceful(lambda: _stopping(console)):
            result = applying.apply(
                inventory,
                state_path=state_path(state, inventory),
                outside=outside(),
                confirm=confirm,
                reporter=progress,
                plan_file=plan_file,
                allow_downtime=allow_downtime,
            )
    finally:
        progress.close()
    from fleetctl.results.fleet import ApplyResult, apply_fields

    _report_apply(console, ApplyResult(**apply_fields(result)), output)


def rollback(
    target: str = typer.Argument(
        ...,
        metavar="MODEL[@VERSION]",
        help="MODEL@VERSION: that version for every customer; MODEL: one stable revision back.",
    ),
    to_revision: int | None = typer.Option(
        None,
        "--to-revision",
        help="Revision number of the deployment to restore (see `history MODEL@VERSION`).",
    ),
    to: int | None = typer.Option(None, "--to", hidden=True, help="Old name of --to-revision."),
    force: bool = typer.Option(
        False, "--force", help="Also restore a revision that is not stable (failed or rolled back)."
    ),
    inventory: Path = InventoryOpt,
    output: Output = OutputOpt,
    yes: bool = YesOpt,
    state: Path | None = StateOpt,
    allow_downtime: bool = AllowDowntimeOpt,
) -> None:
    """Make one recorded revision the version every customer of a model gets, and hold it there."""
    from fleetctl.cli.compose import outside
    from fleetctl.ops.rollback import rollback as do_rollback

    if to is not None and to_revision is not None and to != to_revision:
        raise typer.BadParameter(
            f"--to {to} and --to-revision {to_revision} disagree", param_hint="--to-revision"
        )
    number_wanted = to_revision if to_revision is not None else to
    console = render.stderr_console() if output is Output.json else render.stdout_console()
    progress = _Progress(console)

    def confirm(p, number: int) -> bool:
        if output is Output.table:
            render.render_actions(console, p, show_keep=False)
            render.render_notes(console, p)
        ok = ask(f"Roll {target} back to revision {number} ({len(p.changes)} change(s))?", yes)
        if ok:
            progress.start(p.actions)
        return ok

    try:
        with interrupt.graceful(lambda: _stopping(console)):
            done = do_rollback(
                inventory,
                target,
                to=number_wanted,
                force=force,
                state_path=state_path(state, inventory),
                outside=outside(),
                confirm=confirm,
                reporter=progress,
                allow_downtime=allow_downtime,
            )
    finally:
        progress.close()
    from fleetctl.results.fleet import RollbackResult, apply_fields, hold_row

    result = done.result
    rolled = RollbackResult(
        **apply_fields(result),
        model=done.model,
        deployment=done.deployment,
        revision=done.revision,
        hold=None if done.hold is None else hold_row(done.hold),
    )
    if output is Output.json:
        _report_apply(console, rolled, output)
        return
    try:
        if result.noop:
            console.print(
                f"nothing to change: {done.deployment} revision {done.revision} already serves {done.model}"
            )
        else:
            _report_apply(console, rolled, output)
    finally:
        if done.hold is not None:  # recorded once every replica step succeeded
            console.print(
                f"{done.model} is held at {done.deployment} (revision {done.revision}): plan and apply keep it there "
                f"until `fleetctl release {done.model}` or the inventory's version of {done.model} changes.",
                markup=False,
            )


def history(
    deployment: str | None = typer.Argument(
        None, help="NAME@VERSION: its revisions instead of the rollouts."
    ),
    limit: int = typer.Option(20, "--limit", help="How many rollouts to show."),
    output: Output = OutputOpt,
    state: Path | None = StateOpt,
    inventory: Path = InventoryOpt,
) -> None:
    """Past rollouts, or the revisions of one deployment (of the state beside the inventory, or --state)."""
    from fleetctl.ops.history import history as read_history

    data = read_history(state_path(state, inventory), deployment, limit)
    # Only now: without a state the answer above comes before the result types load.
    from fleetctl.results.fleet import history_result

    render.show(history_result(data), output)


def _report_apply(console: Console, shown: ApplyResult, output: Output) -> None:
    """Show an apply's (or rollback's) result, then exit with the code its outcome needs."""
    result = shown.outcome
    failed = result.failed
    doors_failed = result.failed_front_doors
    render.show(shown, output, console)
    if interrupt.requested():
        render.stderr_console().print(
            f"interrupted: the steps in flight finished and rollout {result.rollout_id} records what ran; "
            "apply again to finish",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(interrupt.EXIT_INTERRUPTED)
    if doors_failed and not failed:
        blocked = all(d.action.blocked for d in doors_failed)
        raise typer.Exit(int(ExitCode.HOST_UNREACHABLE if blocked else ExitCode.ROLLOUT_FAILED))
    if failed:
        from fleetctl.ops.rollout import UNREACHABLE

        if all(o.action.blocked or o.detail.startswith(UNREACHABLE) for o in failed):
            raise typer.Exit(int(ExitCode.HOST_UNREACHABLE))
        raise typer.Exit(int(ExitCode.ROLLOUT_FAILED))


def status(
    inventory: Path = InventoryOpt, output: Output = OutputOpt, state: Path | None = StateOpt
) -> None:
    """Deployments, versions, hosts and GPUs, container state and endpoints."""
    from fleetctl.errors import FleetctlError
    from fleetctl.ops.planning import build_plan, read_holds, with_retired_hosts
    from fleetctl.ops.status import fleet_status
    from fleetctl.results.fleet import status_result
    from fleetctl.runtimes.inventory import load

    loaded = load(inventory)
    observed = observer()(with_retired_hosts(loaded.inventory, state_path(state)))
    try:
        # Against what should run: the inventory, with rollback holds honoured.
        plan = build_plan(loaded, observed, holds=read_holds(state_path(state, inventory)))
        routes_hash: str | None = plan.routes_hash
        wanted = list(plan.deployments)
    except FleetctlError:
        routes_hash, wanted = None, None  # status still shows what runs
    report = fleet_status(loaded.inventory, observed, routes_hash, wanted)
    render.show(status_result(report), output)


def down(
    inventory: Path = InventoryOpt,
    output: Output = OutputOpt,
    yes: bool = YesOpt,
    state: Path | None = StateOpt,
) -> None:
    """Remove every managed container on the inventory's hosts."""
    from fleetctl.cli.compose import outside
    from fleetctl.ops import down as removing

    console = render.stderr_console() if output is Output.json else render.stdout_console()

    def confirm(removals) -> bool:
        if output is Output.table:
            for a in removals:
                console.print(
                    f"[red]remove[/red] {a.container} ({a.deployment}#{a.replica}) on {a.host}"
                )
        return ask(f"Remove {len(removals)} container(s)?", yes)

    result = removing.down(
        inventory, state_path=state_path(state, inventory), outside=outside(), confirm=confirm
    )
    from fleetctl.results.fleet import DownResult

    removed = DownResult(
        removed=tuple(o.action.container for o in result.outcomes if o.ok and o.action.container),
        failed=tuple(o.detail for o in result.failed),
        outcomes=len(result.outcomes),
    )
    render.show(removed, output, console)
    if result.failed:
        raise typer.Exit(int(ExitCode.ROLLOUT_FAILED))


def register(app: typer.Typer) -> None:
    for command in (apply, rollback, history, status, down):
        app.command()(command)
