"""The values of a health sweep: what is probed, what each probe found, and the verdicts.

Pure data. `targets.py` builds the targets, `probing.py` fills the probe results,
`verdicts.py` decides, `sweep.py` puts it together, `heal.py` repairs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fleetctl.core.fleet import ReplicaKey
from fleetctl.core.observed import ContainerRun, ObservedContainer
from fleetctl.ops.health.profiles import Profile
from fleetctl.runtimes.spec import ContainerSpec
from fleetctl.state.health_store import Memory

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_FAILURES = 3


class ReplicaState(str, Enum):
    """What this sweep saw, on its own."""

    HEALTHY = "healthy"  # running, every check passed, nothing amiss
    DEGRADED = "degraded"  # serves, but not as it should (fallback profile, over its SLA, extra Triton model)
    UNHEALTHY = "unhealthy"  # running, a check failed (or the container keeps restarting)
    STOPPED = "stopped"  # the container exists but is not running
    MISSING = "missing"  # no container for the replica
    UNKNOWN = "unknown"  # the host that would tell is unreachable


SERVING = (ReplicaState.HEALTHY, ReplicaState.DEGRADED)
FAILED = (ReplicaState.UNHEALTHY, ReplicaState.STOPPED, ReplicaState.MISSING)


class Verdict(str, Enum):
    """What the sweep concludes, with the memory of earlier sweeps."""

    OK = "ok"
    DEGRADED = "degraded"  # serves, with a problem worth a ticket
    STARTING = "starting"  # not ready yet, within its start-up grace
    FAILING = "failing"  # failed, fewer than --failures sweeps in a row
    CRITICAL = "critical"  # failed --failures sweeps in a row, or a crash loop
    UNKNOWN = "unknown"  # could not be seen


class DeploymentState(str, Enum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Sample:
    """One inference the latency probe sends to a Triton model."""

    model: str
    inputs: Mapping[str, Any]


@dataclass(frozen=True)
class ProbeSpec:
    """How to probe one replica: its rendered spec and what it should serve."""

    spec: ContainerSpec
    runtime: str = ""
    served_model: str | None = None  # NIM: the model id /v1/models must list
    triton_models: tuple[str, ...] = ()  # Triton: the declared models
    sla_ms: float | None = None
    sample: Sample | None = None

    @property
    def endpoint(self) -> str:
        return self.spec.endpoint


@dataclass(frozen=True)
class TritonDrift:
    """The repository index against the inventory."""

    missing: tuple[str, ...] = ()  # declared, not in the index at all
    not_ready: tuple[tuple[str, str], ...] = ()  # declared, (model, state and reason) not READY
    extra: tuple[str, ...] = ()  # READY but not declared

    @property
    def any(self) -> bool:
        return bool(self.missing or self.not_ready or self.extra)

    @property
    def unloaded(self) -> tuple[str, ...]:
        """Declared models a load could bring back."""
        return tuple(m for m, _ in self.not_ready)


@dataclass(frozen=True)
class ProbeResult:
    ok: bool  # every readiness check passed
    detail: str
    check: str | None = None  # description of the first check that failed
    latency_s: float | None = None  # the whole probe
    problems: tuple[str, ...] = ()  # each failed check, when not ok
    degraded: tuple[str, ...] = ()  # it serves, but: why not as it should
    request: str = ""  # what the latency probe timed
    request_latency_s: float | None = None
    over_sla: bool = False
    drift: TritonDrift | None = None


# (probe spec, budget in seconds) -> result; the sweep's only contact with the replicas.
Probe = Callable[[ProbeSpec, float], ProbeResult]


@dataclass(frozen=True)
class ContainerFacts:
    """What Docker says about a container's run, and for a NIM its profile."""

    run: ContainerRun | None = None
    profile: Profile | None = None
    error: str | None = None


# (target, the replica's memory or None) -> facts; the sweep's only extra Docker calls
# (the memory holds the profile read from an earlier sweep of the same run).
FactsReader = Callable[["Target", "Memory | None"], ContainerFacts]


