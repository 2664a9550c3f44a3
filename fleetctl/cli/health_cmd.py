"""`fleetctl health`: one sweep for people, cron and Prometheus; `--heal` repairs.

`register(app)` adds the command to a Typer app. The sweep is `fleetctl.ops.health`;
this module shows its result (`fleetctl.results.health`, rendered by
`fleetctl.cli.render`) and the history; the textfile is `fleetctl.cli.health_metrics`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from fleetctl.cli.health_metrics import metrics_registry, write_textfile
from fleetctl.cli.lazy import lazy_module
from fleetctl.cli.options import InventoryOpt, Output, OutputOpt, StateOpt, state_path
from fleetctl.errors import ExitCode
from fleetctl.ops.health import DEFAULT_FAILURES, DEFAULT_TIMEOUT_S
from fleetctl.ops.health.heal import DEFAULT_HEAL_TIMEOUT_S
from fleetctl.ops.health.sweeping import MAX_PROBE_WORKERS
from fleetctl.state.health_store import DEFAULT_RETENTION_DAYS

if TYPE_CHECKING:
    from fleetctl.cli import render
else:  # the renderers pull in the plan model and rich: imported when a command prints
    render = lazy_module("fleetctl.cli.render")

__all__ = ["health", "metrics_registry", "register", "write_textfile"]


def health(
    inventory: Path = InventoryOpt,
    output: Output = OutputOpt,
    textfile: Path | None = typer.Option(
        None,
        "--textfile",
        help="Also write Prometheus textfile-collector metrics to PATH (atomically).",
    ),
    timeout: float = typer.Option(
        DEFAULT_TIMEOUT_S,
        "--timeout",
        min=0.1,
        help="Seconds all of one replica's checks may take together.",
    ),
    failures: int = typer.Option(
        DEFAULT_FAILURES,
        "--failures",
        min=1,
        help="Failing sweeps in a row before a replica is critical.",
    ),
    grace: float | None = typer.Option(
        None,
        "--grace",
        min=0,
        help="Seconds after a start a replica is 'starting' (default: its start-up budget).",
    ),
    heal: bool = typer.Option(
        False, "--heal", help="Repair critical replicas: start, recreate, reload models, restart."
    ),
    heal_timeout: float = typer.Option(
        DEFAULT_HEAL_TIMEOUT_S,
        "--heal-timeout",
        min=1,
        help="Seconds a repaired replica may take to be ready.",
    ),
    concurrency: int = typer.Option(
        MAX_PROBE_WORKERS, "--concurrency", min=1, max=512, help="Replicas probed at once."
    ),
    history: str | None = typer.Option(
        None,
        "--history",
        metavar="NAME",
        help="Show the recorded verdict changes and repairs of NAME (model or name@version).",
    ),
    keep_days: float = typer.Option(
        DEFAULT_RETENTION_DAYS,
        "--keep-days",
        min=0.01,
        help="Days the state keeps verdict changes and repairs.",
    ),
    state: Path | None = StateOpt,
) -> None:
    """Sweep every desired replica: container, readiness, served model, profile, latency, drift.

    Exit codes: 0 ok, 14 degraded (or failing, not yet --failures times), 10 critical,
    6 only hosts unreachable.
    """
    from fleetctl.cli.compose import outside
    from fleetctl.ops.health.sweeping import run_sweep
    from fleetctl.results.health import health_result
    from fleetctl.runtimes.registry import runtime_names

    if history is not None:
        return show_history(inventory, history, output, state)
    options: dict[str, Any] = dict(
        timeout_s=timeout,
        known_runtimes=runtime_names(),
        failures=failures,
        grace_s=grace,
        concurrency=concurrency,
        retention_days=keep_days,
    )
    world = outside()
    if heal:
        from fleetctl.ops.health.heal import sweep_and_heal

        report = sweep_and_heal(
            inventory,
            world,
            state_path=state_path(state, inventory),
            heal_timeout_s=heal_timeout,
            **options,
        )
    else:
        report = run_sweep(
            inventory,
            world.observe,
            state_path=state_path(state, inventory),
            inspectors=world.inspectors,
            **options,
        ).report
    render.show(health_result(report), output)
    # Written whatever the outcome: an unhealthy fleet is when the metrics matter.
    if textfile is not None:
        write_textfile(report, textfile)
    from fleetctl.ops.health import exit_code

    code = exit_code(report)
    if code is not ExitCode.OK:
        raise typer.Exit(int(code))


def show_history(inventory: Path, name: str, output: Output, state: Path | None) -> None:
    from fleetctl.errors import NotFoundError
    from fleetctl.results.health import HealthEventRow, HealthHistoryResult
    from fleetctl.runtimes.inventory import load
    from fleetctl.runtimes.registry import runtime_names
    from fleetctl.state.health_store import HealthMemory

    inv = load(inventory, runtime_names()).inventory
    events = HealthMemory(state_path(state, inventory), inv.fleet).events(name, limit=200)
    if not events:
        raise NotFoundError(
            f"no health history of {name} in {state_path(state, inventory)} (sweeps record verdict changes there)"
        )
    rows = tuple(
        HealthEventRow(
            at=datetime.fromtimestamp(e.at, UTC).isoformat(timespec="seconds"),
            deployment=e.deployment,
            replica=e.replica,
            host=e.host,
            kind=e.kind,
            verdict=e.verdict,
            detail=e.detail,
            latency_ms=e.latency_ms,
        )
        for e in events
    )
    render.show(HealthHistoryResult(name=name, events=rows), output)


def register(app: typer.Typer) -> None:
    """Add `health` to `app`."""
    app.command("health")(health)
