"""What is running: the observed fleet, as read from the Docker hosts.

Built by the Docker adapter from label-filtered container lists (or empty, offline);
consumed by the pure planner. Nothing here talks to Docker.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetctl.core.fleet import Assignment, GpuSpec


@dataclass(frozen=True)
class ObservedContainer:
    host: str
    id: str
    name: str
    deployment: str
    replica: int
    gpus: tuple[int, ...]
    spec_hash: str
    state: str  # docker state: running, exited, created, restarting, paused, dead
    image: str  # the image the container was created from (its config, not a digest)
    labeled_image: str = ""  # the image fleetctl asked for, from the label
    port: int | None = None
    revision: int | None = None
    temporary: bool = False  # a rollout's successor, not yet gated and renamed (`-next`)
    parked: bool = False  # a rollout's predecessor, renamed aside and stopped (`-old`)
    endpoint: str = ""
    runtime: str = ""
    # Triton only: the models the running server reports READY (None: not asked or no
    # answer); a declared model missing from it is drift that apply repairs.
    triton_ready: tuple[str, ...] | None = None
    # A shared Triton server only (fleetctl.core.triton_servers): per ready model, the
    # member that loaded it (`deployment/hash`); None for any other container.
    triton_members: Mapping[str, str] | None = None
    # Restarts by Docker's restart policy, read for a container that is restarting or was
    # (re)started seconds ago (0 otherwise): above 0 it is crash-looping.
    restarts: int = 0

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class ContainerRun:
    """What one inspect of a container says about its current run (for `health`)."""

    status: str  # docker state: running, exited, restarting, ...
    restart_count: int  # restarts by Docker's restart policy since the container was created
    started_at: float | None  # epoch seconds of the current (or last) start; None if never started
    exit_code: int | None = None


@dataclass(frozen=True)
class ObservedFrontDoor:
    """A host's front door container, and the routes it last loaded."""

    host: str
    id: str
    name: str
    state: str
    image: str
    spec_hash: str
    port: int | None = None
    url: str = ""
    routes_hash: str | None = None  # from its `loaded` file; None when unknown

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class ObservedHost:
    name: str
    reachable: bool = True
    error: str | None = None
    containers: tuple[ObservedContainer, ...] = ()
    front_doors: tuple[ObservedFrontDoor, ...] = ()
    gpus: tuple[GpuSpec, ...] | None = None  # discovered with NVML for `gpus: auto`


@dataclass(frozen=True)
class ObservedFleet:
    hosts: Mapping[str, ObservedHost] = field(default_factory=dict)
    offline: bool = False

    @classmethod
    def empty(cls, host_names: list[str] | None = None, *, offline: bool = True) -> ObservedFleet:
        return cls({n: ObservedHost(n) for n in host_names or []}, offline=offline)

    def containers(self) -> list[ObservedContainer]:
        return [c for h in self.hosts.values() for c in h.containers]

    def front_doors(self) -> dict[str, tuple[ObservedFrontDoor, ...]]:
        return {name: h.front_doors for name, h in self.hosts.items() if h.front_doors}

    def unreachable(self) -> list[ObservedHost]:
        return [h for h in self.hosts.values() if not h.reachable]

    def by_replica(self) -> dict[tuple[str, int], list[ObservedContainer]]:
        """Containers per (deployment, replica), the one that stands for it first: a
        finished container before a rollout's temporary or parked one, a running one before a
        stopped one; any others are duplicates or leftovers."""
        out: dict[tuple[str, int], list[ObservedContainer]] = {}
        for c in sorted(
            self.containers(),
            key=lambda c: (c.temporary or c.parked, not c.running, c.host, c.name),
        ):
            out.setdefault((c.deployment, c.replica), []).append(c)
        return out

    def previous_assignments(self) -> list[Assignment]:
        """Where replicas run now: the stable starting point for placement."""
        return [
            Assignment(c.deployment, c.replica, c.host, c.gpus)
            for c, *_ in self.by_replica().values()
        ]

    def fingerprint(self) -> str:
        """A digest of what was observed, to refuse a saved plan when the fleet moved."""
        items = sorted(
            (c.host, c.name, c.deployment, c.replica, c.spec_hash, c.state, c.image)
            for c in self.containers()
        )
        doors = sorted(
            (f.host, f.name, f.spec_hash, f.state, f.routes_hash or "")
            for h in self.hosts.values()
            for f in h.front_doors
        )
        unreachable = sorted(h.name for h in self.unreachable())
        blob = json.dumps(
            {"containers": items, "front_doors": doors, "unreachable": unreachable},
            separators=(",", ":"),
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
