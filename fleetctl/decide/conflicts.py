"""Which deployments the SLAs keep apart: pairs that fit one GPU by memory, not by latency.

Method, for every unordered pair of deployments (a, b):

1. The candidate GPUs are the fleet's GPUs on hosts whose labels match both selectors,
   taken once per kind (memory, reserve, model): identical GPUs give identical answers.
   A pair with an exclusive member is skipped (it shares nothing, SLA or not), and so is
   a member whose SLA is out of reach even alone (that is its own problem, not the
   pair's).
2. Keep the candidates where both fit by memory: a's and b's memory per GPU together
   within the GPU's usable memory. No such GPU: memory keeps them apart, not an SLA.
3. On each of those GPUs predict each one's p95 beside the other with
   `sla.predicted_p95(x, gpu, [y])`. The pair can share when, on some GPU, both stay
   within their SLA (same tolerance as placement).
4. Otherwise it is an SLA conflict. It is reported on the GPU where the pair came
   closest (smallest worst ratio of predicted p95 to SLA), once per member whose SLA
   breaks there: "x beside y: predicted P ms > S ms SLA".

Pairs that can share but leave a member within `AT_LIMIT_RATIO` of its SLA are
reported apart, as "at the limit": they share with no headroom.

Only pairs are checked: a GPU of three tenants can break an SLA that no pair breaks,
and placement checks that on every GPU; this list explains the pairwise decisions.

Not every pair is judged (that is quadratic: minutes for a thousand models). For each
deployment x with an SLA only its likeliest neighbours are: per kind of GPU, the
CANDIDATES deployments that fit beside x by memory and take the most compute there
(found by one sweep over the deployments sorted by memory, not by pairs), and of those
the ones that take enough to bring x within AT_LIMIT_RATIO of its SLA. They are judged
exactly (`pair_findings`), most demanding first, until PER_DEPLOYMENT findings are
listed for x. On a fleet with one kind of GPU that is every neighbour that breaks x's
SLA, up to the bound; where kinds differ, a pair that can share on one kind but not on
another is judged and dropped, and may push a real finding past the candidates. The
sweeps cost n log n per kind of GPU and per distinct host selector.
"""

from __future__ import annotations

import bisect
import functools
import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleetctl.core.fleet import Deployment, GpuSpec, HostSpec
from fleetctl.core.sla import EPS, fmt_ms, fmt_num, latency_of, p95_with_load, util_of

AT_LIMIT_RATIO = 0.99


@dataclass(frozen=True)
class PairFinding:
    deployment: str  # whose p95 is predicted
    beside: str
    predicted_p95_ms: float
    sla_ms: float
    gpu: str  # the kind of GPU the prediction was made on

    @property
    def breaks(self) -> bool:
        return self.predicted_p95_ms > self.sla_ms + EPS

    def message(self) -> str:
        op = (
            ">" if self.breaks else "=" if abs(self.predicted_p95_ms - self.sla_ms) <= EPS else "<="
        )
        return (
            f"{self.deployment} beside {self.beside}: predicted {fmt_ms(self.predicted_p95_ms)} ms "
            f"{op} {fmt_num(self.sla_ms)} ms SLA"
        )


@dataclass(frozen=True)
class Findings:
    conflicts: tuple[PairFinding, ...]
    at_limit: tuple[PairFinding, ...]


@functools.lru_cache(maxsize=1024)
def describe_gpu(g: GpuSpec) -> str:
    name = g.model or "GPU"
    reserve = f", {fmt_num(g.reserve_gb)} GB reserved" if g.reserve_gb else ""
    return f"{name} {fmt_num(g.memory_gb)} GB{reserve}"


def _kinds(hosts: Sequence[HostSpec], a: Deployment, b: Deployment) -> list[GpuSpec]:
    seen: dict[tuple[float, float, str], GpuSpec] = {}
    for h in hosts:
        if h.matches(a.selector) and h.matches(b.selector):
            for g in h.gpus:
                seen.setdefault((g.memory_gb, g.reserve_gb, g.model), g)
    return list(seen.values())


def _reachable_alone(d: Deployment) -> bool:
    latency = latency_of(d)
    return d.sla_ms is None or latency is None or latency <= d.sla_ms + EPS


