"""`health`: one sweep over the fleet, made for cron and the Prometheus textfile collector.

The sweep observes the hosts and plans, so that every desired replica is known with the
container that serves it and the endpoint and checks its runtime renders. Running
containers are probed once, concurrently, each within a time budget. Everything after
the probes is pure: `targets`, `classify_replica`, `classify`, `exit_code` and
`report_to_json` take values and return values. The Prometheus textfile and the table are
rendered in `fleetctl.cli.health_cmd`.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from fleetctl.core.observed import ObservedContainer, ObservedFleet
from fleetctl.core.plan import Action, ActionKind, Plan
from fleetctl.errors import ExitCode, HostUnreachableError
from fleetctl.runtimes.spec import ContainerSpec

if TYPE_CHECKING:
    from fleetctl.core.front_door import FrontDoorSite
    from fleetctl.core.inventory import Inventory
    from fleetctl.ops.planning import Observer

DEFAULT_TIMEOUT_S = 5.0
MAX_PROBE_WORKERS = 32
# A probe that honours its budget returns well within it; this slack only catches a
# client library that ignores its own timeout, so that one stuck socket cannot hang cron.
PROBE_GRACE_S = 2.0


class ReplicaState(str, Enum):
    HEALTHY = "healthy"  # container running, every readiness check passed
    UNHEALTHY = "unhealthy"  # container running, a readiness check failed
    STOPPED = "stopped"  # container exists but is not running
    MISSING = "missing"  # no container for the replica
    UNKNOWN = "unknown"  # the host that would tell is unreachable


class DeploymentState(str, Enum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    check: str | None = None  # description of the check that failed
    latency_s: float | None = None


# (spec, budget in seconds) -> result; the sweep's only contact with the replicas.
Probe = Callable[[ContainerSpec, float], ProbeResult]
ReplicaKey = tuple[str, int]


@dataclass(frozen=True)
class Target:
    """A desired replica and what the sweep can look at for it (pure value)."""

    deployment: str
    replica: int
    host: str  # where its container runs, else where the plan puts it ("" if unplaced)
    container: ObservedContainer | None = None
    spec: ContainerSpec | None = None  # rendered for the running container's port
    drift: str | None = None  # why the plan would recreate it
    unreachable: str | None = None  # why it cannot be seen at all
    note: str = ""  # why there is no container, when known

    @property
    def key(self) -> ReplicaKey:
        return (self.deployment, self.replica)

    @property
    def probeable(self) -> bool:
        c = self.container
        return self.unreachable is None and c is not None and c.running and self.spec is not None


@dataclass(frozen=True)
class ReplicaHealth:
    deployment: str
    replica: int
    host: str
    state: ReplicaState
    detail: str
    endpoint: str = ""
    container: str = ""
    container_state: str = ""
    check: str | None = None
    latency_s: float | None = None
    drift: str | None = None


@dataclass(frozen=True)
class DeploymentHealth:
    deployment: str
    desired: int
    replicas: tuple[ReplicaHealth, ...]

    @property
    def healthy(self) -> int:
        return sum(r.state is ReplicaState.HEALTHY for r in self.replicas)

    @property
    def state(self) -> DeploymentState:
        if self.healthy >= self.desired:
            return DeploymentState.OK
        if self.healthy:
            return DeploymentState.DEGRADED
        # With no replica confirmed, an unseen one may well be serving: "down" would lie.
        if any(r.state is ReplicaState.UNKNOWN for r in self.replicas):
            return DeploymentState.UNKNOWN
        return DeploymentState.DOWN

    @property
    def drift(self) -> tuple[str, ...]:
        return tuple(f"#{r.replica}: {r.drift}" for r in self.replicas if r.drift)


@dataclass(frozen=True)
class HostHealth:
    host: str
    reachable: bool
    error: str | None = None


@dataclass(frozen=True)
class FrontDoorHealth:
    host: str
    url: str
    state: ReplicaState
    detail: str
    routes_current: bool = False


@dataclass(frozen=True)
class HealthReport:
    swept_at: float  # epoch seconds when the sweep started
    duration_s: float
    timeout_s: float
    hosts: tuple[HostHealth, ...]
    deployments: tuple[DeploymentHealth, ...]
    front_doors: tuple[FrontDoorHealth, ...] = ()

    @property
    def replicas(self) -> list[ReplicaHealth]:
        return [r for d in self.deployments for r in d.replicas]

    def count(self, state: ReplicaState) -> int:
        return sum(r.state is state for r in self.replicas)


# -- targets (pure) ----------------------------------------------------------------------
def targets(plan: Plan, inventory: "Inventory", observed: ObservedFleet) -> list[Target]:
    """Every desired replica, with its container and a spec to probe it by."""
    from fleetctl.ops.rendering import shared_gpus

    shared = shared_gpus(plan)
    by_key = {(a.deployment, a.replica): a for a in plan.actions if a.kind is not ActionKind.REMOVE}
    containers = {(c.host, c.name): c for c in observed.containers()}
    unplaced = {(u.deployment, u.replica): u for u in plan.placement.unplaced}
    out = []
    for d in plan.deployments:
        for replica in range(d.replicas):
            action = by_key.get((d.name, replica))
            if action is None:
                reasons = unplaced.get((d.name, replica))
                note = "not placed: " + "; ".join(reasons.reasons) if reasons and reasons.reasons else "not placed"
                out.append(_unseen(plan, d.name, replica, "", note))
                continue
            if action.kind is ActionKind.CREATE:
                if action.blocked:
                    why = f"host {action.host} unreachable: {action.blocked}"
                    out.append(Target(d.name, replica, action.host, unreachable=why))
                else:
                    out.append(_unseen(plan, d.name, replica, action.host, "no container"))
                continue
            host = action.container_host or action.host
            c = containers.get((host, action.container or ""))
            if c is None:  # the plan only names containers it observed; kept for safety
                out.append(_unseen(plan, d.name, replica, host, "no container"))
                continue
            drift = action.reason if action.kind is ActionKind.RECREATE else None
            spec = _spec_for(plan, inventory, action, c, shared) if c.running else None
            out.append(Target(d.name, replica, c.host, container=c, spec=spec, drift=drift))
    return out


def _unseen(plan: Plan, deployment: str, replica: int, host: str, note: str) -> Target:
    """No container found: unknown when a host it may live on could not be asked."""
    d = plan.deployment(deployment)
    dark = sorted(h.name for h in plan.hosts if h.name in plan.unreachable and h.matches(d.selector))
    if dark:
        why = "; ".join(f"host {h} unreachable: {plan.unreachable[h]}" for h in dark)
        return Target(deployment, replica, host, unreachable=f"no container on reachable hosts ({why})")
    return Target(deployment, replica, host, note=note)


def _spec_for(
    plan: Plan, inventory: "Inventory", action: Action, c: ObservedContainer, shared: set[tuple[str, int]]
) -> ContainerSpec:
    from fleetctl.ops.rendering import render_action

    # The container that serves is the one to probe: a recreate may plan a fresh port or
    # host, but until it runs the old container's port is where the answers come from.
    if c.port is not None:
        action = replace(action, host=c.host, port=c.port, gpus=c.gpus or action.gpus)
    spec = render_action(plan, inventory, action, None, shared).spec
    if c.port is None and c.endpoint:
        spec = replace(spec, endpoint=c.endpoint)
    return spec


# -- classification (pure) ---------------------------------------------------------------
def classify_replica(t: Target, probe: ProbeResult | None) -> ReplicaHealth:
    c = t.container
    base: dict[str, Any] = dict(
        deployment=t.deployment,
        replica=t.replica,
        host=t.host,
        endpoint=t.spec.endpoint if t.spec else (c.endpoint if c else ""),
        container=c.name if c else "",
        container_state=c.state if c else "",
        drift=t.drift,
    )
    if t.unreachable is not None:
        return ReplicaHealth(state=ReplicaState.UNKNOWN, detail=t.unreachable, **base)
    if c is None:
        return ReplicaHealth(state=ReplicaState.MISSING, detail=t.note or "no container", **base)
    if not c.running:
        return ReplicaHealth(state=ReplicaState.STOPPED, detail=f"container {c.name} is {c.state or 'not running'}", **base)
    if probe is None:
        return ReplicaHealth(state=ReplicaState.UNHEALTHY, detail="not probed: no endpoint known", **base)
    state = ReplicaState.HEALTHY if probe.ok else ReplicaState.UNHEALTHY
    check = None if probe.ok else probe.check
    return ReplicaHealth(state=state, detail=probe.detail, check=check, latency_s=probe.latency_s, **base)


def classify(plan: Plan, ts: Sequence[Target], probes: Mapping[ReplicaKey, ProbeResult]) -> tuple[DeploymentHealth, ...]:
    by_dep: dict[str, list[ReplicaHealth]] = {}
    for t in ts:
        by_dep.setdefault(t.deployment, []).append(classify_replica(t, probes.get(t.key)))
    return tuple(
        DeploymentHealth(d.name, d.replicas, tuple(sorted(by_dep.get(d.name, []), key=lambda r: r.replica)))
        for d in plan.deployments
    )


def hosts_of(inventory: "Inventory", observed: ObservedFleet) -> tuple[HostHealth, ...]:
    out = []
    for h in inventory.hosts:
        o = observed.hosts.get(h.name)
        out.append(HostHealth(h.name, o.reachable, o.error) if o else HostHealth(h.name, False, "not observed"))
    return tuple(out)


def exit_code(report: HealthReport) -> ExitCode:
    """0 all healthy; 10 any replica known not to serve; 6 when only unseen hosts stand in the way."""
    bad = (ReplicaState.UNHEALTHY, ReplicaState.STOPPED, ReplicaState.MISSING)
    if any(r.state in bad for r in report.replicas) or any(f.state in bad for f in report.front_doors):
        return ExitCode.UNHEALTHY
    if report.count(ReplicaState.UNKNOWN) or any(not h.reachable for h in report.hosts):
        return ExitCode.HOST_UNREACHABLE
    return ExitCode.OK


# -- probing ------------------------------------------------------------------------------
def http_probe(spec: ContainerSpec, timeout_s: float) -> ProbeResult:
    """The runtime's own checks, in order, sharing one budget.

    Unlike apply's gate, a failure does not stop the sweep of checks: Triton's server
    readiness fails as soon as one model is not ready, and only the model checks that
    follow it say which one.
    """
    from fleetctl.adapters.probes import run_check

    deadline = time.monotonic() + timeout_s
    failures: list[tuple[str, str]] = []
    for check in spec.health:
        left = deadline - time.monotonic()
        what = check.description or f"{check.kind} {check.target}"
        if left <= 0:
            if not failures:  # after a failure, checks left unrun add nothing
                failures.append((what, f"{what}: not reached within {timeout_s:g} s"))
            break
        result = run_check(spec.endpoint, check, left)
        if not result.ok:
            failures.append((what, result.detail))
    if not failures:
        return ProbeResult(True, "ready")
    return ProbeResult(False, "; ".join(detail for _, detail in failures), failures[0][0])


def preload_probe_clients() -> None:
    """Import `http_probe`'s clients now: inside the first probe they would add a few
    hundred milliseconds to that replica's latency."""
    import httpx  # noqa: F401
    import tritonclient.http  # noqa: F401


