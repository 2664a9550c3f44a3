"""The results of the commands that read or change the fleet and its state: status,
history, apply, rollback, down, release, pins, state migrate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetctl.core.holds import Hold
from fleetctl.results import FORMAT_VERSION, Hidden, hidden, json_name
from fleetctl.results.plan import PlanBody, plan_fields


@dataclass(frozen=True)
class HostGpus:
    count: int
    memory_gb: float
    model: str | None


@dataclass(frozen=True)
class HostStatus:
    host: str
    docker: str
    reachable: bool
    error: str | None
    gpus: HostGpus | str  # "auto": found at apply time
    simulated: bool
    containers: int


@dataclass(frozen=True)
class FrontDoorStatus:
    host: str
    url: str
    state: str
    container: str | None
    routes_hash: str | None
    routes_current: bool


@dataclass(frozen=True)
class ReplicaRow:
    replica: int
    host: str
    gpus: tuple[int, ...]
    state: str
    endpoint: str
    revision: int | None
    container: str
    image: str


@dataclass(frozen=True)
class ServedMember:
    deployment: str
    models: tuple[str, ...]


@dataclass(frozen=True)
class DeploymentRow:
    deployment: str
    version: str
    runtime: str
    customers: tuple[str, ...]
    state: str
    desired: int
    running: int
    client_url: str
    # A shared Triton server: the deployments it serves (empty otherwise).
    members: tuple[ServedMember, ...]
    replicas: tuple[ReplicaRow, ...]


@dataclass(frozen=True, kw_only=True)
class StatusResult:
    """`fleetctl status`: hosts, front doors and every deployment's replicas."""

    format_version: int = FORMAT_VERSION
    hosts: tuple[HostStatus, ...]
    front_doors: tuple[FrontDoorStatus, ...]
    customer_header: str
    deployments: tuple[DeploymentRow, ...]
    report: Hidden = hidden()  # the StatusReport, for the table


def status_result(report: Any) -> StatusResult:
    """From `fleetctl.ops.status.StatusReport`."""

    def host(h: Mapping[str, Any]) -> HostStatus:
        g = h["gpus"]
        gpus = g if isinstance(g, str) else HostGpus(g["count"], g["memory_gb"], g.get("model"))
        return HostStatus(
            h["host"],
            h["docker"],
            h["reachable"],
            h["error"],
            gpus,
            h["simulated"],
            h["containers"],
        )

    return StatusResult(
        hosts=tuple(host(h) for h in report.hosts),
        front_doors=tuple(FrontDoorStatus(**f) for f in report.front_doors),
        customer_header=report.customer_header,
        deployments=tuple(
            DeploymentRow(
                deployment=d.deployment,
                version=d.version,
                runtime=d.runtime,
                customers=tuple(d.customers),
                state=d.state,
                desired=d.desired,
                running=d.running,
                client_url=d.client_url,
                members=tuple(ServedMember(n, tuple(ms)) for n, ms in d.members),
                replicas=tuple(
                    ReplicaRow(
                        r.replica,
                        r.host,
                        r.gpus,
                        r.state,
                        r.endpoint,
                        r.revision,
                        r.container,
                        r.image,
                    )
                    for r in d.replicas
                ),
            )
            for d in report.deployments
        ),
        report=report,
    )


@dataclass(frozen=True)
class HoldRow:
    model: str
    version: str
    deployment: str
    revision: int
    inventory_version: str
    created_at: str
    rollout_id: int | None
    command: str


def hold_row(h: Hold) -> HoldRow:
    d = h.to_json()
    return HoldRow(**d)


@dataclass(frozen=True)
class RolloutRow:
    id: int
    started_at: str
    finished_at: str | None
    command: str
    user: str
    outcome: str
    summary: str


@dataclass(frozen=True, kw_only=True)
class RolloutsResult:
    """`fleetctl history`: the latest rollouts, newest first."""

    format_version: int = FORMAT_VERSION
    rollouts: tuple[RolloutRow, ...]


@dataclass(frozen=True)
class PlacedReplica:
    replica: int
    host: str
    gpus: tuple[int, ...]
    port: int | None


@dataclass(frozen=True)
class FailedStep:
    replica: int
    host: str
    action: str
    reason: str
    log_tail: str | None


@dataclass(frozen=True)
class RevisionRow:
    number: int
    created_at: str
    outcome: str
    image: str
    image_digest: str | None
    spec_hash: str
    placement: tuple[PlacedReplica, ...]
    rollout_id: int | None
    reason: str | None
    log_tail: str | None
    failed_step: FailedStep | None


@dataclass(frozen=True, kw_only=True)
class RevisionsResult:
    """`fleetctl history NAME@VERSION`: the deployment's revisions, and its hold if any."""

    format_version: int = FORMAT_VERSION
    deployment: str
    revisions: tuple[RevisionRow, ...]
    hold: HoldRow | None


HistoryResult = RolloutsResult | RevisionsResult


