"""The recipes for one replica, health-gated, with the front doors told at each point.

A new container always starts as `…-next` and takes its final name only once it has
passed its readiness gate, so the name says what is verified even after a kill at any
moment (fleetctl.core.recovery finishes or restores what a kill left).

- create: start as `…-next`, wait until ready, rename, then join the routes.
- start-first: start the successor beside the old replica (as `…-next`, on a fresh port
  on the same host or on another host), wait until ready, move the traffic, drain the
  old one, then **park** it: renamed `…-old` and stopped, kept until its whole
  deployment has rolled, so that a later failure can bring it back exactly; then the
  successor takes the final name.
- stop-first (only with permission: the GPUs cannot hold both): take the old one out of
  the routes, drain and park it, start the successor; on failure restart the old one.
- revert: undo a start-first or stop-first replacement from its parked container.
- remove: leave the routes, drain, remove.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from fleetctl.core import labels as L
from fleetctl.core.plan import Action
from fleetctl.ops.readiness import wait_ready
from fleetctl.ops.rendering import Rendered
from fleetctl.ports import Check, CheckResult, Clock, HostAPI

LOG_TAIL_LINES = 40


class PortTakenError(Exception):
    """The replica's port answers before its container exists."""


class RouterAPI(Protocol):
    """What the steps tell the front doors (fleetctl.ops.routing.Router)."""

    def serve(self, deployment: str, replica: int, url: str) -> str | None: ...
    def withdraw(
        self, deployment: str, replica: int, host: str, port: int | None
    ) -> str | None: ...
    def drain(self, url: str | None) -> None: ...


class NoRouter:
    """A fleet without front doors: nothing to tell."""

    def serve(self, deployment: str, replica: int, url: str) -> str | None:
        return None

    def withdraw(self, deployment: str, replica: int, host: str, port: int | None) -> str | None:
        return None

    def drain(self, url: str | None) -> None:
        pass


@dataclass(frozen=True)
class StepOutcome:
    action: Action
    ok: bool
    detail: str
    container: str | None = None
    log_tail: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0


@dataclass(frozen=True)
class Moved:
    """A replacement that took over; what it takes to undo it."""

    action: Action
    rendered: Rendered
    old_host: str
    old_name: str  # the name the old container had, and gets back on a revert
    parked: str  # the old container, renamed and stopped
    old_url: str | None  # where the old one served
    stop_first: bool = False
    was_running: bool = True  # False: the old one was not serving (a revert only renames it back)


