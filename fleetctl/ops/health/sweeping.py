"""One health sweep: load, observe, plan, probe and inspect every replica at once, judge
with the memory of earlier sweeps, and (with `heal`) repair what is critical.

Probes are bounded three ways: at most `concurrency` at a time, each within `timeout_s`,
and all of them within an overall deadline (the waves `concurrency` allows, plus a little
slack for a client library that overruns its own timeout), so one stuck socket cannot
hang cron.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from fleetctl.core.fleet import ReplicaKey
from fleetctl.core.observed import ObservedFleet
from fleetctl.core.plan import Plan
from fleetctl.errors import HostUnreachableError
from fleetctl.ops.health.model import (
    DEFAULT_FAILURES,
    DEFAULT_TIMEOUT_S,
    ContainerFacts,
    FactsReader,
    FrontDoorHealth,
    HealthReport,
    HostHealth,
    Probe,
    ProbeResult,
    ProbeSpec,
    ReplicaHealth,
    ReplicaState,
    Target,
)
from fleetctl.ops.health.targets import targets
from fleetctl.ops.health.verdicts import classify, classify_replica, judge_all
from fleetctl.state.health_store import Event, HealthMemory, Memory

if TYPE_CHECKING:
    from fleetctl.core.front_door import FrontDoorSite
    from fleetctl.core.inventory import Inventory
    from fleetctl.core.loader import LoadedInventory
    from fleetctl.ports import InspectorFactory, Observer

MAX_PROBE_WORKERS = 32
FACT_WORKERS = 16
# A probe that honours its budget returns well within it; this slack only catches a
# client library that ignores its own timeout.
PROBE_GRACE_S = 2.0


@dataclass(frozen=True)
class Swept:
    """A report with what it was made from (for `heal`)."""

    report: HealthReport
    loaded: LoadedInventory
    observed: ObservedFleet
    plan: Plan
    targets: tuple[Target, ...]
    memory: HealthMemory | None


def hosts_of(inventory: Inventory, observed: ObservedFleet) -> tuple[HostHealth, ...]:
    out = []
    for h in inventory.hosts:
        o = observed.hosts.get(h.name)
        out.append(
            HostHealth(h.name, o.reachable, o.error)
            if o
            else HostHealth(h.name, False, "not observed")
        )
    return tuple(out)


def bounded(
    items: Sequence[Target],
    call: Callable[[Target], object],
    *,
    workers: int,
    per_item_s: float,
    fallback: Callable[[float], object],
) -> dict[ReplicaKey, object]:
    """`call` on every item, at most `workers` at a time, all within the waves' deadline;
    an item not done by then gets `fallback(deadline)`."""
    if not items:
        return {}
    workers = max(1, min(workers, len(items)))
    budget = per_item_s * -(-len(items) // workers) + PROBE_GRACE_S
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="health")
    try:
        futures = {t.key: pool.submit(call, t) for t in items}
        wait(list(futures.values()), timeout=budget)
        return {k: f.result() if f.done() else fallback(budget) for k, f in futures.items()}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def probe_targets(
    ts: Sequence[Target], probe: Probe, timeout_s: float, concurrency: int = MAX_PROBE_WORKERS
) -> dict[ReplicaKey, ProbeResult]:
    """Probe every running replica; each answer carries its own latency."""

    def one(t: Target) -> ProbeResult:
        assert t.probe is not None
        started = time.monotonic()
        try:
            r = probe(t.probe, timeout_s)
        except Exception as exc:  # one replica's failure must not end the sweep
            why = f"probe failed: {type(exc).__name__}: {exc}"[:300]
            r = ProbeResult(False, why, problems=(why,))
        return replace(r, latency_s=time.monotonic() - started)

    def late(budget: float) -> ProbeResult:
        why = f"no answer within {timeout_s:g} s"
        return ProbeResult(False, why, problems=(why,), latency_s=budget)

    todo = [t for t in ts if t.probeable]
    return bounded(todo, one, workers=concurrency, per_item_s=timeout_s, fallback=late)  # type: ignore[return-value]


def read_facts(
    ts: Sequence[Target], facts: FactsReader, memory: Mapping[ReplicaKey, Memory], timeout_s: float
) -> dict[ReplicaKey, ContainerFacts]:
    def one(t: Target) -> ContainerFacts:
        try:
            return facts(t, memory.get(t.key))
        except Exception as exc:
            return ContainerFacts(error=f"{type(exc).__name__}: {exc}"[:300])

    todo = [t for t in ts if t.container is not None and t.unreachable is None]
    fallback = lambda budget: ContainerFacts(error="Docker did not answer in time")  # noqa: E731
    return bounded(todo, one, workers=FACT_WORKERS, per_item_s=timeout_s, fallback=fallback)  # type: ignore[return-value]


def sweep(
    path: str | Path,
    observe: Observer,
    probe: Probe | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    known_runtimes: list[str] | None = None,
    state_path: Path | None = None,
    **options: object,
) -> HealthReport:
    """Load, observe, plan (holds honoured), probe, judge; see `run_sweep` for options."""
    return run_sweep(path, observe, probe, timeout_s, known_runtimes, state_path, **options).report  # type: ignore[arg-type]


def run_sweep(
    path: str | Path,
    observe: Observer,
    probe: Probe | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    known_runtimes: list[str] | None = None,
    state_path: Path | None = None,
    *,
    failures: int = DEFAULT_FAILURES,
    grace_s: float | None = None,
    facts: FactsReader | None = None,
    inspectors: InspectorFactory | None = None,
    concurrency: int = MAX_PROBE_WORKERS,
    retention_days: float | None = None,
    clock: Callable[[], float] = time.time,
) -> Swept:
    """The sweep. With `state_path`, streaks are read from and written to the state;
    without one nothing is remembered, so a failure is judged alone (critical at once).
    `grace_s` overrides every replica's start-up grace (default: its start-up budget).
    `facts` reads restart counts and profiles (default: from the hosts `inspectors`
    gives; pass `lambda t, m: ContainerFacts()` to skip)."""
    from fleetctl.ops.health.facts import DockerFacts
    from fleetctl.ops.health.probing import Prober, preload
    from fleetctl.ops.planning import build_plan, read_holds
    from fleetctl.runtimes.inventory import load

    swept_at = clock()
    started = time.monotonic()
    loaded = load(path, known_runtimes)
    inv = loaded.inventory
    own_prober = probe is None
    preloading = None
    if own_prober:  # the clients' imports (tritonclient: ~0.4 s) overlap the observation
        preloading = threading.Thread(
            target=preload, args=({m.runtime for m in inv.models},), daemon=True
        )
        preloading.start()
    observed = observe(inv)
    hosts = hosts_of(inv, observed)
    dark_auto = [h for h in hosts if not h.reachable and inv.host(h.host).gpus == "auto"]
    if dark_auto:
        # Their GPUs are discovered on the host, so without them there is no plan to
        # measure against; the hosts are the problem, and the exit code says so.
        errors = "; ".join(f"{h.host}: {h.error}" for h in dark_auto)
        raise HostUnreachableError(
            f"host(s) with 'gpus: auto' unreachable, cannot tell what should run there ({errors})"
        )
    plan = build_plan(loaded, observed, holds=read_holds(state_path))
    ts = targets(plan, inv, observed)
    store = HealthMemory(state_path, inv.fleet) if state_path is not None else None
    before = store.read() if store is not None else {}

    prober: Probe = Prober() if probe is None else probe
    if preloading is not None:
        preloading.join()
    if facts is None:
        if inspectors is None:
            raise TypeError("run_sweep needs `facts` or `inspectors`")
        facts = DockerFacts(inspectors(inv))
    try:
        with ThreadPoolExecutor(
            max_workers=2
        ) as background:  # front doors and Docker beside the probes
            doors_later = background.submit(front_door_health, plan, observed, prober, timeout_s)
            facts_later = background.submit(read_facts, ts, facts, before, timeout_s)
            probes = probe_targets(ts, prober, timeout_s, concurrency)
            doors = doors_later.result()
            found = facts_later.result()
    finally:
        if own_prober:
            prober.close()  # type: ignore[attr-defined]

    seen = [classify_replica(t, probes.get(t.key), found.get(t.key)) for t in ts]
    grace = {t.key: (t.grace_s if grace_s is None else grace_s) for t in ts}
    now = clock()
    if store is None:
        judged, _, _ = judge_all(seen, {}, now=now, failures_needed=1, grace=grace)
    else:

        def decide(
            memory: Mapping[ReplicaKey, Memory],
        ) -> tuple[dict[ReplicaKey, Memory], list[Event], list[ReplicaHealth]]:
            out, kept, events = judge_all(
                seen, memory, now=now, failures_needed=failures, grace=grace
            )
            return kept, events, out

        kwargs = {} if retention_days is None else {"retention_days": retention_days}
        judged = store.update(decide, **kwargs)
    report = HealthReport(
        swept_at=swept_at,
        duration_s=time.monotonic() - started,
        timeout_s=timeout_s,
        hosts=hosts,
        deployments=classify(plan, judged),
        front_doors=doors,
        failures_needed=failures if store is not None else 1,
        memory=store is not None,
    )
    return Swept(report, loaded, observed, plan, tuple(ts), store)


def front_door_health(
    plan: Plan, observed: ObservedFleet, probe: Probe, timeout_s: float
) -> tuple[FrontDoorHealth, ...]:
    """Each host's front door: its container, its own status endpoint, and whether it
    serves the routes the plan says it should."""
    from fleetctl.runtimes.front_door import render_front_door

    def one(site: FrontDoorSite) -> FrontDoorHealth:
        host = observed.hosts.get(site.host)
        if host is None or not host.reachable:
            return FrontDoorHealth(site.host, site.url, ReplicaState.UNKNOWN, "host unreachable")
        door = next(iter(sorted(host.front_doors, key=lambda f: not f.running)), None)
        if door is None:
            return FrontDoorHealth(
                site.host, site.url, ReplicaState.MISSING, "no front door container"
            )
        current = door.routes_hash == plan.routes_hash
        if not door.running:
            return FrontDoorHealth(
                site.host, site.url, ReplicaState.STOPPED, f"container {door.state}", current
            )
        try:
            result = probe(ProbeSpec(render_front_door(site), runtime="front-door"), timeout_s)
        except Exception as exc:
            result = ProbeResult(False, f"probe failed: {type(exc).__name__}")
        state = ReplicaState.HEALTHY if result.ok else ReplicaState.UNHEALTHY
        detail = (
            result.detail if current else f"{result.detail}; routes are stale (apply reloads them)"
        )
        return FrontDoorHealth(site.host, site.url, state, detail, current)

    sites = plan.front_door_sites
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PROBE_WORKERS, len(sites)))) as pool:
        return tuple(pool.map(one, sites))