def probe_targets(ts: Sequence[Target], probe: Probe, timeout_s: float) -> dict[ReplicaKey, ProbeResult]:
    """Probe every running replica at once; each answer carries its own latency."""
    todo = [t for t in ts if t.probeable]
    if not todo:
        return {}

    def one(t: Target) -> ProbeResult:
        assert t.spec is not None
        started = time.monotonic()
        try:
            r = probe(t.spec, timeout_s)
        except Exception as exc:  # one replica's failure must not end the sweep
            r = ProbeResult(False, f"probe failed: {type(exc).__name__}: {exc}"[:300])
        return replace(r, latency_s=time.monotonic() - started)

    workers = min(MAX_PROBE_WORKERS, len(todo))
    # Past MAX_PROBE_WORKERS replicas, probes run in waves; the last wave starts late.
    budget = timeout_s * -(-len(todo) // workers) + PROBE_GRACE_S
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="health-probe")
    try:
        futures = {t.key: pool.submit(one, t) for t in todo}
        wait(list(futures.values()), timeout=budget)
        out = {}
        for key, f in futures.items():
            if f.done():
                out[key] = f.result()
            else:
                out[key] = ProbeResult(False, f"no answer within {timeout_s:g} s", latency_s=budget)
        return out
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


# -- the sweep ----------------------------------------------------------------------------
def sweep(
    path: str | Path,
    observe: "Observer",
    probe: Probe = http_probe,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    known_runtimes: list[str] | None = None,
    state_path: Path | None = None,
) -> HealthReport:
    """Load, observe, plan (with the state's rollback holds honoured), probe, classify."""
    from fleetctl.core.loader import load
    from fleetctl.ops.planning import build_plan

    swept_at = time.time()
    started = time.monotonic()
    loaded = load(path, known_runtimes)
    inv = loaded.inventory
    observed = observe(inv)
    hosts = hosts_of(inv, observed)
    dark_auto = [h for h in hosts if not h.reachable and inv.host(h.host).gpus == "auto"]
    if dark_auto:
        # Their GPUs are discovered on the host, so without them there is no plan to
        # measure against; the hosts are the problem, and the exit code says so.
        errors = "; ".join(f"{h.host}: {h.error}" for h in dark_auto)
        raise HostUnreachableError(f"host(s) with 'gpus: auto' unreachable, cannot tell what should run there ({errors})")
    from fleetctl.ops.planning import read_holds

    plan = build_plan(loaded, observed, holds=read_holds(state_path))
    ts = targets(plan, inv, observed)
    with ThreadPoolExecutor(max_workers=1) as background:  # front doors beside the replicas
        doors_later = background.submit(front_door_health, plan, observed, probe, timeout_s)
        probes = probe_targets(ts, probe, timeout_s)
        doors = doors_later.result()
    return HealthReport(
        swept_at=swept_at,
        duration_s=time.monotonic() - started,
        timeout_s=timeout_s,
        hosts=hosts,
        deployments=classify(plan, ts, probes),
        front_doors=doors,
    )


