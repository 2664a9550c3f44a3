"""How many GPUs each model holds in a plan, a shared GPU counted by memory share.

A GPU held alone counts 1. A GPU shared by several replicas counts, for each of them,
its memory on that GPU over the memory of all the GPU's tenants; the shares of one GPU
add up to 1, so the holdings of all models add up to the plan's GPUs used. This prices
what a model costs of the GPUs the fleet actually runs, not of idle capacity. A replica
the plan could not place counts one GPU per replica-GPU, as it would alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetctl.core.plan import Plan, per_model


@dataclass(frozen=True)
class GpuShare:
    host: str
    index: int
    deployment: str
    replica: int
    share: float  # 0-1 of this GPU


@dataclass(frozen=True)
class Holding:
    model: str
    shares: tuple[GpuShare, ...] = ()
    unplaced_gpus: int = 0

    @classmethod
    def none(cls, model: str = "") -> Holding:
        return cls(model)

    @property
    def gpus(self) -> float:
        return sum(s.share for s in self.shares) + self.unplaced_gpus

    @property
    def note(self) -> str:
        if not self.shares and not self.unplaced_gpus:
            return "holds no GPU in the plan (no replicas)"
        whole = sum(1 for s in self.shares if s.share >= 1 - 1e-9)
        shared = [s for s in self.shares if s.share < 1 - 1e-9]
        parts = []
        if whole:
            parts.append(f"{whole} GPU{'s' if whole != 1 else ''} alone")
        if shared:
            share_text = " + ".join(f"{s.share:.2f}" for s in shared)
            parts.append(
                f"memory share of {len(shared)} shared GPU{'s' if len(shared) != 1 else ''} ({share_text})"
            )
        if self.unplaced_gpus:
            parts.append(f"{self.unplaced_gpus} unplaced replica-GPU(s) counted whole")
        return "; ".join(parts)


def holdings(plan: Plan) -> dict[str, Holding]:
    """Per model (all its versions), the GPUs it holds in `plan` (a shared Triton
    server's GPUs split among its members by memory)."""
    plan = per_model(plan)
    by_name = {d.name: d for d in plan.deployments}
    tenants: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for a in plan.placement.assignments:
        for g in a.gpus:
            tenants.setdefault((a.host, g), []).append((a.deployment, a.replica))
    shares: dict[str, list[GpuShare]] = {}
    for (host, index), here in sorted(tenants.items()):
        total = sum(by_name[dep].memory_per_gpu_gb for dep, _ in here)
        for dep, replica in sorted(here):
            d = by_name[dep]
            share = d.memory_per_gpu_gb / total if total > 0 else 1 / len(here)
            shares.setdefault(d.model, []).append(GpuShare(host, index, dep, replica, share))
    unplaced: dict[str, int] = {}
    for u in plan.placement.unplaced:
        d = by_name[u.deployment]
        unplaced[d.model] = unplaced.get(d.model, 0) + d.gpus
    models = {d.model for d in plan.deployments}
    return {m: Holding(m, tuple(shares.get(m, ())), unplaced.get(m, 0)) for m in sorted(models)}