@dataclass
class ReplicaSteps:
    hosts: Mapping[str, HostAPI]
    router: RouterAPI
    clock: Clock
    interval_s: float
    check: Check
    port_taken: Callable[[str], bool]

    # -- helpers ------------------------------------------------------------------------
    def wait(
        self, host: HostAPI, cid: str, r: Rendered, endpoint: str | None = None
    ) -> CheckResult:
        spec = r.spec if endpoint is None else replace(r.spec, endpoint=endpoint)
        return wait_ready(
            spec,
            lambda: host.state(cid),
            timeout_s=spec.startup_timeout_s,
            interval_s=self.interval_s,
            clock=self.clock,
            check=self.check,
        )

    def ensure_port_free(self, r: Rendered) -> None:
        if self.port_taken(r.spec.endpoint):
            raise PortTakenError(
                f"{r.spec.endpoint} already answers before the container started: the port is used by "
                "something fleetctl does not manage; give this host another 'ports' range"
            )

    def fail(self, a: Action, host: HostAPI, cid: str, why: CheckResult) -> StepOutcome:
        tail = host.logs_tail(cid, LOG_TAIL_LINES)
        host.remove(cid, timeout_s=10)
        return StepOutcome(a, False, why.detail, cid, tail)

    def park(self, host: HostAPI, name: str) -> str:
        """Rename a container aside and stop it; a leftover under that name goes first."""
        parked = name + L.OLD_SUFFIX
        host.remove(parked, timeout_s=5)
        host.rename(name, parked)
        host.stop(parked)
        return parked

    # -- recipes --------------------------------------------------------------------------
    def remove(self, a: Action) -> StepOutcome:
        name = a.container or ""
        # A rollout's leftover (`-next`, `-old`) is never in the routes, and it may share
        # its port with the replica that is (a stop-first successor keeps the port):
        # withdrawing by port would take the live replica out of service.
        if not name.endswith((L.TEMP_SUFFIX, L.OLD_SUFFIX)):
            self.router.drain(self.router.withdraw(a.deployment, a.replica, a.host, a.port))
        self.hosts[a.host].remove(name)
        return StepOutcome(a, True, "removed", a.container)

    def create(self, a: Action, r: Rendered, secrets: Mapping[str, str]) -> StepOutcome:
        host = self.hosts[a.host]
        self.ensure_port_free(r)
        cid = host.run(r.name + L.TEMP_SUFFIX, r.spec, r.labels, secrets)
        ready = self.wait(host, cid, r)
        if not ready.ok:
            return self.fail(a, host, cid, ready)
        host.rename(cid, r.name)
        self.router.serve(a.deployment, a.replica, r.spec.endpoint)
        return StepOutcome(a, True, f"ready at {r.spec.endpoint}", r.name)

    def start_first(
        self, a: Action, r: Rendered, secrets: Mapping[str, str]
    ) -> tuple[StepOutcome, Moved | None]:
        host = self.hosts[a.host]
        old_host_name = a.container_host or a.host
        old_host = self.hosts[old_host_name]
        old_name = a.container or r.name
        self.ensure_port_free(r)
        cid = host.run(r.name + L.TEMP_SUFFIX, r.spec, r.labels, secrets)
        ready = self.wait(host, cid, r)
        if not ready.ok:
            return self.fail(a, host, cid, ready), None
        # Traffic moves to the new replica, the old one finishes what it has, then rests.
        old_url = self.router.serve(a.deployment, a.replica, r.spec.endpoint)
        self.router.drain(old_url)
        was_running = old_host.state(old_name) == "running"
        parked = self.park(old_host, old_name)
        host.rename(cid, r.name)
        moved = Moved(a, r, old_host_name, old_name, parked, old_url, was_running=was_running)
        return StepOutcome(
            a, True, f"ready at {r.spec.endpoint}; old container parked", r.name
        ), moved

    def stop_first(
        self, a: Action, r: Rendered, secrets: Mapping[str, str]
    ) -> tuple[StepOutcome, Moved | None]:
        host = self.hosts[a.host]
        old = a.container or r.name
        was_running = host.state(old) == "running"
        old_url = self.router.withdraw(a.deployment, a.replica, a.host, None)
        self.router.drain(old_url)
        parked = self.park(host, old)
        try:
            self.ensure_port_free(r)
            cid = host.run(r.name + L.TEMP_SUFFIX, r.spec, r.labels, secrets)
        except Exception:
            self.restore(host, parked, old, was_running, a, old_url)
            raise
        ready = self.wait(host, cid, r)
        if not ready.ok:
            outcome = self.fail(a, host, cid, ready)
            self.restore(host, parked, old, was_running, a, old_url)
            return StepOutcome(
                a, False, outcome.detail + "; old container restored", cid, outcome.log_tail
            ), None
        host.rename(cid, r.name)
        self.router.serve(a.deployment, a.replica, r.spec.endpoint)
        moved = Moved(a, r, a.host, old, parked, old_url, stop_first=True, was_running=was_running)
        detail = f"ready at {r.spec.endpoint} (old one stopped first: GPUs too full for both)"
        return StepOutcome(a, True, detail, r.name), moved

    def restore(
        self, host: HostAPI, parked: str, name: str, was_running: bool, a: Action, url: str | None
    ) -> None:
        host.rename(parked, name)
        if was_running:
            host.start(name)
            if url:
                self.router.serve(a.deployment, a.replica, url)

    def revert(self, m: Moved) -> str:
        """Bring the parked old container back and retire its successor."""
        a, r = m.action, m.rendered
        new_host = self.hosts[a.host]
        old_host = self.hosts[m.old_host]
        if not m.was_running:
            new_host.remove(r.name, timeout_s=10)
            old_host.rename(m.parked, m.old_name)
            return "reverted: new container removed (the old one was not running)"
        if m.stop_first:  # the successor holds the old one's port: it goes first
            self.router.drain(self.router.withdraw(a.deployment, a.replica, a.host, None))
            new_host.remove(r.name, timeout_s=10)
            self.restore(old_host, m.parked, m.old_name, True, a, m.old_url)
            return "reverted: old container restarted"
        old_host.start(m.parked)
        ready = self.wait(old_host, m.parked, r, endpoint=m.old_url or r.spec.endpoint)
        if not ready.ok:
            return f"revert failed: the old container did not become ready again ({ready.detail})"
        self.router.drain(
            self.router.serve(a.deployment, a.replica, m.old_url) if m.old_url else None
        )
        new_host.remove(r.name, timeout_s=10)
        old_host.rename(m.parked, m.old_name)
        return "reverted: the old container serves again"

    def finish(self, m: Moved) -> None:
        """The deployment rolled: the parked container is no longer needed."""
        self.hosts[m.old_host].remove(m.parked, timeout_s=5)