@dataclass(frozen=True)
class Target:
    """A desired replica and what the sweep can look at for it (pure value)."""

    deployment: str
    replica: int
    host: str  # where its container runs, else where the plan puts it ("" if unplaced)
    container: ObservedContainer | None = None
    probe: ProbeSpec | None = None  # rendered for the running container's port
    drift: str | None = None  # why the plan would recreate it
    unreachable: str | None = None  # why it cannot be seen at all
    note: str = ""  # why there is no container, when known
    runtime: str = ""
    grace_s: float = 0.0  # its start-up budget: "starting" for that long after a start
    expected_profile: str | None = None  # NIM: nim.model_profile

    @property
    def key(self) -> ReplicaKey:
        return ReplicaKey(self.deployment, self.replica)

    @property
    def spec(self) -> ContainerSpec | None:
        return self.probe.spec if self.probe else None

    @property
    def probeable(self) -> bool:
        c = self.container
        return self.unreachable is None and c is not None and c.running and self.probe is not None


@dataclass(frozen=True)
class ReplicaHealth:
    deployment: str
    replica: int
    host: str
    state: ReplicaState
    detail: str
    endpoint: str = ""
    container: str = ""
    container_state: str = ""
    check: str | None = None
    latency_s: float | None = None
    drift: str | None = None
    verdict: Verdict = Verdict.OK
    reasons: tuple[str, ...] = ()
    failures: int = 0  # failing sweeps in a row, this one included
    restart_count: int | None = None
    restarts_since_last: int | None = None
    crash_loop: bool = False
    started_at: float | None = None
    profile: Profile | None = None
    request: str = ""
    request_latency_s: float | None = None
    sla_ms: float | None = None
    over_sla: bool = False
    triton: TritonDrift | None = None
    container_id: str = ""
    since: float | None = None  # when the verdict began

    @property
    def key(self) -> ReplicaKey:
        return ReplicaKey(self.deployment, self.replica)


@dataclass(frozen=True)
class DeploymentHealth:
    deployment: str
    desired: int
    replicas: tuple[ReplicaHealth, ...]

    @property
    def healthy(self) -> int:
        return sum(r.state is ReplicaState.HEALTHY for r in self.replicas)

    @property
    def serving(self) -> int:
        return sum(r.state in SERVING for r in self.replicas)

    @property
    def state(self) -> DeploymentState:
        if self.healthy >= self.desired:
            return DeploymentState.OK
        if self.serving:
            return DeploymentState.DEGRADED
        # With no replica confirmed, an unseen one may well be serving: "down" would lie.
        if any(r.state is ReplicaState.UNKNOWN for r in self.replicas):
            return DeploymentState.UNKNOWN
        return DeploymentState.DOWN

    @property
    def drift(self) -> tuple[str, ...]:
        return tuple(f"#{r.replica}: {r.drift}" for r in self.replicas if r.drift)


@dataclass(frozen=True)
class HostHealth:
    host: str
    reachable: bool
    error: str | None = None


@dataclass(frozen=True)
class FrontDoorHealth:
    host: str
    url: str
    state: ReplicaState
    detail: str
    routes_current: bool = False


@dataclass(frozen=True)
class HealAction:
    """One repair `--heal` made (or chose not to make)."""

    deployment: str
    replica: int
    host: str
    action: str  # start, restart, recreate, load_model, none
    ok: bool
    detail: str
    target: str = ""  # the container, or the Triton model
    duration_s: float = 0.0


@dataclass(frozen=True)
class HealthReport:
    swept_at: float  # epoch seconds when the sweep started
    duration_s: float
    timeout_s: float
    hosts: tuple[HostHealth, ...]
    deployments: tuple[DeploymentHealth, ...]
    front_doors: tuple[FrontDoorHealth, ...] = ()
    failures_needed: int = DEFAULT_FAILURES
    memory: bool = False  # whether streaks were read from and written to a state
    healing: bool = False  # --heal was asked for
    healed: tuple[HealAction, ...] = ()
    heal_note: str | None = None  # why --heal did nothing (the state is locked)

    @property
    def replicas(self) -> list[ReplicaHealth]:
        return [r for d in self.deployments for r in d.replicas]

    def count(self, state: ReplicaState) -> int:
        return sum(r.state is state for r in self.replicas)

    def count_verdict(self, verdict: Verdict) -> int:
        return sum(r.verdict is verdict for r in self.replicas)
