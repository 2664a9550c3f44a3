"""The plan's model changes in running shared Triton servers: unload, load, reload.

Run after the containers' steps, one at a time, in host and server order. The front doors already
route the plan's final set of models, so an unloaded model has left the routes before
it goes; a reload keeps the old version serving until the new one is ready, and a
failed reload leaves it serving (Triton's own guarantee): the step fails with Triton's
reason and the rollout reports it (exit 7).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from fleetctl.core.front_door import backend_url
from fleetctl.core.plan import Action, ActionKind, Plan
from fleetctl.core.triton_servers import members_of
from fleetctl.ops.replica_steps import StepOutcome
from fleetctl.ops.rollout import Reporter
from fleetctl.ports import TritonControl

ORDER = {ActionKind.UNLOAD: 0, ActionKind.RELOAD: 1, ActionKind.LOAD: 2}


def run_model_changes(
    actions: Sequence[Action],
    plan: Plan,
    addresses: Mapping[str, str],
    reporter: Reporter,
    triton: TritonControl,
    failed: Sequence[tuple[str, int]] = (),
    stop_requested: Callable[[], bool] = lambda: False,
) -> list[StepOutcome]:
    """`failed`: replicas whose container step failed; their model changes are skipped
    (the server they were for is not there)."""
    overrides = {m.identity(): m.config for d in plan.deployments for m in members_of(d)}
    outcomes: list[StepOutcome] = []
    for a in sorted(
        actions, key=lambda a: (a.host, a.deployment, a.replica, ORDER[a.kind], a.model)
    ):
        if a.blocked:
            outcomes.append(StepOutcome(a, False, f"skipped: host unreachable ({a.blocked})"))
            continue
        if (a.deployment, a.replica) in failed:
            outcomes.append(StepOutcome(a, False, "skipped: the server did not start"))
            continue
        if stop_requested():
            break
        reporter.step_started(a)
        started = time.time()
        endpoint = backend_url(addresses[a.host], a.port or 0)
        try:
            if a.kind is ActionKind.UNLOAD:
                triton.unload(endpoint, a.model)
                detail = f"unloaded {a.model}"
            else:
                triton.load(endpoint, a.model, a.member, overrides.get(a.member, {}))
                detail = f"{'reloaded' if a.kind is ActionKind.RELOAD else 'loaded'} {a.model} ({a.member.partition('/')[0]})"
            ok = True
        except (
            Exception
        ) as exc:  # Triton's refusal, or the server gone: this step fails, not the run
            ok = False
            kept = "; the loaded version still serves" if a.kind is ActionKind.RELOAD else ""
            detail = f"Triton did not {a.kind.value} {a.model}: {exc}{kept}"
        outcome = StepOutcome(
            a, ok, detail, container=a.container, started_at=started, finished_at=time.time()
        )
        reporter.step_finished(outcome)
        outcomes.append(outcome)
    return outcomes