def _findings_on(a: Deployment, b: Deployment, g: GpuSpec) -> list[PairFinding]:
    out = []
    for x, y in ((a, b), (b, a)):
        latency = latency_of(x)
        if x.sla_ms is None or latency is None:
            continue
        # predicted_p95(x, g, [y]), without building the list of one
        p95 = p95_with_load(latency, util_of(y, g))
        out.append(PairFinding(x.name, y.name, p95, x.sla_ms, describe_gpu(g)))
    return out


KindCache = dict[tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]], list[GpuSpec]]


def pair_findings(
    a: Deployment, b: Deployment, hosts: Sequence[HostSpec], kinds: KindCache | None = None
) -> tuple[list[PairFinding], list[PairFinding]]:
    """(conflicts, at-the-limit findings) for one pair; both empty when nothing to say.

    `kinds` caches the GPU kinds per pair of selectors, so a fleet's pairs do not each
    scan every host."""
    if a.exclusive or b.exclusive or not (_reachable_alone(a) and _reachable_alone(b)):
        return [], []
    if kinds is None:
        candidates = _kinds(hosts, a, b)
    else:
        key = (tuple(sorted(a.selector.items())), tuple(sorted(b.selector.items())))
        candidates = kinds.get(key)  # type: ignore[assignment]
        if candidates is None:
            candidates = kinds[key] = _kinds(hosts, a, b)
    fitting = [
        g for g in candidates if a.memory_per_gpu_gb + b.memory_per_gpu_gb <= g.usable_gb + EPS
    ]
    if not fitting:
        return [], []
    scored = []
    for g in fitting:
        found = _findings_on(a, b, g)
        worst = max((f.predicted_p95_ms / f.sla_ms for f in found), default=0.0)
        scored.append((worst, found))
    # The most favourable GPU decides: if the pair can share anywhere, it is no conflict.
    worst, found = scored[0] if len(scored) == 1 else min(scored, key=lambda s: s[0])
    if any(f.breaks for f in found):
        return [f for f in found if f.breaks], []
    return [], [f for f in found if f.predicted_p95_ms >= AT_LIMIT_RATIO * f.sla_ms]


# Per deployment: the findings listed (its SLA broken or at the limit beside another),
# and the neighbours judged per kind of GPU. Bounds that keep `report` at plan speed on
# fleets of thousands, where the pairs number in millions.
PER_DEPLOYMENT = 5
CANDIDATES = 20

GpuKey = tuple[float, float, str]
Selector = tuple[tuple[str, str], ...]


def _selector(d: Deployment) -> Selector:
    return tuple(sorted(d.selector.items()))


def _sweep(
    queries: Sequence[Deployment], memory: Sequence[float], rank: Sequence[int], usable: float
) -> dict[str, list[int]]:
    """For each query x, the CANDIDATES + 1 best-ranked entries of a pool sorted by
    `memory` (per GPU) that fit beside x on a GPU of `usable` memory: the pool's prefix
    within x's room, its best kept in a heap as the room grows (each entry seen once).
    `rank` orders the pool by demand, the most demanding 0."""
    out: dict[str, list[int]] = {}
    worst_first: list[int] = []  # negated ranks: the least demanding kept is on top
    taken = 0
    for x in sorted(queries, key=lambda d: -d.memory_per_gpu_gb):
        end = bisect.bisect_right(memory, usable - x.memory_per_gpu_gb + EPS, lo=taken)
        for i in range(taken, end):
            if len(worst_first) <= CANDIDATES:
                heapq.heappush(worst_first, -rank[i])
            elif -rank[i] > worst_first[0]:
                heapq.heapreplace(worst_first, -rank[i])
        taken = max(taken, end)
        out[x.name] = [-r for r in worst_first]
    return out


