"""How many NIM licences each model holds in a plan: the one licence rule of advise and report.

A NIM licence is bought per GPU: a GPU that hosts at least one NIM replica needs one,
whoever else shares it. So the licence of a GPU is split among its NIM tenants by their
memory on it, and a model held alone on a GPU (or beside models that are not NIM) carries
that GPU's licence whole. `report` adds up the models that run NIM: the GPUs that need a
licence. `advise` prices a model as if it ran NIM, the others as they are: its share of
the licences of the GPUs it holds in the plan, counting itself a NIM tenant. For a model
that runs NIM both are the same figure, so the two commands agree.

A replica the plan could not place counts one licence per replica-GPU, as it would alone.
A shared Triton server's GPUs are split among its members (`per_model`).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetctl.core.inventory import Costs
from fleetctl.core.plan import Plan, per_model

NIM_RUNTIME = "nim"


@dataclass(frozen=True)
class GpuShare:
    host: str
    index: int
    deployment: str
    replica: int
    share: float  # 0-1 of this GPU's licence


@dataclass(frozen=True)
class Holding:
    model: str
    shares: tuple[GpuShare, ...] = ()
    unplaced_gpus: int = 0

    @classmethod
    def none(cls, model: str = "") -> Holding:
        return cls(model)

    @property
    def placed_gpus(self) -> float:
        return sum(s.share for s in self.shares)

    @property
    def gpus(self) -> float:
        return self.placed_gpus + self.unplaced_gpus

    @property
    def note(self) -> str:
        if not self.shares and not self.unplaced_gpus:
            return "holds no GPU in the plan (no replicas)"
        # Per GPU: its versions and replicas there together.
        per_gpu: dict[tuple[str, int], float] = {}
        for s in self.shares:
            per_gpu[(s.host, s.index)] = per_gpu.get((s.host, s.index), 0.0) + s.share
        whole = sum(1 for v in per_gpu.values() if v >= 1 - 1e-9)
        shared = [v for v in per_gpu.values() if v < 1 - 1e-9]
        parts = []
        if whole:
            parts.append(f"{whole} GPU licence{'s' if whole != 1 else ''} whole")
        if shared:
            share_text = " + ".join(f"{v:.2f}" for v in shared)
            parts.append(
                f"memory share of {len(shared)} GPU{'s' if len(shared) != 1 else ''} "
                f"shared with other NIM models ({share_text})"
            )
        if self.unplaced_gpus:
            parts.append(f"{self.unplaced_gpus} unplaced replica-GPU(s) counted whole")
        return "; ".join(parts)


def holdings(plan: Plan) -> dict[str, Holding]:
    """Per model (all its versions), the NIM licences it holds in `plan`, counting the
    model itself as NIM and every other model as the runtime it has."""
    plan = per_model(plan)
    by_name = {d.name: d for d in plan.deployments}
    # Per GPU: each model's memory there, and the memory of its NIM tenants.
    tenants: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for a in plan.placement.assignments:
        for g in a.gpus:
            tenants.setdefault((a.host, g), []).append((a.deployment, a.replica))
    shares: dict[str, list[GpuShare]] = {}
    for (host, index), here in sorted(tenants.items()):
        mine: dict[str, float] = {}  # each model's memory on this GPU
        nim = 0.0  # the memory of its NIM tenants
        for dep, _ in here:
            d = by_name[dep]
            mine[d.model] = mine.get(d.model, 0.0) + d.memory_per_gpu_gb
            nim += d.memory_per_gpu_gb if d.runtime == NIM_RUNTIME else 0.0
        for dep, replica in sorted(here):
            d = by_name[dep]
            # The model counts as a NIM tenant, whatever it runs today.
            pool = nim if d.runtime == NIM_RUNTIME else nim + mine[d.model]
            share = d.memory_per_gpu_gb / pool if pool > 0 else 1 / len(here)
            shares.setdefault(d.model, []).append(GpuShare(host, index, dep, replica, share))
    unplaced: dict[str, int] = {}
    for u in plan.placement.unplaced:
        d = by_name[u.deployment]
        unplaced[d.model] = unplaced.get(d.model, 0) + d.gpus
    models = {d.model for d in plan.deployments}
    return {m: Holding(m, tuple(shares.get(m, ())), unplaced.get(m, 0)) for m in sorted(models)}


def licensed_gpus(plan: Plan, held: dict[str, Holding] | None = None) -> int:
    """GPUs of the plan that need a NIM licence: the holdings of the models that run NIM."""
    held = holdings(plan) if held is None else held
    nim_models = {d.model for d in per_model(plan).deployments if d.runtime == NIM_RUNTIME}
    return round(sum(h.placed_gpus for m, h in held.items() if m in nim_models))


def licence_usd_per_year(gpus: float, costs: Costs) -> float:
    """What `gpus` NIM licences cost a year."""
    return gpus * costs.nim_license_per_gpu_year_usd
