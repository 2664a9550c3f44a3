"""Domain values shared by placement, planning and apply.

These are frozen dataclasses built from the validated inventory (and, for the observed
fleet, from what the Docker adapter saw). Pure decisions take and return only these;
they never see pydantic models, ORM rows, Docker objects or HTTP clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


@dataclass(frozen=True)
class GpuSpec:
    """One GPU of a host as placement sees it."""

    index: int
    memory_gb: float  # total memory of the device
    reserve_gb: float = 0.0  # kept free for the driver, other processes, headroom
    model: str = ""

    @property
    def usable_gb(self) -> float:
        return self.memory_gb - self.reserve_gb


@dataclass(frozen=True)
class HostSpec:
    """A Docker host and its GPUs."""

    name: str
    gpus: tuple[GpuSpec, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    simulated: bool = False
    max_containers: int | None = None  # replicas the host may run, whatever their GPUs

    def matches(self, selector: Mapping[str, str]) -> bool:
        return all(self.labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True)
class Deployment:
    """One version of one model that must run: `name@version`.

    `memory_gb` is one replica's total need, split evenly over its `gpus`.
    `gpu_util` and `latency_ms` are None where the inventory does not say; placement then
    uses the documented defaults (util = memory share of the GPU, latency = sla / 2).
    """

    model: str
    version: str
    runtime: str
    image: str
    memory_gb: float
    gpus: int = 1
    replicas: int = 1
    sla_ms: float | None = None
    latency_ms: float | None = None
    gpu_util: float | None = None
    exclusive: bool = False
    selector: Mapping[str, str] = field(default_factory=dict)
    customers: tuple[str, ...] = ()  # non-empty for a pinned version
    # Runtime-specific, secret-free settings (env, nim:, triton: blocks) used to render
    # the container spec; part of the desired-spec hash.
    settings: Mapping[str, Any] = field(default_factory=dict)
    # GPU models the replica may run on (placement.gpus.model_matches); empty: any GPU.
    gpu_models: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.model}@{self.version}"

    @property
    def memory_per_gpu_gb(self) -> float:
        return self.memory_gb / self.gpus

    @property
    def pinned(self) -> bool:
        return bool(self.customers)


class ReplicaKey(NamedTuple):
    """One replica of a deployment: placement's key, and the health sweep's memory's."""

    deployment: str  # name@version
    replica: int  # 0-based

    def __str__(self) -> str:
        return f"{self.deployment}#{self.replica}"


@dataclass(frozen=True)
class Assignment:
    """Where one replica runs: a host and the GPU indexes it holds there."""

    deployment: str
    replica: int
    host: str
    gpus: tuple[int, ...]

    @property
    def key(self) -> ReplicaKey:
        return ReplicaKey(self.deployment, self.replica)


@dataclass(frozen=True)
class Unplaced:
    """A replica that could not be placed, with the reason per constraint."""

    deployment: str
    replica: int
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Placement:
    """The result of placement: assignments, failures and a few figures."""

    assignments: tuple[Assignment, ...]
    unplaced: tuple[Unplaced, ...] = ()
    # Short "why here" per replica, keyed by str(ReplicaKey).
    reasons: Mapping[str, str] = field(default_factory=dict)
    # No valid placement uses fewer GPUs (the solver's bound where it ran, else the
    # counting bound), and how the search ended: heuristic, optimal, feasible, ...
    lower_bound: int | None = None
    search: str = "heuristic"

    @property
    def feasible(self) -> bool:
        return not self.unplaced

    def gpus_used(self) -> int:
        return len({(a.host, g) for a in self.assignments for g in a.gpus})
