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
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

from fleetctl.core.fleet import Deployment, GpuSpec, HostSpec
from fleetctl.core.sla import EPS, fmt_ms, fmt_num, latency_of, predicted_p95

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
        op = ">" if self.breaks else "=" if abs(self.predicted_p95_ms - self.sla_ms) <= EPS else "<="
        return (
            f"{self.deployment} beside {self.beside}: predicted {fmt_ms(self.predicted_p95_ms)} ms "
            f"{op} {fmt_num(self.sla_ms)} ms SLA"
        )


@dataclass(frozen=True)
class Findings:
    conflicts: tuple[PairFinding, ...]
    at_limit: tuple[PairFinding, ...]


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


def _ratio(d: Deployment, p95: float) -> float:
    return p95 / d.sla_ms if d.sla_ms else 0.0


def _reachable_alone(d: Deployment) -> bool:
    latency = latency_of(d)
    return d.sla_ms is None or latency is None or latency <= d.sla_ms + EPS


def _findings_on(a: Deployment, b: Deployment, g: GpuSpec) -> list[PairFinding]:
    out = []
    for x, y in ((a, b), (b, a)):
        if x.sla_ms is None or latency_of(x) is None:
            continue
        out.append(PairFinding(x.name, y.name, predicted_p95(x, g, [y]), x.sla_ms, describe_gpu(g)))
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
    fitting = [g for g in candidates if a.memory_per_gpu_gb + b.memory_per_gpu_gb <= g.usable_gb + EPS]
    if not fitting:
        return [], []
    scored = []
    for g in fitting:
        found = _findings_on(a, b, g)
        worst = max((_ratio(a if f.deployment == a.name else b, f.predicted_p95_ms) for f in found), default=0.0)
        scored.append((worst, found))
    # The most favourable GPU decides: if the pair can share anywhere, it is no conflict.
    worst, found = min(scored, key=lambda s: s[0])
    if any(f.breaks for f in found):
        return [f for f in found if f.breaks], []
    return [], [f for f in found if f.predicted_p95_ms >= AT_LIMIT_RATIO * f.sla_ms]


def sla_findings(deployments: Sequence[Deployment], hosts: Sequence[HostSpec]) -> Findings:
    conflicts: list[PairFinding] = []
    at_limit: list[PairFinding] = []
    live = [d for d in deployments if d.replicas > 0]
    kinds: KindCache = {}
    for a, b in combinations(live, 2):
        c, lim = pair_findings(a, b, hosts, kinds)
        conflicts.extend(c)
        at_limit.extend(lim)
    return Findings(tuple(sorted(conflicts, key=_order)), tuple(sorted(at_limit, key=_order)))


def _order(f: PairFinding) -> tuple[str, str]:
    return f.deployment, f.beside