def history_result(data: Mapping[str, Any]) -> HistoryResult:
    """From what `fleetctl.ops.rollback.history` read."""
    if "revisions" not in data:
        return RolloutsResult(rollouts=tuple(RolloutRow(**r) for r in data["rollouts"]))
    hold = data.get("hold")
    return RevisionsResult(
        deployment=data["deployment"],
        revisions=tuple(
            RevisionRow(
                number=r["number"],
                created_at=r["created_at"],
                outcome=r["outcome"],
                image=r["image"],
                image_digest=r["image_digest"],
                spec_hash=r["spec_hash"],
                placement=tuple(
                    PlacedReplica(p["replica"], p["host"], tuple(p["gpus"]), p.get("port"))
                    for p in r["placement"]
                ),
                rollout_id=r["rollout_id"],
                reason=r["reason"],
                log_tail=r["log_tail"],
                failed_step=None if r["failed_step"] is None else FailedStep(**r["failed_step"]),
            )
            for r in data["revisions"]
        ),
        hold=None if hold is None else HoldRow(**hold),
    )


@dataclass(frozen=True)
class FrontDoorOutcome:
    action: str
    host: str
    url: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class StepOutcome:
    action: str
    deployment: str
    replica: int
    host: str
    ok: bool
    detail: str
    container: str | None
    log_tail: str | None


@dataclass(frozen=True, kw_only=True)
class ApplyResult:
    """`fleetctl apply`: what ran, and the plan it ran."""

    format_version: int = FORMAT_VERSION
    changed: bool
    rollout_id: int | None
    front_doors: tuple[FrontDoorOutcome, ...]
    routing_problems: tuple[str, ...]
    steps: tuple[StepOutcome, ...]
    plan: PlanBody
    outcome: Hidden = hidden()  # the rollout's result, for the text view


@dataclass(frozen=True, kw_only=True)
class RollbackResult(ApplyResult):
    """`fleetctl rollback`: apply's fields, and the revision restored and held."""

    model: str
    deployment: str
    revision: int
    hold: HoldRow | None


def apply_fields(result: Any) -> dict[str, Any]:
    """The fields of `ApplyResult` for a rollout result (`fleetctl.ops.rollout`)."""
    return dict(
        changed=not result.noop,
        rollout_id=result.rollout_id,
        front_doors=tuple(
            FrontDoorOutcome(o.action.kind.value, o.action.host, o.action.url, o.ok, o.detail)
            for o in result.front_doors
        ),
        routing_problems=tuple(result.routing_problems),
        steps=tuple(
            StepOutcome(
                o.action.kind.value,
                o.action.deployment,
                o.action.replica,
                o.action.host,
                o.ok,
                o.detail,
                o.container,
                o.log_tail,
            )
            for o in result.outcomes
        ),
        plan=PlanBody(**plan_fields(result.plan)),  # type: ignore[arg-type]
        outcome=result,
    )


@dataclass(frozen=True, kw_only=True)
class DownResult:
    """`fleetctl down`: the containers removed, and why any removal failed."""

    format_version: int = FORMAT_VERSION
    removed: tuple[str, ...]
    failed: tuple[str, ...]
    outcomes: Hidden = hidden(0)  # how many removals were tried


@dataclass(frozen=True, kw_only=True)
class ReleaseResult:
    """`fleetctl release MODEL`: the hold deleted, and what the next apply does."""

    format_version: int = FORMAT_VERSION
    released: HoldRow
    next_apply: str


@dataclass(frozen=True)
class PinRoute:
    url: str
    header: str | None
    value: str | None


@dataclass(frozen=True)
class PinReplicas:
    running: int
    desired: int


@dataclass(frozen=True)
class HoldInForce:
    model: str
    version: str
    deployment: str
    revision: int
    inventory_version: str
    created_at: str
    rollout_id: int | None
    command: str
    in_force: bool


@dataclass(frozen=True)
class PinView:
    kind: str  # pin or hold
    customer: str | None
    model: str
    version: str
    deployment: str
    route: PinRoute
    replicas: PinReplicas
    health: str
    hold: HoldInForce | None


@dataclass(frozen=True, kw_only=True)
class PinsResult:
    """`fleetctl pins`: every customer pin, then every hold."""

    format_version: int = FORMAT_VERSION
    pins: tuple[PinView, ...]
    rows: Hidden = hidden(())  # the PinRow values, for the table


def pins_result(rows: Sequence[Any]) -> PinsResult:
    return PinsResult(
        pins=tuple(
            PinView(
                kind=r.kind,
                customer=r.customer,
                model=r.model,
                version=r.version,
                deployment=r.deployment,
                route=PinRoute(r.url, r.header, r.value),
                replicas=PinReplicas(r.running, r.desired),
                health=r.health,
                hold=None
                if r.hold is None
                else HoldInForce(**r.hold.to_json(), in_force=r.in_force),
            )
            for r in rows
        ),
        rows=tuple(rows),
    )


@dataclass(frozen=True, kw_only=True)
class MigrateResult:
    """`fleetctl state migrate`: what was copied where."""

    format_version: int = FORMAT_VERSION
    source: str = json_name("from")
    target: str = json_name("to")
    schema_version: int
    rows: dict[str, int]
