"""The fleet report: what runs, what it demands, how it packs, what the SLAs forced, cost.

Built from the inventory and its offline plan; pure. The same `Report` value is shown
as a table, written as JSON and drawn as an HTML page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleetctl.core.inventory import Inventory
from fleetctl.core.plan import Plan, gpu_map, per_model
from fleetctl.decide.conflicts import PairFinding, sla_findings
from fleetctl.decide.holdings import NIM_RUNTIME, licence_usd_per_year, licensed_gpus

HOURS_PER_MONTH = 730  # 365 x 24 / 12, the usual cloud billing month
MONTHS_PER_YEAR = 12


@dataclass(frozen=True)
class Tenant:
    deployment: str
    model: str
    replica: int
    runtime: str
    memory_gb: float
    util: float
    sla_ms: float | None
    predicted_p95_ms: float | None
    gpus: int = 1  # GPUs one replica spans (tensor parallel)


@dataclass(frozen=True)
class GpuRow:
    host: str
    index: int
    model: str
    capacity_gb: float
    reserve_gb: float
    used_gb: float
    util: float
    tenants: tuple[Tenant, ...]
    simulated: bool = False

    @property
    def key(self) -> str:
        return f"{self.host}/{self.index}"

    @property
    def memory_share(self) -> float:
        return self.used_gb / self.capacity_gb if self.capacity_gb else 0.0


@dataclass(frozen=True)
class DeploymentRow:
    name: str
    model: str
    runtime: str
    framework: str | None
    replicas: int
    gpus: int
    memory_gb: float
    sla_ms: float | None

    @property
    def demand_gb(self) -> float:
        return self.memory_gb * self.replicas


@dataclass(frozen=True)
class CostSheet:
    gpu_hour_usd: float
    packed_usd_month: float
    naive_usd_month: float
    lower_bound_usd_month: float
    nim_gpus_packed: int  # GPUs that host at least one NIM replica: each needs a licence
    nim_gpus_naive: int
    nim_licence_packed_usd_month: float
    nim_licence_naive_usd_month: float

    @property
    def runs_nim(self) -> bool:
        return self.nim_gpus_naive > 0

    @property
    def total_packed_usd_month(self) -> float:
        return self.packed_usd_month + self.nim_licence_packed_usd_month

    @property
    def total_naive_usd_month(self) -> float:
        return self.naive_usd_month + self.nim_licence_naive_usd_month

    @property
    def saved_usd_month(self) -> float:
        return self.total_naive_usd_month - self.total_packed_usd_month


@dataclass(frozen=True)
class Report:
    inventory: str
    by_runtime: Mapping[str, tuple[str, ...]]
    by_framework: Mapping[str, tuple[str, ...]]
    deployments: tuple[DeploymentRow, ...]
    gpus_naive: int
    gpus_packed: int
    gpus_lower_bound: int
    gpus_total: int
    gpu_rows: tuple[GpuRow, ...]
    conflicts: tuple[PairFinding, ...]
    at_limit: tuple[PairFinding, ...]
    costs: CostSheet
    unplaced: tuple[tuple[str, str], ...]  # (replica, reasons)
    triton_servers: tuple[str, ...] = ()  # one line per shared Triton server replica

    @property
    def demanded_gb(self) -> float:
        return sum(d.demand_gb for d in self.deployments)

    @property
    def capacity_gb(self) -> float:
        return sum(g.capacity_gb - g.reserve_gb for g in self.gpu_rows)

    @property
    def models(self) -> int:
        return sum(len(v) for v in self.by_runtime.values())


def _group(pairs: Sequence[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for key, name in pairs:
        out.setdefault(key, []).append(name)
    return {k: tuple(sorted(v)) for k, v in sorted(out.items())}


def _gpu_rows(plan: Plan) -> tuple[GpuRow, ...]:
    by_name = {d.name: d for d in plan.deployments}
    rows = []
    for host in gpu_map(plan):
        for g in host["gpus"]:
            tenants = tuple(
                Tenant(
                    deployment=t["deployment"],
                    model=by_name[t["deployment"]].model,
                    replica=t["replica"],
                    runtime=by_name[t["deployment"]].runtime,
                    memory_gb=t["memory_gb"],
                    util=t["util"],
                    sla_ms=t["sla_ms"],
                    predicted_p95_ms=t["predicted_p95_ms"],
                    gpus=by_name[t["deployment"]].gpus,
                )
                for t in g["tenants"]
            )
            rows.append(
                GpuRow(
                    host=host["host"],
                    index=g["index"],
                    model=g["model"],
                    capacity_gb=g["memory_gb"],
                    reserve_gb=g["reserve_gb"],
                    used_gb=g["used_gb"],
                    util=g["util"],
                    tenants=tenants,
                    simulated=host["simulated"],
                )
            )
    return tuple(rows)


def _costs(inv: Inventory, plan: Plan) -> CostSheet:
    c = inv.costs
    month = c.gpu_hour_usd * HOURS_PER_MONTH
    # The licence rule advise prices with (decide/holdings.py): a GPU with a NIM tenant.
    licence_month = licence_usd_per_year(1, c) / MONTHS_PER_YEAR
    s = plan.summary
    nim_packed = licensed_gpus(plan)
    nim_naive = sum(d.replicas * d.gpus for d in plan.deployments if d.runtime == NIM_RUNTIME)
    return CostSheet(
        gpu_hour_usd=c.gpu_hour_usd,
        packed_usd_month=month * s.gpus_used,
        naive_usd_month=month * s.gpus_naive,
        lower_bound_usd_month=month * s.gpus_lower_bound,
        nim_gpus_packed=nim_packed,
        nim_gpus_naive=nim_naive,
        nim_licence_packed_usd_month=licence_month * nim_packed,
        nim_licence_naive_usd_month=licence_month * nim_naive,
    )


def triton_servers(plan: Plan) -> tuple[str, ...]:
    """One line per shared Triton server replica: `3 models, 1 Triton server on h GPU 1`."""
    out = []
    for a in sorted(
        plan.placement.assignments, key=lambda a: (a.host, a.gpus, a.deployment, a.replica)
    ):
        members = plan.server_members.get(a.deployment)
        if members:
            n = sum(
                len((m.settings.get("triton") or {}).get("models") or [m.model]) for m in members
            )
            gpus = ",".join(str(g) for g in a.gpus)
            out.append(
                f"{n} model{'s' if n != 1 else ''}, 1 Triton server on {a.host} GPU {gpus} ({a.deployment}#{a.replica})"
            )
    return tuple(out)


def build_report(inv: Inventory, plan: Plan, inventory_path: str = "") -> Report:
    """Per model, as the inventory declares them: a shared Triton server's GPUs count
    for its members (split by memory), and its replicas are listed as servers."""
    servers = triton_servers(plan)
    plan = per_model(plan)
    models = inv.models
    by_name = {m.name: m for m in models}
    rows = _gpu_rows(plan)
    findings = sla_findings(plan.deployments, plan.hosts)
    deps = tuple(
        DeploymentRow(
            name=d.name,
            model=d.model,
            runtime=d.runtime,
            framework=by_name[d.model].framework if d.model in by_name else None,
            replicas=d.replicas,
            gpus=d.gpus,
            memory_gb=d.memory_gb,
            sla_ms=d.sla_ms,
        )
        for d in plan.deployments
    )
    s = plan.summary
    return Report(
        inventory=inventory_path,
        by_runtime=_group([(m.runtime, m.name) for m in models]),
        by_framework=_group([(m.framework or "unspecified", m.name) for m in models]),
        deployments=deps,
        gpus_naive=s.gpus_naive,
        gpus_packed=s.gpus_used,
        gpus_lower_bound=s.gpus_lower_bound,
        gpus_total=s.gpus_total,
        gpu_rows=rows,
        conflicts=findings.conflicts,
        at_limit=findings.at_limit,
        costs=_costs(inv, plan),
        unplaced=tuple(
            (f"{u.deployment}#{u.replica}", "; ".join(u.reasons)) for u in plan.placement.unplaced
        ),
        triton_servers=servers,
    )
