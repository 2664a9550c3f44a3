"""Execute a plan's actions on Docker hosts: in the schedule's order, health-gated, in
parallel where that takes nothing away from clients.

The order (fleetctl.core.schedule): every image a change needs is on its host before
anything stops; then removals that retire nothing in use; then one worker per deployment
creates its new replicas and replaces the others `max_surge` at a time (recipes in
fleetctl.ops.replica_steps). A replica that fails its gate stops its deployment's rollout
and reverts the replicas already replaced, from their parked containers, so a deployment
never stays on mixed revisions; a new version that fails leaves nothing of itself behind.
Last, the older versions of a model go, once all of its new ones serve. At most
`max_parallel` container operations run per host, hosts side by side.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol

from fleetctl.core.fleet import Deployment
from fleetctl.core.plan import START_FIRST, Action
from fleetctl.core.schedule import RolloutPolicy, Schedule, Unit, schedule
from fleetctl.ops import interrupt
from fleetctl.ops.rendering import Rendered
from fleetctl.ops.replica_steps import (
    Moved,
    NoRouter,
    PortTakenError,
    ReplicaSteps,
    RouterAPI,
    StepOutcome,
)
from fleetctl.ports import Check, Clock, HostAPI

__all__ = ["Executor", "PortTakenError", "Reporter", "SilentReporter", "StepOutcome", "scrub"]


INTERRUPTED = (
    "not started: the rollout was interrupted (SIGINT or SIGTERM); apply again to finish it"
)


class Reporter(Protocol):
    def step_started(self, action: Action) -> None: ...
    def step_finished(self, outcome: StepOutcome) -> None: ...


class SilentReporter:
    def step_started(self, action: Action) -> None:
        pass

    def step_finished(self, outcome: StepOutcome) -> None:
        pass


#: How a step that lost its Docker host mid-call begins its detail (exit 6, not 7).
UNREACHABLE = "host unreachable"


def describe_failure(exc: BaseException) -> str:
    """One line for a step that raised: a lost connection to the host says so."""
    import requests

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(
            cause, (requests.ConnectionError, ConnectionError, TimeoutError, requests.Timeout)
        ):
            return f"{UNREACHABLE}: {type(cause).__name__}: {str(cause).splitlines()[0][:300] if str(cause) else ''}"
        cause = cause.__cause__ or cause.__context__
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


# Between any two characters of a value a program may have broken the line (a log line
# wrapped at a width, a value printed in chunks), with the next line indented.
_BREAK = r"(?:\r?\n[ \t]*)?"
# A log tail cut at a line boundary can start or end inside a value: fragments this long
# at either end of the text are scrubbed too (shorter ones are mostly coincidence).
MIN_FRAGMENT = 6


def _spread(chars: str) -> str:
    return _BREAK.join(re.escape(c) for c in chars)


@functools.lru_cache(maxsize=64)
def _scrubber(value: str) -> re.Pattern[str]:
    whole = _spread(value)
    if len(value) <= MIN_FRAGMENT:
        return re.compile(whole)
    heads = [_spread(value[:n]) + r"\Z" for n in range(len(value) - 1, MIN_FRAGMENT - 1, -1)]
    tails = [r"\A" + _spread(value[-n:]) for n in range(len(value) - 1, MIN_FRAGMENT - 1, -1)]
    return re.compile("|".join([whole, *heads, *tails]))


def scrub(text: str, secrets: Sequence[str]) -> str:
    """Never let a secret value reach the state, logs or output, even if a container
    printed it, split it over lines, or the text begins or ends inside it."""
    for value in secrets:
        if value and text:
            text = _scrubber(value).sub("***", text)
    return text


@dataclass
class Executor:
    hosts: Mapping[str, HostAPI]
    rendered: Mapping[tuple[str, int], Rendered]
    secrets: Mapping[tuple[str, int], Mapping[str, str]]
    reporter: Reporter
    max_parallel: Mapping[str, int]
    clock: Clock
    check: Check
    port_taken: Callable[[str], bool]
    interval_s: float = 0.5
    router: RouterAPI = field(default_factory=NoRouter)

    def __post_init__(self) -> None:
        self._slots = {h: threading.BoundedSemaphore(n) for h, n in self.max_parallel.items()}
        self._secret_values = sorted(
            {v for s in self.secrets.values() for v in s.values() if v}, key=len, reverse=True
        )

    @property
    def steps(self) -> ReplicaSteps:
        return ReplicaSteps(
            self.hosts, self.router, self.clock, self.interval_s, self.check, self.port_taken
        )

    # -- scheduling ----------------------------------------------------------------------
    def run(
        self,
        actions: Sequence[Action],
        deployments: Sequence[Deployment] = (),
        policies: Mapping[str, RolloutPolicy] | None = None,
    ) -> list[StepOutcome]:
        sched = schedule(actions, deployments, policies)
        outcomes = [
            StepOutcome(a, False, f"skipped: host unreachable ({a.blocked})")
            for a in actions
            if a.mutating and a.blocked
        ]
        missing = self._preflight(sched)
        workers = max(1, min(64, sum(self.max_parallel.values()) + len(sched.units)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes.extend(pool.map(lambda a: self._guarded(a, self.steps.remove), sched.first))
            results = list(
                pool.map(lambda u: self._run_unit(u, missing.get(u.deployment)), sched.units)
            )
            outcomes.extend(o for r in results for o in r)
            failed_models = {
                u.model for u, r in zip(sched.units, results) if any(not o.ok for o in r)
            }
            for model, removals in sched.retiring.items():
                if model in failed_models:
                    why = "kept: the new version of this model did not become ready, so this one still serves"
                    outcomes.extend(StepOutcome(a, False, why) for a in removals)
                else:
                    outcomes.extend(
                        pool.map(lambda a: self._guarded(a, self.steps.remove), removals)
                    )
        return outcomes

    def _preflight(self, sched: Schedule) -> dict[str, str]:
        """Every image a unit needs, on every host it needs it, before anything stops;
        returns the deployments that cannot roll, with the reason."""
        needed: dict[tuple[str, str], list[str]] = {}
        for u in sched.units:
            for a in u.actions:
                r = self.rendered[(a.deployment, a.replica)]
                needed.setdefault((a.host, r.spec.image), []).append(u.deployment)
        problems: dict[str, str] = {}

        def ensure(key: tuple[str, str]) -> None:
            host, image = key
            try:
                self.hosts[host].ensure_image(image)
            except Exception as exc:
                for dep in needed[key]:
                    problems.setdefault(dep, f"image {image} is not available on {host}: {exc}")

        with ThreadPoolExecutor(max_workers=max(1, min(16, len(needed)))) as pool:
            list(pool.map(ensure, needed))
        return problems

    def _guarded(
        self,
        action: Action,
        step: Callable[..., StepOutcome | tuple[StepOutcome, Moved | None]],
        *args: object,
    ) -> StepOutcome:
        outcome, _ = self._guarded_move(action, step, *args)
        return outcome

    def _guarded_move(
        self,
        action: Action,
        step: Callable[..., StepOutcome | tuple[StepOutcome, Moved | None]],
        *args: object,
    ) -> tuple[StepOutcome, Moved | None]:
        slot = self._slots.get(action.host) or threading.BoundedSemaphore(4)
        moved: Moved | None = None
        with slot:
            if interrupt.requested():  # asked to stop: what runs finishes, nothing new starts
                return StepOutcome(
                    action, False, INTERRUPTED, started_at=time.time(), finished_at=time.time()
                ), None
            self.reporter.step_started(action)
            t0 = time.time()
            try:
                result = step(action, *args)
                outcome, moved = result if isinstance(result, tuple) else (result, None)
            except Exception as exc:  # one replica's failure must not stop the others
                outcome = StepOutcome(action, False, describe_failure(exc))
            outcome = self._scrubbed(outcome, t0)
            self.reporter.step_finished(outcome)
            return outcome, moved

    def _scrubbed(self, o: StepOutcome, t0: float) -> StepOutcome:
        """Every outcome's text is scrubbed here, once."""
        return StepOutcome(
            o.action,
            o.ok,
            scrub(o.detail, self._secret_values),
            o.container,
            scrub(o.log_tail, self._secret_values),
            t0,
            time.time(),
        )

    # -- one deployment -------------------------------------------------------------------
    def _run_unit(self, unit: Unit, missing_image: str | None) -> list[StepOutcome]:
        if missing_image:
            return [StepOutcome(a, False, f"not started: {missing_image}") for a in unit.actions]
        steps = self.steps
        outcomes: list[StepOutcome] = []
        if unit.creates:
            with ThreadPoolExecutor(max_workers=len(unit.creates)) as pool:
                outcomes.extend(pool.map(lambda a: self._guarded(a, self._create), unit.creates))
        if interrupt.requested():  # what was created stays (it is ready); the rest waits
            return outcomes + [StepOutcome(a, False, INTERRUPTED) for a in unit.replacements]
        if unit.new_deployment and any(not o.ok for o in outcomes):
            return self._undo_new(unit, outcomes)
        moved: list[Moved] = []
        batches = unit.batches()
        for i, batch in enumerate(batches):
            with ThreadPoolExecutor(max_workers=len(batch)) as pool:
                results = list(pool.map(lambda a: self._guarded_move(a, self._replace), batch))
            moved.extend(m for _, m in results if m is not None)
            outcomes.extend(o for o, _ in results)
            if interrupt.requested():
                # Stop between batches: the replaced ones serve, their parked predecessors
                # are left for the next run to remove (or to restore, if it fails).
                return outcomes + [
                    StepOutcome(a, False, INTERRUPTED) for b in batches[i + 1 :] for a in b
                ]
            if any(not o.ok for o, _ in results):
                rest = [a for b in batches[i + 1 :] for a in b]
                failed = next(o for o, _ in results if not o.ok)
                undone = {(m.action.deployment, m.action.replica) for m in moved}
                kept = [
                    o
                    for o in outcomes
                    if (o.action.deployment, o.action.replica) not in undone or not o.ok
                ]
                return kept + self._revert(moved, rest, failed)
        for m in moved:
            try:
                steps.finish(m)
            except Exception:  # a parked container left behind is planned away next time
                pass
        return outcomes

    def _create(self, a: Action) -> StepOutcome:
        return self.steps.create(
            a,
            self.rendered[(a.deployment, a.replica)],
            self.secrets.get((a.deployment, a.replica), {}),
        )

    def _replace(self, a: Action) -> tuple[StepOutcome, Moved | None]:
        r = self.rendered[(a.deployment, a.replica)]
        secrets = self.secrets.get((a.deployment, a.replica), {})
        if a.strategy == START_FIRST:
            return self.steps.start_first(a, r, secrets)
        return self.steps.stop_first(a, r, secrets)

    def _revert(
        self, moved: list[Moved], rest: list[Action], failed: StepOutcome
    ) -> list[StepOutcome]:
        """Replica `failed` did not pass its gate: every replica already replaced goes
        back to its parked container (the last stable revision, exactly), the rest is not
        started. Reported as failures of this revision, with the reason."""
        why = f"replica #{failed.action.replica} of this revision failed its gate ({failed.detail})"
        out: list[StepOutcome] = []
        for m in reversed(moved):
            t0 = time.time()
            try:
                detail = self.steps.revert(m)
            except Exception as exc:
                detail = f"revert failed: {type(exc).__name__}: {exc}"
            out.append(
                self._scrubbed(StepOutcome(m.action, False, f"{detail}; {why}", m.old_name), t0)
            )
        out.extend(StepOutcome(a, False, f"not started: {why}") for a in rest)
        return out

    def _undo_new(self, unit: Unit, outcomes: list[StepOutcome]) -> list[StepOutcome]:
        """A new version whose replicas did not all become ready leaves none of them: its
        older version keeps every client."""
        failed = next(o for o in outcomes if not o.ok)
        why = f"replica #{failed.action.replica} failed its gate ({failed.detail})"
        out = []
        for o in outcomes:
            if o.ok:
                self.router.drain(
                    self.router.withdraw(
                        o.action.deployment, o.action.replica, o.action.host, o.action.port
                    )
                )
                self.hosts[o.action.host].remove(o.container or "", timeout_s=10)
                out.append(replace(o, ok=False, detail=f"removed again: {why}"))
            else:
                out.append(o)
        out.extend(StepOutcome(a, False, f"not started: {why}") for a in unit.replacements)
        return out
