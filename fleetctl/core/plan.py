"""The plan: placement plus the actions that take the observed fleet to it.

`make_plan` is a pure function of (inventory values, observed fleet). The same `Plan`
value is rendered as a table, written as JSON, saved for apply, executed and recorded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any

from fleetctl.core.fleet import Assignment, Deployment, HostSpec, Placement
from fleetctl.core.front_door import FrontDoorAction, FrontDoorSettings, FrontDoorSite
from fleetctl.core.observed import ObservedContainer, ObservedFleet
from fleetctl.core.placement import DEFAULT_BUDGET, lower_bound, naive_gpus, place
from fleetctl.core.recovery import Recovery, assume_recovered, recoveries
from fleetctl.core.sla import predicted_p95, util_of
from fleetctl.core.triton_servers import (
    configure_at_start,
    is_server,
    model_changes,
    server_spec_view,
)

PORTS_PER_REPLICA = 4  # a runtime may use port .. port+3 (Triton: http, grpc, metrics)


class ActionKind(str, Enum):
    CREATE = "create"
    RECREATE = "recreate"
    REMOVE = "remove"
    KEEP = "keep"
    # A model in a running shared Triton server (fleetctl.core.triton_servers); the
    # server's container is untouched.
    LOAD = "load"
    RELOAD = "reload"
    UNLOAD = "unload"


MODEL_KINDS = frozenset({ActionKind.LOAD, ActionKind.RELOAD, ActionKind.UNLOAD})


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    deployment: str
    replica: int
    host: str
    gpus: tuple[int, ...] = ()
    port: int | None = None
    spec_hash: str = ""
    reason: str = ""
    container: str | None = None  # existing container name (recreate, remove, keep)
    container_host: str | None = None  # where the existing container runs, if elsewhere
    blocked: str | None = None  # why it cannot run now (host unreachable)
    # recreate only: start the new container before stopping the old one (no downtime,
    # needs room on the GPUs and, on the same host, a fresh port) or stop the old first.
    strategy: str = ""
    # stop-first of a replica that serves: it is out of service while its successor
    # starts (only with permission); `unavailable_s` is the estimate shown before asking.
    downtime: bool = False
    unavailable_s: float | None = None
    # load, reload and unload only: the Triton model, and the member identity it records.
    model: str = ""
    member: str = ""

    @property
    def mutating(self) -> bool:
        return self.kind is not ActionKind.KEEP

    @property
    def model_change(self) -> bool:
        return self.kind in MODEL_KINDS

    def to_json(self) -> dict[str, Any]:
        # Written out rather than dataclasses.asdict: asdict deep-copies and costs ~1 s
        # on a 10,000-replica plan.
        return {
            "kind": self.kind.value,
            "deployment": self.deployment,
            "replica": self.replica,
            "host": self.host,
            "gpus": list(self.gpus),
            "port": self.port,
            "spec_hash": self.spec_hash,
            "reason": self.reason,
            "container": self.container,
            "container_host": self.container_host,
            "blocked": self.blocked,
            "strategy": self.strategy,
            "downtime": self.downtime,
            "unavailable_s": self.unavailable_s,
            **({"model": self.model, "member": self.member} if self.model else {}),
        }


@dataclass(frozen=True)
class Summary:
    gpus_used: int
    gpus_lower_bound: int
    gpus_naive: int
    gpus_total: int
    deployments: int
    replicas: int
    changes: Mapping[str, int]
    # (used - lower bound) / used, and how placement's search ended (heuristic, optimal,
    # feasible, solved, regions, infeasible, unknown).
    gpus_gap: float = 0.0
    placement_search: str = "heuristic"


@dataclass(frozen=True)
class Plan:
    deployments: tuple[Deployment, ...]
    hosts: tuple[HostSpec, ...]
    placement: Placement
    actions: tuple[Action, ...]
    summary: Summary
    observed_fingerprint: str
    unreachable: Mapping[str, str] = field(default_factory=dict)
    # The front doors (empty when the fleet has none) and the routes they should serve.
    front_doors: tuple[FrontDoorAction, ...] = ()
    front_door_sites: tuple[FrontDoorSite, ...] = ()
    front_door_settings: FrontDoorSettings | None = None
    routes_hash: str = ""
    # Lines the plan must show beside its actions (a hold in force, a hold lifted).
    notes: tuple[str, ...] = ()
    # Models whose client traffic moves to the desired version as soon as that version
    # has one ready replica (a rollback to a running pin), instead of at its full count.
    switch_at_once: frozenset[str] = frozenset()
    # Replicas an interrupted rollout left under temporary names: finished forward or
    # restored before anything else (fleetctl.core.recovery); the actions assume they are.
    recovery: tuple[Recovery, ...] = ()
    # Shared Triton servers: each server deployment's members as the inventory declares
    # them (fleetctl.core.triton_servers), for what counts per model (report, advise).
    server_members: Mapping[str, tuple[Deployment, ...]] = field(default_factory=dict)

    @property
    def changes(self) -> list[Action]:
        return [a for a in self.actions if a.mutating]

    @property
    def front_door_changes(self) -> list[FrontDoorAction]:
        return [f for f in self.front_doors if f.mutating]

    @property
    def has_changes(self) -> bool:
        return bool(self.changes) or bool(self.front_door_changes) or bool(self.recovery)

    def deployment(self, name: str) -> Deployment:
        return next(d for d in self.deployments if d.name == name)


def spec_hash(d: Deployment, host: str, gpus: Sequence[int], port: int | None) -> str:
    """Hash of a canonical form of the desired spec: never image ids or timestamps.

    A shared Triton server's hash leaves out its members and its memory: they change
    in the running server (fleetctl.core.triton_servers)."""
    server = is_server(d)
    canonical = {
        "deployment": d.name,
        "runtime": d.runtime,
        "image": d.image,
        "memory_gb": None if server else d.memory_gb,
        "gpus": list(gpus),
        "host": host,
        "port": port,
        # Not the customers: who is routed to a version is the front door's business,
        # so pinning or un-pinning a customer never restarts a container.
        "settings": server_spec_view(d) if server else d.settings,
    }
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def reserved_blocks(
    reserved: Mapping[str, Sequence[int]], port_ranges: Mapping[str, tuple[int, int]]
) -> dict[str, set[int]]:
    """The replica port blocks (by first port) that overlap ports kept for something else
    on the host, such as its front door."""
    out: dict[str, set[int]] = {}
    for host, ports in reserved.items():
        lo, hi = port_ranges.get(host, (20000, 20999))
        for p in ports:
            if lo <= p <= hi:
                out.setdefault(host, set()).add(
                    lo + (p - lo) // PORTS_PER_REPLICA * PORTS_PER_REPLICA
                )
    return out


def host_slots(
    deployments: Sequence[Deployment],
    hosts: Sequence[HostSpec],
    port_ranges: Mapping[str, tuple[int, int]],
    observed: Sequence[ObservedContainer],
    reserved: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, int]:
    """Replicas each host can give a port block: its range's blocks less those kept for
    something else (its front door) or held by containers that go away in this plan.
    Placement treats them as a constraint, so a range is never exhausted after it."""
    wanted = {(d.name, r) for d in deployments for r in range(d.replicas)}
    taken = {h: set(b) for h, b in reserved_blocks(reserved or {}, port_ranges).items()}
    for c in observed:
        if c.port is not None and (c.deployment, c.replica) not in wanted:
            taken.setdefault(c.host, set()).add(c.port)
    out: dict[str, int] = {}
    for h in hosts:
        lo, hi = port_ranges.get(h.name, (20000, 20999))
        blocks = (hi - lo + 1) // PORTS_PER_REPLICA
        out[h.name] = max(0, blocks - len(taken.get(h.name, ())))
    return out


def changed_replicas(
    deployments: Sequence[Deployment], observed: Sequence[ObservedContainer]
) -> set[str]:
    """Replica keys whose running container was started from another spec."""
    by_name = {d.name: d for d in deployments}
    out: set[str] = set()
    for c in observed:
        d = by_name.get(c.deployment)
        if (
            d is not None
            and not c.temporary
            and spec_hash(d, c.host, c.gpus, c.port) != c.spec_hash
        ):
            out.add(f"{c.deployment}#{c.replica}")
    return out


def assign_ports(
    assignments: Sequence[Assignment],
    port_ranges: Mapping[str, tuple[int, int]],
    observed: Sequence[ObservedContainer],
    reserved: Mapping[str, Sequence[int]] | None = None,
) -> dict[tuple[str, int], int]:
    """Give each replica a block of ports on its host, keeping the ones it already has
    (unless `reserved` now claims them)."""
    kept: dict[tuple[str, int], tuple[str, int]] = {}
    for c in sorted(
        observed, key=lambda c: (c.temporary or c.parked, not c.running, c.host, c.name)
    ):
        if c.port is not None and not (c.temporary or c.parked):
            kept.setdefault((c.deployment, c.replica), (c.host, c.port))
    ports: dict[tuple[str, int], int] = {}
    taken: dict[str, set[int]] = {
        h: set(b) for h, b in reserved_blocks(reserved or {}, port_ranges).items()
    }
    # A container that goes away (an older version, a replica no longer wanted, a
    # duplicate, a rollout's leftover) may still serve while its successors start: its
    # port is not handed to anyone in this plan.
    wanted = {(a.deployment, a.replica) for a in assignments}
    for c in observed:
        key = (c.deployment, c.replica)
        if c.port is not None and (key not in wanted or kept.get(key) != (c.host, c.port)):
            taken.setdefault(c.host, set()).add(c.port)
    pending = []
    for a in sorted(assignments, key=lambda a: (a.host, a.deployment, a.replica)):
        prev = kept.get((a.deployment, a.replica))
        if prev and prev[0] == a.host and prev[1] not in taken.setdefault(a.host, set()):
            ports[(a.deployment, a.replica)] = prev[1]
            taken[a.host].add(prev[1])
        else:
            pending.append(a)
    cursor: dict[str, int] = {}
    for a in pending:
        lo, hi = port_ranges.get(a.host, (20000, 20999))
        used = taken.setdefault(a.host, set())
        p = cursor.get(a.host, lo)
        while p in used:
            p += PORTS_PER_REPLICA
        if p + PORTS_PER_REPLICA - 1 > hi:
            raise ValueError(f"host {a.host}: port range {lo}-{hi} is exhausted")
        ports[(a.deployment, a.replica)] = p
        used.add(p)
        cursor[a.host] = p + PORTS_PER_REPLICA
    return ports


def _recreate_reason(c: ObservedContainer, a: Assignment, d: Deployment, h: str) -> str | None:
    if c.host != a.host or tuple(c.gpus) != tuple(a.gpus):
        return f"moves from {c.host} GPU {_fmt_gpus(c.gpus)} to {a.host} GPU {_fmt_gpus(a.gpus)}"
    if c.labeled_image and c.labeled_image != d.image:
        return f"image {c.labeled_image} -> {d.image}"
    if c.spec_hash != h:
        return "spec changed"
    if c.labeled_image and c.image != c.labeled_image:
        return f"drift: container runs {c.image}, not {c.labeled_image}"
    if not c.running:
        return f"drift: container is {c.state}" + (
            f" (crash-looping: {c.restarts} restarts)" if c.restarts else ""
        )
    if c.restarts:
        return f"drift: container is crash-looping ({c.restarts} restarts)"
    if c.triton_ready is not None and d.runtime == "triton" and not is_server(d):
        declared = (d.settings.get("triton") or {}).get("models") or [d.model]
        missing = sorted(set(declared) - set(c.triton_ready))
        if missing:
            return f"drift: Triton model {', '.join(missing)} not loaded"
        extra = sorted(set(c.triton_ready) - set(declared))
        if extra:
            return f"drift: Triton model {', '.join(extra)} loaded but not declared"
    return None


def _fmt_gpus(gpus: Sequence[int]) -> str:
    return ",".join(str(g) for g in gpus)


def make_plan(
    deployments: Sequence[Deployment],
    hosts: Sequence[HostSpec],
    observed: ObservedFleet,
    port_ranges: Mapping[str, tuple[int, int]] | None = None,
    reserved_ports: Mapping[str, Sequence[int]] | None = None,
    placement_budget: float = DEFAULT_BUDGET,
) -> Plan:
    """`reserved_ports`: per host, ports that replicas must not use (its front door).
    `placement_budget`: see `placement.place` (its `budget`)."""
    port_ranges = port_ranges or {}
    reserved_ports = reserved_ports or {}
    recovery = tuple(recoveries(observed))
    fingerprint = observed.fingerprint()
    observed = assume_recovered(observed, list(recovery))
    containers = observed.containers()
    placement = place(
        deployments,
        hosts,
        observed.previous_assignments(),
        budget=placement_budget,
        slots=host_slots(deployments, hosts, port_ranges, containers, reserved_ports),
        changed=changed_replicas(deployments, containers),
    )
    by_name = {d.name: d for d in deployments}
    ports = assign_ports(placement.assignments, port_ranges, containers, reserved_ports)
    unreachable = {h.name: h.error or "unreachable" for h in observed.unreachable()}

    current = observed.by_replica()

    actions: list[Action] = []
    for a in sorted(placement.assignments, key=lambda a: (a.deployment, a.replica)):
        d = by_name[a.deployment]
        port = ports[(a.deployment, a.replica)]
        h = spec_hash(d, a.host, a.gpus, port)
        existing = current.pop((a.deployment, a.replica), [])
        blocked = unreachable.get(a.host)
        base: dict[str, Any] = dict(
            deployment=a.deployment,
            replica=a.replica,
            host=a.host,
            gpus=a.gpus,
            port=port,
            spec_hash=h,
        )
        if not existing:
            actions.append(Action(ActionKind.CREATE, reason="new replica", blocked=blocked, **base))
            actions += _configure(d, base, None, blocked)
            continue
        primary, extras = existing[0], existing[1:]
        why = _recreate_reason(primary, a, d, h)
        if why is None:
            changes = model_changes(d, primary) if is_server(d) else []
            actions.append(
                Action(ActionKind.KEEP, reason="up to date", container=primary.name, **base)
            )
            for ch in changes:
                actions.append(
                    Action(
                        ActionKind(ch.kind),
                        reason=ch.reason,
                        container=primary.name,
                        model=ch.model,
                        member=ch.identity,
                        blocked=blocked,
                        **base,
                    )
                )
        else:
            old_host = primary.host if primary.host != a.host else None
            blocked = blocked or unreachable.get(primary.host)
            actions.append(
                Action(
                    ActionKind.RECREATE,
                    reason=why,
                    container=primary.name,
                    container_host=old_host,
                    blocked=blocked,
                    **base,
                )
            )
            actions += _configure(d, base, primary.name, blocked)
        for extra in extras:
            actions.append(_removal(extra, "duplicate or leftover container", unreachable))
    for (dep, _replica), leftovers in sorted(current.items()):
        why = "no longer in the inventory" if dep not in by_name else "replica no longer wanted"
        for c in leftovers:
            actions.append(_removal(c, why, unreachable))

    actions, assignments = _with_strategies(
        actions, deployments, hosts, placement.assignments, containers, port_ranges, reserved_ports
    )
    # A new server's model changes go to where that server ends up (start-first: a fresh port).
    started = {
        (x.deployment, x.replica): x
        for x in actions
        if x.kind in (ActionKind.CREATE, ActionKind.RECREATE)
    }
    actions = [
        replace(
            x,
            host=started[k].host,
            port=started[k].port,
            gpus=started[k].gpus,
            spec_hash=started[k].spec_hash,
        )
        if x.model_change and (k := (x.deployment, x.replica)) in started
        else x
        for x in actions
    ]
    if assignments != placement.assignments:
        from dataclasses import replace as _replace

        placement = _replace(placement, assignments=assignments)
    counts = {k.value: sum(1 for x in actions if x.kind is k) for k in ActionKind}
    summary = Summary(
        gpus_used=placement.gpus_used(),
        gpus_lower_bound=placement.lower_bound
        if placement.lower_bound is not None
        else lower_bound(deployments, hosts),
        gpus_naive=naive_gpus(deployments),
        gpus_total=sum(len(h.gpus) for h in hosts),
        deployments=len(deployments),
        replicas=sum(d.replicas for d in deployments),
        changes=counts,
        placement_search=placement.search,
    )
    if summary.gpus_used:
        gap = max(0, summary.gpus_used - summary.gpus_lower_bound) / summary.gpus_used
        summary = replace(summary, gpus_gap=round(gap, 4))
    return Plan(
        deployments=tuple(deployments),
        hosts=tuple(hosts),
        placement=placement,
        actions=tuple(actions),
        summary=summary,
        observed_fingerprint=fingerprint,
        unreachable=unreachable,
        recovery=recovery,
    )


def _configure(
    d: Deployment, base: Mapping[str, Any], container: str | None, blocked: str | None
) -> list[Action]:
    """A new Triton server's members with configuration overrides: reloaded with them
    once it is up (the executor runs model changes after every container step)."""
    if not is_server(d):
        return []
    return [
        Action(
            ActionKind.RELOAD,
            reason=ch.reason,
            container=container,
            model=ch.model,
            member=ch.identity,
            blocked=blocked,
            **base,
        )
        for ch in configure_at_start(d)
    ]


START_FIRST = "start-first"
STOP_FIRST = "stop-first"


def _with_strategies(
    actions: list[Action],
    deployments: Sequence[Deployment],
    hosts: Sequence[HostSpec],
    assignments: Sequence[Assignment],
    containers: Sequence[ObservedContainer],
    port_ranges: Mapping[str, tuple[int, int]],
    reserved_ports: Mapping[str, Sequence[int]],
) -> tuple[list[Action], tuple[Assignment, ...]]:
    """Decide for each recreate how old and new can run side by side: on the replica's
    own GPUs, else on another GPU that meets every rule (surge placement, which moves
    the replica there), else stop-first; returns the actions and the final assignments."""
    from dataclasses import replace

    from fleetctl.core.surge import GpuLoad, surge_target

    by_name = {d.name: d for d in deployments}
    load = GpuLoad.of(hosts, assignments, by_name)
    final = {(a.deployment, a.replica): a for a in assignments}
    taken: dict[str, set[int]] = reserved_blocks(reserved_ports, port_ranges)
    for x in actions:
        if x.port is not None:
            taken.setdefault(x.host, set()).add(x.port)
    for c in containers:
        if c.port is not None:
            taken.setdefault(c.host, set()).add(c.port)
    by_key = {(c.deployment, c.replica, c.name): c for c in containers}

    def fresh_port(host: str) -> int | None:
        port = _free_block(taken.setdefault(host, set()), port_ranges.get(host, (20000, 20999)))
        if port is not None:
            taken[host].add(port)
        return port

    out = []
    for x in actions:
        if x.kind is not ActionKind.RECREATE:
            out.append(x)
            continue
        old = by_key.get((x.deployment, x.replica, x.container or ""))
        if x.container_host is not None:
            out.append(replace(x, strategy=START_FIRST))  # another host: nothing to share
            continue
        if old is None or not old.running:
            out.append(replace(x, strategy=STOP_FIRST))  # nothing serving to keep
            continue
        d = by_name[x.deployment]
        # The planned load counts the successor on its GPUs already; the old replica, if
        # it sits there too, is the extra both need at once.
        fits = all(
            load.used_gb((x.host, g)) + (d.memory_per_gpu_gb if g in old.gpus else 0.0)
            <= load.gpus[(x.host, g)].usable_gb + 1e-9
            for g in x.gpus
        )
        port = fresh_port(x.host) if fits else None
        if port is not None:
            out.append(
                replace(
                    x, strategy=START_FIRST, port=port, spec_hash=spec_hash(d, x.host, x.gpus, port)
                )
            )
            continue
        target = surge_target(
            load, d, x.replica, Assignment(x.deployment, x.replica, old.host, tuple(old.gpus))
        )
        port = fresh_port(target.host) if target else None
        if target is None or port is None:
            out.append(replace(x, strategy=STOP_FIRST, downtime=True))
            continue
        load.add((target.host, target.gpus[0]), d, x.replica)
        final[(x.deployment, x.replica)] = target
        out.append(
            replace(
                x,
                host=target.host,
                gpus=target.gpus,
                port=port,
                spec_hash=spec_hash(d, target.host, target.gpus, port),
                container_host=old.host if target.host != old.host else None,
                strategy=START_FIRST,
                reason=f"{x.reason}; surge: moves to {target.host} GPU {_fmt_gpus(target.gpus)}, "
                f"where it fits beside the old replica",
            )
        )
    return out, tuple(final[(a.deployment, a.replica)] for a in assignments)


def _free_block(taken: set[int], port_range: tuple[int, int]) -> int | None:
    lo, hi = port_range
    for p in range(lo, hi - PORTS_PER_REPLICA + 2, PORTS_PER_REPLICA):
        if p not in taken:
            return p
    return None


def _removal(c: ObservedContainer, why: str, unreachable: Mapping[str, str]) -> Action:
    return Action(
        ActionKind.REMOVE,
        deployment=c.deployment,
        replica=c.replica,
        host=c.host,
        gpus=c.gpus,
        port=c.port,
        spec_hash=c.spec_hash,
        reason=why,
        container=c.name,
        blocked=unreachable.get(c.host),
    )


def gpu_map(plan: Plan) -> list[dict[str, Any]]:
    """Per host, per GPU: capacity, memory used, compute share and tenants with predicted p95."""
    by_name = {d.name: d for d in plan.deployments}
    tenants: dict[tuple[str, int], list[tuple[Deployment, int]]] = {}
    for a in plan.placement.assignments:
        for index in a.gpus:
            tenants.setdefault((a.host, index), []).append((by_name[a.deployment], a.replica))
    out = []
    for h in plan.hosts:
        gpus = []
        for g in h.gpus:
            here = sorted(tenants.get((h.name, g.index), []), key=lambda t: (t[0].name, t[1]))
            rows: list[dict[str, Any]] = []
            for d, r in here:
                others = [o for o, _ in here if o is not d]
                p95 = predicted_p95(d, g, others) if d.sla_ms or d.latency_ms else None
                rows.append(
                    {
                        "deployment": d.name,
                        "replica": r,
                        "memory_gb": round(d.memory_per_gpu_gb, 3),
                        "util": round(util_of(d, g), 4),
                        "sla_ms": d.sla_ms,
                        "predicted_p95_ms": None if p95 is None else round(p95, 2),
                    }
                )
            gpus.append(
                {
                    "index": g.index,
                    "model": g.model,
                    "memory_gb": g.memory_gb,
                    "reserve_gb": g.reserve_gb,
                    "used_gb": round(sum(t["memory_gb"] for t in rows), 3),
                    "util": round(sum(t["util"] for t in rows), 4),
                    "tenants": rows,
                }
            )
        out.append({"host": h.name, "simulated": h.simulated, "gpus": gpus})
    return out


def plan_to_json(plan: Plan) -> dict[str, Any]:
    return {
        "placements": [
            {"deployment": a.deployment, "replica": a.replica, "host": a.host, "gpus": list(a.gpus)}
            for a in sorted(plan.placement.assignments, key=lambda a: (a.deployment, a.replica))
        ],
        "unplaced": [
            {"deployment": u.deployment, "replica": u.replica, "reasons": list(u.reasons)}
            for u in plan.placement.unplaced
        ],
        "triton_servers": {
            name: [m.name for m in members] for name, members in sorted(plan.server_members.items())
        },
        "recovery": [r.to_json() for r in plan.recovery],
        "actions": [a.to_json() for a in plan.actions],
        "summary": asdict(plan.summary),
        "gpu_map": gpu_map(plan),
        "front_doors": [f.to_json() for f in plan.front_doors],
        "notes": list(plan.notes),
        "routes_hash": plan.routes_hash,
        "unreachable_hosts": dict(plan.unreachable),
        "observed_fingerprint": plan.observed_fingerprint,
    }


def per_model(plan: Plan) -> Plan:
    """The plan as the inventory's models see it: each shared Triton server's replicas
    stand for its members' replicas on the same GPUs (for counting, never for acting)."""
    if not plan.server_members:
        return plan
    from fleetctl.core.fleet import Unplaced

    members = plan.server_members
    deps = [m for d in plan.deployments for m in members.get(d.name, (d,))]
    assignments = tuple(
        replace(a, deployment=m.name)
        for a in plan.placement.assignments
        for m in members.get(a.deployment, ())
    ) + tuple(a for a in plan.placement.assignments if a.deployment not in members)
    unplaced = tuple(
        Unplaced(m.name, u.replica, u.reasons)
        for u in plan.placement.unplaced
        for m in members.get(u.deployment, ())
    ) + tuple(u for u in plan.placement.unplaced if u.deployment not in members)
    return replace(
        plan,
        deployments=tuple(deps),
        placement=replace(plan.placement, assignments=assignments, unplaced=unplaced),
        server_members={},
    )
