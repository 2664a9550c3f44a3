"""Surge placement: where a replacement can run beside the replica it replaces (pure).

A start-first replacement needs room for the old and the new replica at once. When the
replica's own GPUs cannot hold both, the successor may go to another GPU, on the same
host or another, that meets every placement rule with the fleet as planned: memory,
compute, every tenant's SLA, exclusivity, anti-affinity, the host selector and the GPU
models the deployment runs on. Only when
no GPU anywhere can hold it does a replacement have to stop the old replica first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetctl.core.fleet import Assignment, Deployment, GpuSpec, HostSpec
from fleetctl.core.placement.gpus import allows
from fleetctl.core.sla import EPS, predicted_p95, util_of

GpuKey = tuple[str, int]


@dataclass
class GpuLoad:
    """The fleet as planned, per GPU; updated as surges are granted."""

    gpus: dict[GpuKey, GpuSpec]
    hosts: dict[str, HostSpec]
    tenants: dict[GpuKey, list[Deployment]] = field(default_factory=dict)
    replicas: dict[GpuKey, set[tuple[str, int]]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        hosts: Sequence[HostSpec],
        assignments: Sequence[Assignment],
        by_name: dict[str, Deployment],
    ) -> GpuLoad:
        load = cls(
            {(h.name, g.index): g for h in hosts for g in h.gpus}, {h.name: h for h in hosts}
        )
        for a in assignments:
            for g in a.gpus:
                load.add((a.host, g), by_name[a.deployment], a.replica)
        return load

    def add(self, key: GpuKey, d: Deployment, replica: int) -> None:
        self.tenants.setdefault(key, []).append(d)
        self.replicas.setdefault(key, set()).add((d.name, replica))

    def used_gb(self, key: GpuKey) -> float:
        return sum(t.memory_per_gpu_gb for t in self.tenants.get(key, []))

    def holds(self, key: GpuKey, d: Deployment, extra_gb: float = 0.0) -> bool:
        """Whether one more replica of `d` (and `extra_gb` more) fits on GPU `key`."""
        g = self.gpus[key]
        here = self.tenants.get(key, [])
        if self.used_gb(key) + d.memory_per_gpu_gb + extra_gb > g.usable_gb + EPS:
            return False
        if d.exclusive and here or any(t.exclusive for t in here):
            return False
        if sum(util_of(t, g) for t in here) + util_of(d, g) > 1 + EPS:
            return False
        everyone = [*here, d]
        for t in everyone:
            if (
                t.sla_ms is not None
                and predicted_p95(t, g, [o for o in everyone if o is not t]) > t.sla_ms + EPS
            ):
                return False
        return True


def surge_target(load: GpuLoad, d: Deployment, replica: int, old: Assignment) -> Assignment | None:
    """Another GPU for the successor of `old`, the tightest fit first, its own host
    before others; None when only stopping the old replica first would make room."""
    if d.gpus != 1:
        return None  # a tensor-parallel gang moves whole: left to stop-first
    best: tuple[tuple[int, float, str, int], GpuKey] | None = None
    for key, g in load.gpus.items():
        host, index = key
        if (host, index) in {(old.host, i) for i in old.gpus}:
            continue
        if not load.hosts[host].matches(d.selector):
            continue
        if not allows(d.gpu_models, g.model):
            continue
        if any(dep == d.name for dep, _ in load.replicas.get(key, set())):
            continue  # replicas of one deployment never share a GPU
        if not load.holds(key, d):
            continue
        free_after = g.usable_gb - load.used_gb(key) - d.memory_per_gpu_gb
        rank = (0 if host == old.host else 1, free_after, host, index)
        if best is None or rank < best[0]:
            best = (rank, key)
    if best is None:
        return None
    host, index = best[1]
    return Assignment(d.name, replica, host, (index,))
