"""Live progress of a rollout: one line per deployment."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from fleetctl.core.plan import Action
from fleetctl.ops.rollout import StepOutcome


class RichReporter:
    """Implements the rollout `Reporter` protocol with a rich progress display."""

    def __init__(self, console: Console, actions: Sequence[Action]) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}
        totals: dict[str, int] = {}
        for a in actions:
            if a.mutating:
                totals[a.deployment] = totals.get(a.deployment, 0) + 1
        for dep, n in totals.items():
            self._tasks[dep] = self.progress.add_task(dep, total=n, status="waiting")

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def step_started(self, action: Action) -> None:
        with self._lock:
            verb = {"create": "starting", "recreate": "replacing", "remove": "removing"}.get(
                action.kind.value, ""
            )
            self.progress.update(
                self._tasks[action.deployment], status=f"{verb} #{action.replica} on {action.host}"
            )

    def step_finished(self, outcome: StepOutcome) -> None:
        with self._lock:
            a = outcome.action
            status = "[green]ok[/green]" if outcome.ok else f"[red]failed #{a.replica}[/red]"
            self.progress.update(self._tasks[a.deployment], advance=1, status=status)
