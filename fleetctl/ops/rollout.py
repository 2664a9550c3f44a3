"""Execute a plan's actions on Docker hosts, health-gated and in parallel.

Each replica change follows one of three recipes:
- create: start under its final name, wait until ready; on failure remove it.
- recreate, start-first: start the new container under a temporary name (and a fresh
  port), wait until ready, then remove the old one and take its name. Not ready in time:
  remove the new one; the old one never stopped serving.
- recreate, stop-first (the GPUs cannot hold both): set the old one aside, stop it, start
  the new one; on failure remove the new one and restart the old one.
Removals run first, then everything else; at most `max_parallel` operations per host,
hosts side by side.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

from fleetctl.adapters import labels as L
from fleetctl.adapters.docker_host import HostAPI
from fleetctl.adapters.probes import CheckResult, Clock, SystemClock, port_answers, probe, wait_ready
from fleetctl.core.plan import START_FIRST, Action, ActionKind
from fleetctl.ops.rendering import Rendered

LOG_TAIL_LINES = 40


class PortTakenError(Exception):
    """The replica's port answers before its container exists."""


@dataclass(frozen=True)
class StepOutcome:
    action: Action
    ok: bool
    detail: str
    container: str | None = None
    log_tail: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0


class Reporter(Protocol):
    def step_started(self, action: Action) -> None: ...
    def step_finished(self, outcome: StepOutcome) -> None: ...


class RouterAPI(Protocol):
    """What the executor tells the front doors (fleetctl.ops.routing.Router)."""

    def serve(self, deployment: str, replica: int, url: str) -> str | None: ...
    def withdraw(self, deployment: str, replica: int, host: str, port: int | None) -> str | None: ...
    def drain(self, url: str | None) -> None: ...


class _NoRouter:
    def serve(self, deployment: str, replica: int, url: str) -> str | None:
        return None

    def withdraw(self, deployment: str, replica: int, host: str, port: int | None) -> str | None:
        return None

    def drain(self, url: str | None) -> None:
        pass


_NO_ROUTER = _NoRouter()


class SilentReporter:
    def step_started(self, action: Action) -> None:
        pass

    def step_finished(self, outcome: StepOutcome) -> None:
        pass


def scrub(text: str, secrets: Sequence[str]) -> str:
    """Never let a secret value reach the state, logs or output, even if a container printed it."""
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    return text