def _candidates(
    live: Sequence[Deployment], hosts: Sequence[HostSpec]
) -> dict[str, list[tuple[float, str, Deployment]]]:
    """Per deployment with an SLA, its likeliest neighbours: (util, name, deployment),
    the most demanding first, at most CANDIDATES of them."""
    judged = [d for d in live if not d.exclusive and _reachable_alone(d)]
    queries = [d for d in judged if d.sla_ms is not None and latency_of(d) is not None]
    groups: dict[Selector, list[Deployment]] = {}
    for d in judged:
        groups.setdefault(_selector(d), []).append(d)
    asking: dict[Selector, list[Deployment]] = {}
    for d in queries:
        asking.setdefault(_selector(d), []).append(d)
    # Per kind of GPU, the hosts that have it, and which of them each selector matches.
    kinds: dict[GpuKey, GpuSpec] = {}
    where: dict[GpuKey, set[int]] = {}
    for i, h in enumerate(hosts):
        for g in h.gpus:
            key = (g.memory_gb, g.reserve_gb, g.model)
            kinds.setdefault(key, g)
            where.setdefault(key, set()).add(i)
    found: dict[str, dict[str, float]] = {d.name: {} for d in queries}
    by_name = {d.name: d for d in judged}
    for key, g in kinds.items():
        matched = {sel: {i for i in where[key] if hosts[i].matches(dict(sel))} for sel in groups}
        pools: dict[
            frozenset[Selector], tuple[list[float], list[int], list[tuple[float, str, float]]]
        ] = {}
        for sel, mine in asking.items():
            # The selectors whose deployments can meet these on a GPU of this kind.
            beside = frozenset(o for o in groups if matched[o] & matched[sel])
            if not beside:
                continue
            if beside not in pools:
                # By demand (the most compute first, then by name), then by memory.
                demand = sorted(
                    (-util_of(d, g), d.name, d.memory_per_gpu_gb) for o in beside for d in groups[o]
                )
                rows = sorted((m, i) for i, (_, _, m) in enumerate(demand))
                pools[beside] = ([m for m, _ in rows], [i for _, i in rows], demand)
            memory, rank, demand = pools[beside]
            for name, best in _sweep(mine, memory, rank, g.usable_gb).items():
                seen = found[name]
                for r in best:
                    neg, other, _ = demand[r]
                    if other != name and seen.get(other, -1.0) < -neg:
                        seen[other] = -neg
    out = {}
    for name, seen in found.items():
        ranked = heapq.nsmallest(CANDIDATES, ((-u, o) for o, u in seen.items()))
        out[name] = [(-neg, o, by_name[o]) for neg, o in ranked]
    return out


def sla_findings(deployments: Sequence[Deployment], hosts: Sequence[HostSpec]) -> Findings:
    """For each deployment x with an SLA, the others beside which x breaks its SLA (or
    sits at the limit): its likeliest neighbours (`_candidates`) that take enough
    compute to bring x within AT_LIMIT_RATIO of its SLA on that kind, judged exactly
    (`pair_findings`), the most demanding first, at most PER_DEPLOYMENT listed per x."""
    live = [d for d in deployments if d.replicas > 0]
    by_name: Mapping[str, Deployment] = {d.name: d for d in live}
    kinds: KindCache = {}
    judged: dict[tuple[str, str], tuple[list[PairFinding], list[PairFinding]]] = {}
    conflicts: dict[tuple[str, str], PairFinding] = {}
    at_limit: dict[tuple[str, str], PairFinding] = {}
    for name, candidates in _candidates(live, hosts).items():
        x = by_name[name]
        latency = latency_of(x)
        if x.sla_ms is None or latency is None:  # never: _candidates asks only these
            continue
        # Neighbours that take less than this leave x comfortable (below the limit).
        floor = 1.0 - latency / (AT_LIMIT_RATIO * x.sla_ms)
        listed = 0
        for util, _name, y in candidates:
            if util < floor - EPS or listed >= PER_DEPLOYMENT:
                break
            key = (x.name, y.name) if x.name < y.name else (y.name, x.name)
            found = judged.get(key)
            if found is None:
                found = judged[key] = pair_findings(x, y, hosts, kinds)
            for f in found[0]:
                if f.deployment == x.name:
                    conflicts[(f.deployment, f.beside)] = f
                    listed += 1
            for f in found[1]:
                if f.deployment == x.name:
                    at_limit[(f.deployment, f.beside)] = f
                    listed += 1
    return Findings(
        tuple(sorted(conflicts.values(), key=_order)), tuple(sorted(at_limit.values(), key=_order))
    )


def _order(f: PairFinding) -> tuple[str, str]:
    return f.deployment, f.beside