def front_door_health(plan: Plan, observed: ObservedFleet, probe: Probe, timeout_s: float) -> tuple[FrontDoorHealth, ...]:
    """Each host's front door: its container, its own status endpoint, and whether it
    serves the routes the plan says it should."""
    from fleetctl.runtimes.front_door import render_front_door

    def one(site: "FrontDoorSite") -> FrontDoorHealth:
        host = observed.hosts.get(site.host)
        if host is None or not host.reachable:
            return FrontDoorHealth(site.host, site.url, ReplicaState.UNKNOWN, "host unreachable")
        door = next(iter(sorted(host.front_doors, key=lambda f: not f.running)), None)
        if door is None:
            return FrontDoorHealth(site.host, site.url, ReplicaState.MISSING, "no front door container")
        current = door.routes_hash == plan.routes_hash
        if not door.running:
            return FrontDoorHealth(site.host, site.url, ReplicaState.STOPPED, f"container {door.state}", current)
        result = probe(render_front_door(site), timeout_s)
        state = ReplicaState.HEALTHY if result.ok else ReplicaState.UNHEALTHY
        detail = result.detail if current else f"{result.detail}; routes are stale (apply reloads them)"
        return FrontDoorHealth(site.host, site.url, state, detail, current)

    sites = plan.front_door_sites
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PROBE_WORKERS, len(sites)))) as pool:
        return tuple(pool.map(one, sites))


