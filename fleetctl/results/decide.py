"""The results of `report` and `advise` (pure, over the offline plan)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fleetctl.decide.advise import (
    BASELINE,
    BUILD_CUSTOM_QUANTIZATION_BONUS,
    BUILD_CUSTOM_TOPOLOGY_BONUS,
    NIM_STOCK_OPENAI_BONUS,
    OPTIONS,
    WEEKS_TO_PRODUCTION,
    Advice,
)
from fleetctl.decide.conflicts import AT_LIMIT_RATIO, PairFinding
from fleetctl.decide.report import HOURS_PER_MONTH, Report, Tenant
from fleetctl.decide.weights import Weights
from fleetctl.results import FORMAT_VERSION, Hidden, hidden


@dataclass(frozen=True)
class ModelCounts:
    count: int
    by_runtime: dict[str, tuple[str, ...]]
    by_framework: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class ReportDeployment:
    name: str
    model: str
    runtime: str
    framework: str | None
    replicas: int
    gpus: int
    memory_gb: float
    sla_ms: float | None
    demand_gb: float


@dataclass(frozen=True)
class MemoryFigures:
    demanded_gb: float
    capacity_gb: float


@dataclass(frozen=True)
class GpuCounts:
    naive: int
    packed: int
    lower_bound: int
    total: int


@dataclass(frozen=True)
class ReportGpu:
    host: str
    index: int
    model: str
    capacity_gb: float
    used_gb: float
    memory_share: float
    compute_share: float
    tenants: tuple[Tenant, ...]


@dataclass(frozen=True)
class Finding:
    deployment: str
    beside: str
    predicted_p95_ms: float | None  # None: it cannot meet any SLA beside it
    sla_ms: float
    gpu: str
    message: str


@dataclass(frozen=True)
class NimLicence:
    gpus_packed: int
    gpus_naive: int
    packed_usd_per_month: float
    naive_usd_per_month: float


@dataclass(frozen=True)
class ReportCosts:
    hours_per_month: int
    gpu_hour_usd: float
    gpus_packed_usd_per_month: float
    gpus_naive_usd_per_month: float
    gpus_lower_bound_usd_per_month: float
    nim_licence: NimLicence | None
    total_packed_usd_per_month: float
    total_naive_usd_per_month: float
    saved_usd_per_month: float


@dataclass(frozen=True)
class UnplacedReplica:
    replica: str
    reasons: str


@dataclass(frozen=True, kw_only=True)
class ReportResult:
    """`fleetctl report`: what the fleet runs, how it packs, the SLA conflicts, the costs."""

    format_version: int = FORMAT_VERSION
    inventory: str
    models: ModelCounts
    deployments: tuple[ReportDeployment, ...]
    memory: MemoryFigures
    gpus: GpuCounts
    gpu_map: tuple[ReportGpu, ...]
    sla_conflicts: tuple[Finding, ...]
    sla_at_limit: tuple[Finding, ...]
    sla_at_limit_ratio: float
    costs: ReportCosts
    unplaced: tuple[UnplacedReplica, ...]
    triton_servers: tuple[str, ...]
    html: str | None = None  # where --html wrote the page
    report: Hidden = hidden()  # the Report, for the table and the page


def _finding(f: PairFinding) -> Finding:
    p95 = None if f.predicted_p95_ms == float("inf") else round(f.predicted_p95_ms, 3)
    return Finding(f.deployment, f.beside, p95, f.sla_ms, f.gpu, f.message())


def report_result(r: Report, html: str | None = None) -> ReportResult:
    c = r.costs
    return ReportResult(
        inventory=r.inventory,
        models=ModelCounts(r.models, dict(r.by_runtime), dict(r.by_framework)),
        deployments=tuple(
            ReportDeployment(
                d.name,
                d.model,
                d.runtime,
                d.framework,
                d.replicas,
                d.gpus,
                d.memory_gb,
                d.sla_ms,
                d.demand_gb,
            )
            for d in r.deployments
        ),
        memory=MemoryFigures(round(r.demanded_gb, 3), round(r.capacity_gb, 3)),
        gpus=GpuCounts(r.gpus_naive, r.gpus_packed, r.gpus_lower_bound, r.gpus_total),
        gpu_map=tuple(
            ReportGpu(
                g.host,
                g.index,
                g.model,
                g.capacity_gb,
                g.used_gb,
                round(g.memory_share, 4),
                round(g.util, 4),
                g.tenants,
            )
            for g in r.gpu_rows
        ),
        sla_conflicts=tuple(_finding(f) for f in r.conflicts),
        sla_at_limit=tuple(_finding(f) for f in r.at_limit),
        sla_at_limit_ratio=AT_LIMIT_RATIO,
        costs=ReportCosts(
            hours_per_month=HOURS_PER_MONTH,
            gpu_hour_usd=c.gpu_hour_usd,
            gpus_packed_usd_per_month=round(c.packed_usd_month, 2),
            gpus_naive_usd_per_month=round(c.naive_usd_month, 2),
            gpus_lower_bound_usd_per_month=round(c.lower_bound_usd_month, 2),
            nim_licence=None
            if not c.runs_nim
            else NimLicence(
                c.nim_gpus_packed,
                c.nim_gpus_naive,
                round(c.nim_licence_packed_usd_month, 2),
                round(c.nim_licence_naive_usd_month, 2),
            ),
            total_packed_usd_per_month=round(c.total_packed_usd_month, 2),
            total_naive_usd_per_month=round(c.total_naive_usd_month, 2),
            saved_usd_per_month=round(c.saved_usd_month, 2),
        ),
        unplaced=tuple(UnplacedReplica(k, v) for k, v in r.unplaced),
        triton_servers=tuple(r.triton_servers),
        html=html,
        report=r,
    )


@dataclass(frozen=True)
class TermRow:
    dimension: str
    baseline: float
    weight: float
    value: float


@dataclass(frozen=True)
class OptionRow:
    option: str
    score: float
    normalised: float
    weighted: float
    bonus: float
    excluded: bool
    terms: tuple[TermRow, ...]


@dataclass(frozen=True)
class AdjustmentRow:
    option: str
    kind: str
    points: float
    reason: str


@dataclass(frozen=True)
class PricingRow:
    gpus: float
    gpu_note: str
    licence_per_year_usd: float
    alternative: str
    weeks_saved: float
    engineering_saved_usd: float
    larger: str


@dataclass(frozen=True)
class OutcomeRow:
    value: str
    effect: str
    winners: tuple[str, ...]
    changes: bool
    decides: bool


@dataclass(frozen=True)
class OpenFactRow:
    """A fact the inventory leaves unknown, and what each of its values would do."""

    fact: str
    decides: bool
    reason: str
    outcomes: tuple[OutcomeRow, ...]


@dataclass(frozen=True)
class ModelAdvice:
    model: str
    runtime: str
    facts: dict[str, Any]
    winner: str
    ranking: tuple[OptionRow, ...]
    adjustments: tuple[AdjustmentRow, ...]
    open_facts: tuple[OpenFactRow, ...]
    pricing: PricingRow | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Bonuses:
    nim_stock_openai: float
    build_custom_quantization: float
    build_custom_topology: float


@dataclass(frozen=True, kw_only=True)
class AdviseResult:
    """`fleetctl advise [MODEL]`: build, Triton or NIM per model, with the arithmetic."""

    format_version: int = FORMAT_VERSION
    weights: dict[str, float]
    weights_source: str
    weight_total: float
    baseline: dict[str, dict[str, float]]
    bonuses: Bonuses
    weeks_to_production: dict[str, float]
    models: tuple[ModelAdvice, ...]
    model: ModelAdvice | None = None  # `advise MODEL`: that model's advice
    advices: Hidden = hidden(())  # the Advice values, for the table
    costs: Hidden = hidden()  # the inventory's costs, for `advise MODEL`'s account


def model_advice(a: Advice) -> ModelAdvice:
    p = a.pricing
    return ModelAdvice(
        model=a.model,
        runtime=a.runtime,
        facts=dict(a.facts),
        winner=a.winner,
        ranking=tuple(
            OptionRow(
                s.option,
                round(s.score, 4),
                round(s.normalised, 4),
                round(s.weighted, 4),
                round(s.bonus, 4),
                s.excluded,
                tuple(TermRow(t.dimension, t.baseline, t.weight, t.value) for t in s.terms),
            )
            for s in a.ranking
        ),
        adjustments=tuple(
            AdjustmentRow(j.option, j.kind, j.points, j.reason) for j in a.adjustments
        ),
        open_facts=tuple(
            OpenFactRow(
                f.fact,
                f.decides,
                f.reason(),
                tuple(
                    OutcomeRow(o.value, o.effect, tuple(o.winners), o.changes, o.decides)
                    for o in f.outcomes
                ),
            )
            for f in a.open_facts
        ),
        pricing=None
        if p is None
        else PricingRow(
            round(p.gpus, 4),
            p.gpu_note,
            round(p.licence_per_year_usd, 2),
            p.alternative,
            p.weeks_saved,
            round(p.engineering_saved_usd, 2),
            p.larger,
        ),
        reasons=tuple(a.reasons()),
    )


def advise_result(
    advices: Sequence[Advice], weights: Weights, costs: Any = None, *, one: bool = False
) -> AdviseResult:
    models = tuple(model_advice(a) for a in advices)
    return AdviseResult(
        weights=weights.as_dict(),
        weights_source=weights.source,
        weight_total=weights.total,
        baseline={o: dict(BASELINE[o]) for o in OPTIONS},
        bonuses=Bonuses(
            NIM_STOCK_OPENAI_BONUS, BUILD_CUSTOM_QUANTIZATION_BONUS, BUILD_CUSTOM_TOPOLOGY_BONUS
        ),
        weeks_to_production=dict(WEEKS_TO_PRODUCTION),
        models=models,
        model=models[0] if one and models else None,
        advices=tuple(advices),
        costs=costs,
    )