@dataclass
class Executor:
    hosts: Mapping[str, HostAPI]
    rendered: Mapping[tuple[str, int], Rendered]
    secrets: Mapping[tuple[str, int], Mapping[str, str]]
    reporter: Reporter
    max_parallel: Mapping[str, int]
    clock: Clock = SystemClock()
    interval_s: float = 0.5
    check: Callable = probe  # type: ignore[type-arg]
    port_taken: Callable[[str], bool] = port_answers
    router: RouterAPI = field(default_factory=lambda: _NO_ROUTER)

    def __post_init__(self) -> None:
        self._slots = {h: threading.BoundedSemaphore(n) for h, n in self.max_parallel.items()}
        self._secret_values = sorted({v for s in self.secrets.values() for v in s.values() if v}, key=len, reverse=True)

    # -- scheduling ----------------------------------------------------------------
    def run(self, actions: Sequence[Action]) -> list[StepOutcome]:
        todo = [a for a in actions if a.mutating and not a.blocked]
        skipped = [
            StepOutcome(a, False, f"skipped: host unreachable ({a.blocked})") for a in actions if a.mutating and a.blocked
        ]
        removals = [a for a in todo if a.kind is ActionKind.REMOVE]
        changes = [a for a in todo if a.kind is not ActionKind.REMOVE]
        workers = max(1, min(64, sum(self.max_parallel.values())))
        outcomes: list[StepOutcome] = list(skipped)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for phase in (removals, changes):
                outcomes.extend(pool.map(self._guarded, phase))
        return outcomes

    def _guarded(self, action: Action) -> StepOutcome:
        slot = self._slots.get(action.host) or threading.BoundedSemaphore(4)
        with slot:
            self.reporter.step_started(action)
            t0 = time.time()
            try:
                outcome = self._do(action)
            except Exception as exc:  # one replica's failure must not stop the others
                outcome = StepOutcome(action, False, f"{type(exc).__name__}: {exc}")
            outcome = StepOutcome(  # every outcome's text is scrubbed here, once
                outcome.action,
                outcome.ok,
                scrub(outcome.detail, self._secret_values),
                outcome.container,
                scrub(outcome.log_tail, self._secret_values),
                t0,
                time.time(),
            )
            self.reporter.step_finished(outcome)
            return outcome

    def _do(self, a: Action) -> StepOutcome:
        if a.kind is ActionKind.REMOVE:
            self.router.drain(self.router.withdraw(a.deployment, a.replica, a.host, a.port))
            self.hosts[a.host].remove(a.container or "")
            return StepOutcome(a, True, "removed", a.container)
        r = self.rendered[(a.deployment, a.replica)]
        secrets = self.secrets.get((a.deployment, a.replica), {})
        if a.kind is ActionKind.CREATE:
            return self._create(a, r, secrets)
        if a.strategy == START_FIRST:
            return self._start_first(a, r, secrets)
        return self._stop_first(a, r, secrets)

    # -- recipes -------------------------------------------------------------------
    def _wait(self, host: HostAPI, cid: str, r: Rendered) -> CheckResult:
        return wait_ready(
            r.spec,
            lambda: host.state(cid),
            timeout_s=r.spec.startup_timeout_s,
            interval_s=self.interval_s,
            clock=self.clock,
            check=self.check,
        )

    def _ensure_port_free(self, r: Rendered) -> None:
        if self.port_taken(r.spec.endpoint):
            raise PortTakenError(
                f"{r.spec.endpoint} already answers before the container started: the port is used by "
                "something fleetctl does not manage; give this host another 'ports' range"
            )

    def _fail(self, a: Action, host: HostAPI, cid: str, why: CheckResult) -> StepOutcome:
        tail = host.logs_tail(cid, LOG_TAIL_LINES)
        host.remove(cid, timeout_s=10)
        return StepOutcome(a, False, why.detail, cid, tail)

    def _create(self, a: Action, r: Rendered, secrets: Mapping[str, str]) -> StepOutcome:
        host = self.hosts[a.host]
        self._ensure_port_free(r)
        cid = host.run(r.name, r.spec, r.labels, secrets)
        ready = self._wait(host, cid, r)
        if not ready.ok:
            return self._fail(a, host, cid, ready)
        self.router.serve(a.deployment, a.replica, r.spec.endpoint)
        return StepOutcome(a, True, f"ready at {r.spec.endpoint}", r.name)

    def _start_first(self, a: Action, r: Rendered, secrets: Mapping[str, str]) -> StepOutcome:
        host = self.hosts[a.host]
        old_host = self.hosts[a.container_host] if a.container_host else host
        self._ensure_port_free(r)
        if a.container_host:
            # Another engine: the final name is free there, no temporary name needed.
            cid = host.run(r.name, r.spec, r.labels, secrets)
        else:
            cid = host.run(r.name + L.TEMP_SUFFIX, r.spec, r.labels, secrets)
        ready = self._wait(host, cid, r)
        if not ready.ok:
            return self._fail(a, host, cid, ready)
        # Traffic moves to the new replica, the old one finishes what it has, then goes.
        self.router.drain(self.router.serve(a.deployment, a.replica, r.spec.endpoint))
        old_host.remove(a.container or "")
        if not a.container_host:
            host.rename(cid, r.name)
        return StepOutcome(a, True, f"ready at {r.spec.endpoint}; old container replaced", r.name)

    def _stop_first(self, a: Action, r: Rendered, secrets: Mapping[str, str]) -> StepOutcome:
        host = self.hosts[a.host]
        old = a.container or r.name
        was_running = host.state(old) == "running"
        aside = r.name + L.OLD_SUFFIX
        old_url = self.router.withdraw(a.deployment, a.replica, a.host, self._old_port(a))
        self.router.drain(old_url)
        host.rename(old, aside)
        if was_running:
            host.stop(aside)
        try:
            self._ensure_port_free(r)
            cid = host.run(r.name, r.spec, r.labels, secrets)
        except Exception:
            self._restore(host, aside, r.name, was_running)
            self._serve_again(a, old_url)
            raise
        ready = self._wait(host, cid, r)
        if not ready.ok:
            outcome = self._fail(a, host, cid, ready)
            self._restore(host, aside, r.name, was_running)
            self._serve_again(a, old_url)
            return StepOutcome(a, False, outcome.detail + "; old container restored", cid, outcome.log_tail)
        self.router.serve(a.deployment, a.replica, r.spec.endpoint)
        host.remove(aside)
        return StepOutcome(a, True, f"ready at {r.spec.endpoint} (old one stopped first: GPUs too full for both)", r.name)

    @staticmethod
    def _old_port(a: Action) -> int | None:
        """Stop-first replaces whatever serves the replica now, whatever its port."""
        return None

    def _serve_again(self, a: Action, url: str | None) -> None:
        if url:
            self.router.serve(a.deployment, a.replica, url)

    @staticmethod
    def _restore(host: HostAPI, aside: str, name: str, was_running: bool) -> None:
        host.rename(aside, name)
        if was_running:
            host.start(name)