# -- output (pure) ------------------------------------------------------------------------
def report_to_json(report: HealthReport) -> dict[str, Any]:
    return {
        "swept_at": datetime.fromtimestamp(report.swept_at, timezone.utc).isoformat(timespec="milliseconds"),
        "timestamp": round(report.swept_at, 3),
        "duration_s": round(report.duration_s, 3),
        "timeout_s": report.timeout_s,
        "exit_code": int(exit_code(report)),
        "summary": {"replicas": len(report.replicas), **{s.value: report.count(s) for s in ReplicaState}},
        "hosts": [{"host": h.host, "reachable": h.reachable, "error": h.error} for h in report.hosts],
        "front_doors": [
            {"host": f.host, "url": f.url, "state": f.state.value, "detail": f.detail, "routes_current": f.routes_current}
            for f in report.front_doors
        ],
        "deployments": [
            {
                "deployment": d.deployment,
                "state": d.state.value,
                "desired": d.desired,
                "healthy": d.healthy,
                "drift": bool(d.drift),
                "drift_reasons": list(d.drift),
                "replicas": [
                    {
                        "replica": r.replica,
                        "host": r.host,
                        "state": r.state.value,
                        "endpoint": r.endpoint,
                        "container": r.container,
                        "container_state": r.container_state,
                        "detail": r.detail,
                        "check": r.check,
                        "probe_latency_ms": None if r.latency_s is None else round(r.latency_s * 1000, 1),
                        "drift": r.drift,
                    }
                    for r in d.replicas
                ],
            }
            for d in report.deployments
        ],
    }
