"""The front doors during a rollout: brought up first, then kept in step with the replicas.

`Router` holds which replica of each deployment should receive traffic, at which URL. A
new replica joins the routes only once it is ready; a replica about to be stopped leaves
them first and is drained (its requests in flight finish) before it goes. Every change is
written into every front door through the Docker API and confirmed by the hash the
server writes once it has loaded the new routes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleetctl.core import labels as L
from fleetctl.core.fleet import Deployment
from fleetctl.core.front_door import (
    LOADED_PATH,
    ROUTES_PATH,
    Backend,
    FrontDoorAction,
    FrontDoorActionKind,
    FrontDoorSite,
    backend_url,
    loaded_routes,
    routes_hash,
)
from fleetctl.core.inventory import Inventory
from fleetctl.core.observed import ObservedFleet
from fleetctl.core.plan import Plan
from fleetctl.core.schedule import model_of
from fleetctl.ops.front_door import routes_for
from fleetctl.ops.readiness import wait_ready
from fleetctl.ports import Check, Clock, HostAPI, StatusReader
from fleetctl.runtimes.front_door import render_front_door

LOAD_TIMEOUT_S = 5.0
POLL_S = 0.01  # a front door loads new routes in a few milliseconds


@dataclass(frozen=True)
class FrontDoorOutcome:
    action: FrontDoorAction
    ok: bool
    detail: str


class Router:
    """Routes shared by every front door of the fleet; thread-safe (steps run in parallel)."""

    def __init__(
        self,
        plan: Plan,
        inv: Inventory,
        hosts: Mapping[str, HostAPI],
        observed: ObservedFleet,
        *,
        status: StatusReader,
        clock: Clock,
        check: Check,
    ) -> None:
        self.plan = plan
        self.inv = inv
        self.hosts = hosts
        self.status = status
        self.clock = clock
        self.check = check
        self.drain_timeout_s = (
            plan.front_door_settings.drain_timeout_s if plan.front_door_settings else 0.0
        )
        self.sites: dict[str, FrontDoorSite] = {
            s.host: s for s in plan.front_door_sites if s.host not in plan.unreachable
        }
        self._lock = threading.Lock()
        self._backends: dict[tuple[str, int], Backend] = {}
        self._wanted = {d.name: d for d in plan.deployments}
        models = {d.model for d in plan.deployments}
        for (dep, replica), found in observed.by_replica().items():
            c = found[0]
            if (
                (dep in self._wanted or model_of(dep) in models)
                and c.running
                and not (c.temporary or c.parked)
                and c.endpoint
            ):
                self._backends[(dep, replica)] = Backend(dep, replica, c.endpoint)
        self.problems: list[str] = []
        self._pushed: bytes | None = None  # the routes every live front door has loaded
        # Hosts whose front door runs and takes routes: those observed running, until
        # `converge_front_doors` says otherwise.
        self._live = {
            h for h, doors in observed.front_doors().items() if any(d.running for d in doors)
        } & set(self.sites)
        # Front doors that already serve exactly these routes need no first push.
        loaded = {d.routes_hash for h in self._live for d in observed.front_doors()[h] if d.running}
        if self._live and len(loaded) == 1:
            now = self.routes()
            if loaded == {routes_hash(now)}:
                self._pushed = now

    @property
    def enabled(self) -> bool:
        return bool(self._live)

    def routes(self) -> bytes:
        """The routes now: older versions of a model serve until its new version can
        take every client (at its full replica count, or at once for a rollback)."""
        serving: dict[str, int] = {}
        for b in self._backends.values():
            serving[b.deployment] = serving.get(b.deployment, 0) + 1
        retiring = sorted(
            {b.deployment for b in self._backends.values() if b.deployment not in self._wanted}
        )
        old = [Deployment(model_of(n), n.rpartition("@")[2], "", "", 1.0) for n in retiring]
        current: dict[str, str] = {}
        for d in self.plan.deployments:
            if d.pinned:
                continue
            n = serving.get(d.name, 0)
            ready = n >= d.replicas or (d.model in self.plan.switch_at_once and n >= 1)
            older = sorted(
                (o for o in old if o.model == d.model), key=lambda o: (serving[o.name], o.version)
            )
            current[d.model] = d.version if ready or not older else older[-1].version
        return routes_for(self.plan, self.inv, self._backends.values(), old, current)

    # -- what the executor calls ---------------------------------------------------------
    def serve(self, deployment: str, replica: int, url: str) -> str | None:
        """Send the replica's traffic to `url` (a replica now ready); returns the URL it
        replaces, if any, which the caller drains before stopping it."""
        with self._lock:
            old = self._backends.get((deployment, replica))
            self._backends[(deployment, replica)] = Backend(deployment, replica, url)
            self._push_locked()
        return old.url if old and old.url != url else None

    def withdraw(self, deployment: str, replica: int, host: str, port: int | None) -> str | None:
        """Take the replica at host:port (any port: None) out of the routes; a leftover
        container of a replica served elsewhere leaves the routes as they are. Returns the
        URL to drain."""
        address = next((h.address for h in self.inv.hosts if h.name == host), None)
        with self._lock:
            current = self._backends.get((deployment, replica))
            if current is None or address is None:
                return None
            if port is not None and current.url != backend_url(address, port):
                return None
            url = current.url
            del self._backends[(deployment, replica)]
            self._push_locked()
        return url

    def drain(self, url: str | None) -> None:
        """Wait until no front door has a request in flight to `url` (bounded)."""
        if not url or not self.enabled:
            return
        deadline = self.clock.monotonic() + self.drain_timeout_s
        for site in (self.sites[h] for h in sorted(self._live)):
            while self.clock.monotonic() < deadline:
                doc = self.status(site.url)
                busy = [
                    b
                    for b in (doc or {}).get("backends", [])
                    if b.get("url") == url and b.get("outstanding", 0) > 0
                ]
                if doc is None or not busy:
                    break
                self.clock.sleep(POLL_S)

    def push(self) -> None:
        with self._lock:
            self._push_locked()

    # -- shipping the routes ---------------------------------------------------------------
    def _push_locked(self) -> None:
        if not self.enabled:
            return
        data = self.routes()
        if data == self._pushed:
            return  # a replica the front doors do not route (or no change): nothing to ship
        want = routes_hash(data)
        everywhere = True
        for host in sorted(self._live):
            api = self.hosts[host]
            name = L.front_door_name(self.inv.fleet)
            try:
                api.put_file(name, ROUTES_PATH, data)
                api.signal(name, "SIGHUP")
                self._await_loaded(api, name, want, self.sites[host].url)
            except (
                Exception
            ) as exc:  # a front door that cannot take routes must not stop the rollout
                self.problems.append(
                    f"front door on {host}: routes not loaded: {type(exc).__name__}: {exc}"
                )
                everywhere = False
        self._pushed = data if everywhere else None

    def _await_loaded(self, api: HostAPI, name: str, want: str, url: str | None = None) -> None:
        """Until the front door says it serves `want`: its status endpoint when it answers
        (milliseconds), else its `loaded` file through the Docker API."""
        deadline = self.clock.monotonic() + LOAD_TIMEOUT_S
        while True:
            got = loaded_routes(url, lambda: api.read_file(name, LOADED_PATH), self.status)
            if got == want:
                return
            if self.clock.monotonic() >= deadline:
                raise TimeoutError(
                    f"still serving routes {got or '?'} instead of {want} after {LOAD_TIMEOUT_S:g} s"
                )
            self.clock.sleep(POLL_S)

    # -- the front doors themselves -------------------------------------------------------
    def converge_front_doors(self, actions: Sequence[FrontDoorAction]) -> list[FrontDoorOutcome]:
        """Create, replace, reload or remove front doors, before any replica changes, so
        that traffic has somewhere to go while replicas move."""
        outcomes = []
        for a in actions:
            if not a.mutating:
                continue
            if a.blocked:
                outcomes.append(
                    FrontDoorOutcome(a, False, f"skipped: host unreachable ({a.blocked})")
                )
                continue
            try:
                outcome = self._converge_one(a)
            except Exception as exc:
                outcome = FrontDoorOutcome(a, False, f"{type(exc).__name__}: {exc}")
            outcomes.append(outcome)
            with self._lock:
                if outcome.ok and a.kind is not FrontDoorActionKind.REMOVE and a.host in self.sites:
                    self._live.add(a.host)
                else:
                    self._live.discard(a.host)
                self._pushed = None  # the next push goes to every front door again
        return outcomes

    def _converge_one(self, a: FrontDoorAction) -> FrontDoorOutcome:
        api = self.hosts[a.host]
        if a.kind is FrontDoorActionKind.REMOVE:
            api.remove(a.container or "", timeout_s=int(self.drain_timeout_s) or 1)
            return FrontDoorOutcome(a, True, "removed")
        if a.kind is FrontDoorActionKind.RELOAD:
            # The push that follows the front doors' convergence ships the routes to every
            # front door at once; shipping them here too would only double the wait.
            return FrontDoorOutcome(a, True, "routes reloaded with the rollout")
        site = self.sites[a.host]
        spec = render_front_door(site)
        name = L.front_door_name(self.inv.fleet)
        labels = L.front_door_labels(
            fleet=self.inv.fleet,
            spec_hash=site.spec_hash(),
            image=site.image,
            port=site.port,
            url=site.url,
        )
        if a.kind is FrontDoorActionKind.RECREATE and a.container:
            # The same name (and usually the same port) cannot be held twice: the old
            # front door goes first. Clients retry a refused connection; replicas are
            # untouched.
            api.remove(a.container, timeout_s=10)
        with self._lock:
            cid = api.run(name, spec, labels, {}, files={ROUTES_PATH: self.routes()})
        ready = wait_ready(
            spec,
            lambda: api.state(cid),
            timeout_s=spec.startup_timeout_s,
            interval_s=0.1,
            clock=self.clock,
            check=self.check,
        )
        if not ready.ok:
            tail = api.logs_tail(cid, 20)
            api.remove(cid, timeout_s=5)
            return FrontDoorOutcome(
                a, False, f"front door not ready: {ready.detail}; {tail.strip()[-300:]}"
            )
        return FrontDoorOutcome(a, True, f"serving at {site.url}")
