"""Why a replica is where it is, and why it cannot go elsewhere.

`blockers` names every rule that keeps one deployment off one GPU in a given state;
`Diagnoser` summarises them over the fleet for replicas that found no room (the
reasons of `Unplaced`), and `why_here` is the one-line reason stored in
`Placement.reasons`.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from fleetctl.core.placement.state import Dep, Gpu, Item, SelectorKey, State
from fleetctl.core.sla import EPS, fmt_ms, fmt_num, p95_with_load

# The order reasons are listed in, from the most structural to the most situational.
KINDS = (
    "selector",
    "gpu-model",
    "exclusive-held",
    "needs-empty",
    "sibling",
    "memory",
    "compute",
    "sla-other",
    "sla-self",
)


@dataclass(frozen=True, slots=True)
class Blocker:
    kind: str  # one of KINDS
    text: str  # the reason for this one GPU
    detail: str = ""  # what the fleet-wide summary quotes as its example


def fmt_selector(sel: SelectorKey) -> str:
    return ",".join(f"{k}={v}" for k, v in sel)


def fmt_models(models: tuple[str, ...]) -> str:
    return " or ".join(models)


def blockers(st: State, dep: Dep, g: Gpu, ignore: Item | None = None) -> list[Blocker]:
    """Every rule that keeps one more GPU-share of `dep` off `g`.

    `ignore` is a replica to treat as absent (explain asks "could it move there?").
    """
    if not st.eligible(dep.sel)[g.host]:
        return [Blocker("selector", f"host labels do not match selector {fmt_selector(dep.sel)}")]
    if not st.type_ok(dep, g):
        model = g.spec.model or "a GPU without a model name"
        return [Blocker("gpu-model", f"GPU model: {model}, needs {fmt_models(dep.models)}")]
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
            Blocker(
                "memory",
                f"memory: needs {dep.mem:.1f} GB, {max(free, 0.0):.1f} GB free",
                f"{max(free, 0.0):.1f}",
            )
        )
    u = dep.util(g)
    total = sum(t.dep.util(g) for t in tenants) + u
    if total > 1 + EPS:
        out.append(
            Blocker("compute", f"compute: utilisation would reach {total:.2f} > 1", f"{total:.2f}")
        )
    worst: tuple[float, str, str] | None = None
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
        out.append(
            Blocker("sla-self", f"SLA: this replica would see {text}", f"{dep.name} itself {text}")
        )
    return out


# GPUs with room classified rule by rule, in best-fit order: in all, and per deployment.
# Counts beyond that are reported as "at least".
_CLASSIFY_TOTAL = 100_000
_CLASSIFY_MIN, _CLASSIFY_MAX = 16, 512


class Diagnoser:
    """Summarises why replicas found no room, over the state placement ended in.

    On an oversubscribed fleet thousands of deployments may fail, so the summary avoids
    a full check per GPU: GPUs without memory room are counted from the free-memory
    indexes, and only the first GPUs with room are classified rule by rule.
    """

    def __init__(self, st: State, failing: int = 1) -> None:
        """`failing` is how many deployments will be summarised (it splits the effort)."""
        self.st = st
        self.cap = max(_CLASSIFY_MIN, min(_CLASSIFY_MAX, _CLASSIFY_TOTAL // max(1, failing)))
        self.exclusive = [g for g in st.gpus if g.excl]  # not in the indexes
        self._by_sel: dict[
            tuple[SelectorKey, tuple[str, ...]], tuple[list[int], list[Gpu], float, int]
        ] = {}

    def reasons(self, dep: Dep) -> tuple[str, ...]:
        """One reason per rule that blocks `dep`, summarised over the fleet."""
        st = self.st
        hosts, gpus, largest, widest = self._scope(dep.sel, dep.models)
        if not hosts:
            return (f"selector {fmt_selector(dep.sel)} matches no host",)
        if not gpus and dep.models:
            return (
                f"GPU model: none of the GPUs of the {len(hosts)} host(s) matching the selector "
                f"is {fmt_models(dep.models)}",
            )
        if not gpus:
            return (f"the {len(hosts)} host(s) matching the selector have no GPUs",)
        structural = _structural(dep, largest, widest)
        if structural:
            return structural
        n_full, most_free, checked, complete = self._split(dep)
        reasons: list[str] = []
        no_slot = [h for h in hosts if st.host_full(h)]
        if no_slot:
            reasons.append(
                f"containers per host: {len(no_slot)} matching host(s) have no container slot left "
                f"(port range or max_containers; e.g. {st.hosts[no_slot[0]].name} runs {st.host_count[no_slot[0]]})"
            )
        if n_full:
            reasons.append(
                f"memory: full on {n_full} GPU(s) (needs {dep.mem:.1f} GB per GPU, most free is {most_free:.1f} GB)"
            )
        count = "" if complete else "at least "
        hits: dict[str, list[Gpu]] = {}
        free_on: dict[int, int] = {}
        for g in checked:
            kinds = _kinds(st, dep, g)
            for kind in kinds:
                hits.setdefault(kind, []).append(g)
            if not kinds:
                free_on[g.host] = free_on.get(g.host, 0) + 1
        for kind in KINDS:
            if kind in hits:
                g = hits[kind][0]
                example = next(b for b in blockers(st, dep, g) if b.kind == kind)
                reasons.append(_summary(dep, kind, f"{count}{len(hits[kind])}", g, example))
        if dep.k > 1:
            most = max(free_on.values(), default=0)
            if most < dep.k:
                reasons.append(
                    f"tensor parallel: needs {dep.k} GPUs on one host, most free on one host is {most}"
                )
        return tuple(reasons) or ("no GPU satisfies every rule at once",)

    def _scope(
        self, sel: SelectorKey, models: tuple[str, ...]
    ) -> tuple[list[int], list[Gpu], float, int]:
        """Matching hosts, their GPUs of the models allowed, the largest usable one and
        the most such GPUs on one host."""
        scope = self._by_sel.get((sel, models))
        if scope is None:
            st = self.st
            ok = st.eligible(sel)
            kinds = st.kind_ok(models) if models else None
            hosts = [h for h in range(len(st.hosts)) if ok[h]]
            per_host = [
                [
                    st.gpus[gid]
                    for gid in st.host_gpus[h]
                    if kinds is None or kinds[st.gpus[gid].kind]
                ]
                for h in hosts
            ]
            gpus = [g for own in per_host for g in own]
            largest = max((g.usable for g in gpus), default=0.0)
            widest = max((len(own) for own in per_host), default=0)
            scope = (hosts, gpus, largest, widest)
            self._by_sel[(sel, models)] = scope
        return scope

    def _split(self, dep: Dep) -> tuple[int, float, list[Gpu], bool]:
        """GPUs without memory room (count, most free), the first GPUs with room (tightest
        first, up to the cap) and whether those are all of them."""
        st = self.st
        ok = st.eligible(dep.sel)
        key = (dep.mem - EPS, -1)
        roomy: list[Gpu] = []
        complete = True
        n_full = 0
        most_free = 0.0
        for index in (st.open_idx, st.empty_idx):
            cut = bisect_left(index, key)
            if dep.sel or dep.models:
                full = [e for e in index[:cut] if st.allowed(dep, st.gpus[e[1]])]
                n_full += len(full)
                if full:
                    most_free = max(most_free, full[-1][0])
            elif cut:
                n_full += cut
                most_free = max(most_free, index[cut - 1][0])
            for _, gid in index[cut:]:
                g = st.gpus[gid]
                if ok[g.host] and st.type_ok(dep, g):
                    if len(roomy) == self.cap:
                        complete = False
                        break
                    roomy.append(g)
        for g in self.exclusive:
            if ok[g.host] and st.type_ok(dep, g):
                if g.used + dep.mem > g.usable + EPS:
                    n_full += 1
                    most_free = max(most_free, g.free)
                elif len(roomy) < self.cap:
                    roomy.append(g)
                else:
                    complete = False
        return n_full, max(most_free, 0.0), roomy, complete


def _kinds(st: State, dep: Dep, g: Gpu) -> list[str]:
    """The kinds of `blockers` for a GPU with memory room, from its cached sums."""
    out: list[str] = []
    if g.excl:
        out.append("exclusive-held")
    elif dep.exclusive and g.tenants:
        out.append("needs-empty")
    on = st.dep_gpus.get(dep.name)
    if on and on.get(g.gid):
        out.append("sibling")
    u = dep.util(g)
    total = g.util + u
    if total > 1 + EPS:
        out.append("compute")
    if total > g.cap + EPS and any(
        t.dep.sla is not None and total > t.dep.slack + t.dep.util(g) + EPS for t in g.tenants
    ):
        out.append("sla-other")
    if dep.sla is not None and total > dep.slack + u + EPS:
        out.append("sla-self")
    return out


def _structural(dep: Dep, largest: float, widest: int) -> tuple[str, ...]:
    """Reasons that hold even on an idle fleet: no amount of moving things would help."""
    out: list[str] = []
    if dep.mem > largest + EPS:
        out.append(
            f"memory: needs {dep.mem:.1f} GB per GPU, largest usable GPU has {largest:.1f} GB"
        )
    if dep.slack < -EPS and dep.sla is not None and dep.latency is not None:
        out.append(
            f"SLA: latency {fmt_num(dep.latency)} ms alone already exceeds the {fmt_num(dep.sla)} ms SLA"
        )
    if dep.k > widest:
        out.append(
            f"tensor parallel: needs {dep.k} GPUs on one host, the largest matching host has {widest}"
        )
    return tuple(out)


def _summary(dep: Dep, kind: str, n: str, g: Gpu, b: Blocker) -> str:
    where = g.label
    if kind == "sla-other":
        return f"SLA: would break on {n} GPU(s) with room ({b.detail} on {where})"
    if kind == "sla-self":
        return f"SLA: would break its own on {n} GPU(s) with room ({b.detail} on {where})"
    if kind == "compute":
        return (
            f"compute: utilisation would exceed 1 on {n} GPU(s) with room ({b.detail} on {where})"
        )
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
        head = (
            f"{it.how} on {where}: {max(tight.free, 0.0):.1f} of {tight.usable:.1f} GB free after"
        )
    parts = [head]
    dep = it.dep
    if dep.sla is not None and dep.latency is not None:
        seen = max(p95_with_load(dep.latency, g.util - dep.util(g)) for g in gs)
        parts.append(f"SLA ok: {fmt_ms(seen)} ms <= {fmt_num(dep.sla)} ms")
    if st.siblings_on_host(dep, g0.host) > len(gs) and it.how != "kept":
        parts.append("shares the host with another replica (no other host had room)")
    return "; ".join(parts)
