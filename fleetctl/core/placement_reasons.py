"""Why a replica is where it is, and why it cannot go elsewhere.

`blockers` names every rule that keeps one deployment off one GPU in a given state;
`unplaced_reasons` summarises them over the fleet for a replica that found no room, and
`why_here` is the one-line reason stored in `Placement.reasons`.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetctl.core.placement_state import Dep, Gpu, Item, SelectorKey, State
from fleetctl.core.sla import EPS, fmt_ms, fmt_num, p95_with_load

# The order reasons are listed in, from the most structural to the most situational.
KINDS = ("selector", "exclusive-held", "needs-empty", "sibling", "memory", "compute", "sla-other", "sla-self")


@dataclass(frozen=True, slots=True)
class Blocker:
    kind: str  # one of KINDS
    text: str  # the reason for this one GPU
    detail: str = ""  # what the fleet-wide summary quotes as its example


def fmt_selector(sel: SelectorKey) -> str:
    return ",".join(f"{k}={v}" for k, v in sel)


def blockers(st: State, dep: Dep, g: Gpu, ignore: Item | None = None) -> list[Blocker]:
    """Every rule that keeps one more GPU-share of `dep` off `g`.

    `ignore` is a replica to treat as absent (explain asks "could it move there?").
    """
    if not st.eligible(dep.sel)[g.host]:
        return [Blocker("selector", f"host labels do not match selector {fmt_selector(dep.sel)}")]
    tenants = [t for t in g.tenants if t is not ignore]
    out: list[Blocker] = []
    holder = next((t for t in tenants if t.dep.exclusive), None)
    if holder is not None:
        out.append(Blocker("exclusive-held", f"exclusive GPU held by {holder.key}", holder.key))
    elif dep.exclusive and tenants:
        names = ", ".join(t.key for t in tenants[:3]) + (", ..." if len(tenants) > 3 else "")
        out.append(Blocker("needs-empty", f"exclusive: needs an empty GPU, {names} here"))
    same = [t.replica for t in tenants if t.dep.name == dep.name]
    if same:
        out.append(Blocker("sibling", f"replica #{same[0]} of the same deployment is there"))
    used = sum(t.dep.mem for t in tenants)
    free = g.usable - used
    if used + dep.mem > g.usable + EPS:
        out.append(
            Blocker("memory", f"memory: needs {dep.mem:.1f} GB, {max(free, 0.0):.1f} GB free", f"{max(free, 0.0):.1f}")
        )
    u = dep.util(g)
    total = sum(t.dep.util(g) for t in tenants) + u
    if total > 1 + EPS:
        out.append(Blocker("compute", f"compute: utilisation would reach {total:.2f} > 1", f"{total:.2f}"))
    worst: tuple[float, str] | None = None
    for t in tenants:
        td = t.dep
        if td.sla is None or td.latency is None:
            continue
        tu = td.util(g)
        if total > td.slack + tu + EPS:
            seen = p95_with_load(td.latency, total - tu)
            ratio = seen / td.sla
            if worst is None or ratio > worst[0]:
                worst = (ratio, td.name, f"{fmt_ms(seen)} ms > {fmt_num(td.sla)} ms")
    if worst is not None:
        _, name, text = worst
        out.append(Blocker("sla-other", f"SLA: {name} would see {text}", f"{name} {text}"))
    if dep.sla is not None and dep.latency is not None and total > dep.slack + u + EPS:
        seen = p95_with_load(dep.latency, total - u)
        text = f"{fmt_ms(seen)} ms > {fmt_num(dep.sla)} ms"
        out.append(Blocker("sla-self", f"SLA: this replica would see {text}", f"{dep.name} itself {text}"))
    return out


def unplaced_reasons(st: State, dep: Dep) -> tuple[str, ...]:
    """One reason per rule that blocks `dep` anywhere, summarised over the fleet."""
    ok = st.eligible(dep.sel)
    hosts = [h for h in range(len(st.hosts)) if ok[h]]
    if not hosts:
        return (f"selector {fmt_selector(dep.sel)} matches no host",)
    gpus = [st.gpus[gid] for h in hosts for gid in st.host_gpus[h]]
    if not gpus:
        return (f"the {len(hosts)} host(s) matching the selector have no GPUs",)
    structural = _structural(st, dep, hosts, gpus)
    if structural:
        return structural
    per_gpu = [(g, blockers(st, dep, g)) for g in gpus]
    reasons: list[str] = []
    full = [(g, b) for g, b in per_gpu if any(x.kind == "memory" for x in b)]
    if full:
        most = max(g.free for g, _ in full)
        reasons.append(
            f"memory: full on {len(full)} GPU(s) (needs {dep.mem:.1f} GB per GPU, most free is {max(most, 0.0):.1f} GB)"
        )
    roomy = [(g, b) for g, b in per_gpu if not any(x.kind == "memory" for x in b)]
    for kind in KINDS:
        hits = [(g, x) for g, b in roomy for x in b if x.kind == kind]
        if hits:
            reasons.append(_summary(dep, kind, len(hits), hits[0][0], hits[0][1]))
    if dep.k > 1:
        free_on = {}
        for g, b in per_gpu:
            free_on[g.host] = free_on.get(g.host, 0) + (0 if b else 1)
        most_free = max(free_on.values(), default=0)
        if most_free < dep.k:
            reasons.append(f"tensor parallel: needs {dep.k} GPUs on one host, most free on one host is {most_free}")
    return tuple(reasons) or ("no GPU satisfies every rule at once",)


def _structural(st: State, dep: Dep, hosts: list[int], gpus: list[Gpu]) -> tuple[str, ...]:
    """Reasons that hold even on an idle fleet: no amount of moving things would help."""
    out: list[str] = []
    largest = max(g.usable for g in gpus)
    if dep.mem > largest + EPS:
        out.append(f"memory: needs {dep.mem:.1f} GB per GPU, largest usable GPU has {largest:.1f} GB")
    if dep.slack < -EPS and dep.sla is not None and dep.latency is not None:
        out.append(
            f"SLA: latency {fmt_num(dep.latency)} ms alone already exceeds the {fmt_num(dep.sla)} ms SLA"
        )
    widest = max(len(st.host_gpus[h]) for h in hosts)
    if dep.k > widest:
        out.append(f"tensor parallel: needs {dep.k} GPUs on one host, the largest matching host has {widest}")
    return tuple(out)


def _summary(dep: Dep, kind: str, n: int, g: Gpu, b: Blocker) -> str:
    where = g.label
    if kind == "sla-other":
        return f"SLA: would break on {n} GPU(s) with room ({b.detail} on {where})"
    if kind == "sla-self":
        return f"SLA: would break its own on {n} GPU(s) with room ({b.detail} on {where})"
    if kind == "compute":
        return f"compute: utilisation would exceed 1 on {n} GPU(s) with room ({b.detail} on {where})"
    if kind == "exclusive-held":
        return f"exclusive: {n} GPU(s) with room are held exclusively ({b.detail} on {where})"
    if kind == "needs-empty":
        return f"exclusive: needs an empty GPU, {n} GPU(s) with room are shared"
    if kind == "sibling":
        return f"replicas: {n} GPU(s) with room already hold a replica of {dep.name}"
    return f"{kind}: blocks {n} GPU(s)"


def why_here(st: State, it: Item) -> str:
    """The short reason stored per replica in `Placement.reasons`."""
    gs = [st.gpus[gid] for gid in it.gids]
    g0 = gs[0]
    if len(gs) == 1:
        where = g0.label
    else:
        where = f"{g0.host_name} GPUs " + ",".join(str(i) for i in sorted(g.index for g in gs))
    tight = min(gs, key=lambda g: (g.free, g.gid))
    if it.how == "kept":
        head = f"kept on {where} (already runs there, still valid)"
    elif it.dep.exclusive:
        head = f"exclusive on {where}"
    else:
        head = f"{it.how} on {where}: {max(tight.free, 0.0):.1f} of {tight.usable:.1f} GB free after"
    parts = [head]
    dep = it.dep
    if dep.sla is not None and dep.latency is not None:
        seen = max(p95_with_load(dep.latency, g.util - dep.util(g)) for g in gs)
        parts.append(f"SLA ok: {fmt_ms(seen)} ms <= {fmt_num(dep.sla)} ms")
    if st.siblings_on_host(dep, g0.host) > len(gs) and it.how != "kept":
        parts.append("shares the host with another replica (no other host had room)")
    return "; ".join(parts)
