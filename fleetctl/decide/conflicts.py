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

Not every pair is judged (that is quadratic: minutes for a thousand models): for each
deployment with an SLA the neighbours are scanned from the most demanding down, and
the scan stops where the rest leave its SLA comfortable, after SCAN_LIMIT candidates,
or after PER_DEPLOYMENT findings (see `sla_findings`). A pair whose least demanding GPU
kind has no memory room for both may therefore go unlisted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
    fitting = [
        g for g in candidates if a.memory_per_gpu_gb + b.memory_per_gpu_gb <= g.usable_gb + EPS
    ]
    if not fitting:
        return [], []
    scored = []
    for g in fitting:
        found = _findings_on(a, b, g)
        worst = max(
            (_ratio(a if f.deployment == a.name else b, f.predicted_p95_ms) for f in found),
            default=0.0,
        )
        scored.append((worst, found))
    # The most favourable GPU decides: if the pair can share anywhere, it is no conflict.
    worst, found = min(scored, key=lambda s: s[0])
    if any(f.breaks for f in found):
        return [f for f in found if f.breaks], []
    return [], [f for f in found if f.predicted_p95_ms >= AT_LIMIT_RATIO * f.sla_ms]


# Per deployment: the findings listed (its SLA broken or at the limit beside another),
# and the candidates examined before the scan gives up. Bounds that keep `report` at
# plan speed on fleets of thousands, where the pairs number in millions.
PER_DEPLOYMENT = 5
SCAN_LIMIT = 256


def sla_findings(deployments: Sequence[Deployment], hosts: Sequence[HostSpec]) -> Findings:
    """For each deployment x with an SLA, the others beside which x breaks its SLA (or
    sits at the limit): the neighbours are scanned from the most demanding (by their
    smallest utilisation over the fleet's GPU kinds) down to the first that leaves x
    within AT_LIMIT_RATIO of its SLA on that kind, at most SCAN_LIMIT of them, and at
    most PER_DEPLOYMENT findings are listed per x. Each pair is judged exactly
    (pair_findings)."""
    live = [d for d in deployments if d.replicas > 0]
    kinds_all: dict[tuple[float, float, str], GpuSpec] = {}
    for h in hosts:
        for g in h.gpus:
            kinds_all.setdefault((g.memory_gb, g.reserve_gb, g.model), g)
    gpu_kinds = list(kinds_all.values())
    if not gpu_kinds:
        return Findings((), ())
    from fleetctl.core.sla import util_of

    pressure = sorted(
        ((min(util_of(d, g) for g in gpu_kinds), d.name, d) for d in live),
        key=lambda t: (-t[0], t[1]),
    )
    kinds: KindCache = {}
    judged: dict[tuple[str, str], tuple[list[PairFinding], list[PairFinding]]] = {}
    conflicts: dict[tuple[str, str], PairFinding] = {}
    at_limit: dict[tuple[str, str], PairFinding] = {}
    for x in live:
        latency = latency_of(x)
        if x.sla_ms is None or latency is None or x.exclusive:
            continue
        floor = 1.0 - latency / (
            AT_LIMIT_RATIO * x.sla_ms
        )  # neighbours' util below: x is comfortable
        listed = scanned = 0
        for util, _name, y in pressure:
            if util < floor - EPS or scanned >= SCAN_LIMIT or listed >= PER_DEPLOYMENT:
                break
            if y is x:
                continue
            scanned += 1
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
