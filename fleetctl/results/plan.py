"""`plan`'s result (also inside apply's and rollback's), and `validate`'s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetctl.core.explain import ReplicaExplanation
from fleetctl.core.front_door import FrontDoorAction
from fleetctl.core.plan import Action, Plan, Summary, gpu_map
from fleetctl.core.recovery import Recovery
from fleetctl.results import FORMAT_VERSION, Hidden, hidden


@dataclass(frozen=True)
class PlacementRow:
    deployment: str
    replica: int
    host: str
    gpus: tuple[int, ...]


@dataclass(frozen=True)
class UnplacedRow:
    deployment: str
    replica: int
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class GpuTenant:
    deployment: str
    replica: int
    memory_gb: float
    util: float  # share of the GPU's compute
    sla_ms: float | None
    predicted_p95_ms: float | None


@dataclass(frozen=True)
class GpuUse:
    index: int
    model: str
    memory_gb: float
    reserve_gb: float
    used_gb: float
    util: float
    tenants: tuple[GpuTenant, ...]


@dataclass(frozen=True)
class HostMap:
    host: str
    simulated: bool
    gpus: tuple[GpuUse, ...]


@dataclass(frozen=True)
class ExplainGroup:
    """The explanations of one placed deployment, and the shared-server lines before them."""

    notes: tuple[str, ...]
    replicas: tuple[ReplicaExplanation, ...]


@dataclass(frozen=True, kw_only=True)
class PlanBody:
    """The plan as JSON: what `plan -o` saves and apply records carry the same fields."""

    placements: tuple[PlacementRow, ...]
    unplaced: tuple[UnplacedRow, ...]
    triton_servers: dict[str, tuple[str, ...]]
    recovery: tuple[Recovery, ...]
    actions: tuple[Action, ...]
    summary: Summary
    gpu_map: tuple[HostMap, ...]
    front_doors: tuple[FrontDoorAction, ...]
    notes: tuple[str, ...]
    routes_hash: str
    unreachable_hosts: dict[str, str]
    observed_fingerprint: str
    # The plan value itself, for the text views.
    plan: Hidden = hidden()


@dataclass(frozen=True, kw_only=True)
class PlanResult(PlanBody):
    """`fleetctl plan`: the plan, and with --explain NAME why each replica went where."""

    format_version: int = FORMAT_VERSION
    explain: tuple[ReplicaExplanation, ...] | None = None
    show_all: Hidden = hidden(False)
    explained: Hidden = hidden(())  # tuple[ExplainGroup, ...]
    saved_to: Hidden = hidden()  # the path of `plan -o`


def _gpu_map(plan: Plan) -> tuple[HostMap, ...]:
    return tuple(
        HostMap(
            h["host"],
            h["simulated"],
            tuple(
                GpuUse(
                    g["index"],
                    g["model"],
                    g["memory_gb"],
                    g["reserve_gb"],
                    g["used_gb"],
                    g["util"],
                    tuple(
                        GpuTenant(
                            t["deployment"],
                            t["replica"],
                            t["memory_gb"],
                            t["util"],
                            t["sla_ms"],
                            t["predicted_p95_ms"],
                        )
                        for t in g["tenants"]
                    ),
                )
                for g in h["gpus"]
            ),
        )
        for h in gpu_map(plan)
    )


def plan_fields(plan: Plan) -> dict[str, object]:
    """The fields of `PlanBody` for `plan` (shared by every result that carries a plan)."""
    return dict(
        placements=tuple(
            PlacementRow(a.deployment, a.replica, a.host, a.gpus)
            for a in sorted(plan.placement.assignments, key=lambda a: (a.deployment, a.replica))
        ),
        unplaced=tuple(
            UnplacedRow(u.deployment, u.replica, tuple(u.reasons)) for u in plan.placement.unplaced
        ),
        triton_servers={
            name: tuple(m.name for m in members)
            for name, members in sorted(plan.server_members.items())
        },
        recovery=plan.recovery,
        actions=plan.actions,
        summary=plan.summary,
        gpu_map=_gpu_map(plan),
        front_doors=plan.front_doors,
        notes=plan.notes,
        routes_hash=plan.routes_hash,
        unreachable_hosts=dict(plan.unreachable),
        observed_fingerprint=plan.observed_fingerprint,
        plan=plan,
    )


def plan_body(plan: Plan) -> PlanBody:
    return PlanBody(**plan_fields(plan))  # type: ignore[arg-type]


def plan_result(
    plan: Plan,
    explained: Sequence[ExplainGroup] | None = None,
    *,
    show_all: bool = False,
    saved_to: str | None = None,
) -> PlanResult:
    return PlanResult(
        **plan_fields(plan),  # type: ignore[arg-type]
        explain=None
        if explained is None
        else tuple(e for group in explained for e in group.replicas),
        show_all=show_all,
        explained=tuple(explained or ()),
        saved_to=saved_to,
    )


@dataclass(frozen=True)
class ProblemRow:
    file: str | None
    line: int | None
    col: int | None
    path: str | None
    message: str


@dataclass(frozen=True, kw_only=True)
class ValidateResult:
    """`fleetctl validate`: valid, or the problems (hosts and deployments when valid)."""

    format_version: int = FORMAT_VERSION
    valid: bool
    file: str
    hosts: int | None = None
    deployments: tuple[str, ...] | None = None
    problems: tuple[ProblemRow, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SchemaWritten:
    """`fleetctl schema`: where the schema went."""

    format_version: int = FORMAT_VERSION
    written: str  # the file, or the folder of the result schemas
    files: tuple[str, ...] = field(default=())
