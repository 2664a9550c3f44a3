"""The interfaces to the outside: what `ops` needs from Docker hosts, readiness probes,
the clock, Triton's repository API and the state.

`ops` is written against these protocols only; the adapters (`fleetctl.adapters`,
`fleetctl.state`) implement them, and the CLI's composition root
(`fleetctl.cli.compose`) builds the real ones and passes them in. Unit tests fake these
interfaces, never the SDKs behind them. The module holds no I/O and imports no adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

# One readiness answer, defined with the plugin API (a plugin's check kinds return it too).
from fleetctl.runtimes.spec import CheckResult

if TYPE_CHECKING:
    from fleetctl.core.inventory import Inventory
    from fleetctl.core.observed import ContainerRun, ObservedFleet, ObservedHost
    from fleetctl.runtimes.spec import ContainerSpec


# -- the clock ---------------------------------------------------------------------------
@runtime_checkable
class Clock(Protocol):
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


# -- readiness probes --------------------------------------------------------------------
Check = Callable[["ContainerSpec"], CheckResult]
StatusReader = Callable[[str], "dict[str, Any] | None"]


@runtime_checkable
class Probes(Protocol):
    """Readiness of a container and of a front door, from this machine."""

    def probe(self, spec: ContainerSpec) -> CheckResult:
        """All of the spec's health checks once, in order; the first failure is the answer."""
        ...

    def port_answers(self, endpoint: str) -> bool:
        """Whether something already listens at the endpoint's host:port."""
        ...

    def front_door_status(self, url: str) -> dict[str, Any] | None:
        """A front door's status document (None: it does not answer)."""
        ...


# -- Docker hosts ------------------------------------------------------------------------
class LeaseHeld(Exception):
    """Another live fleetctl holds the fleet's lease on a host."""


@runtime_checkable
class Lease(Protocol):
    """A fleet's lease on one host (taken, renewed while a change runs, released)."""

    host: str

    def take(self, command: str) -> None:
        """Take the lease for this process running `command`; raises `LeaseHeld`."""
        ...

    def renew(self) -> bool: ...
    def release(self) -> None: ...


@runtime_checkable
class HostAPI(Protocol):
    """What apply needs from a Docker host."""

    name: str

    def observe(self) -> ObservedHost: ...
    def run(
        self,
        name: str,
        spec: ContainerSpec,
        labels: Mapping[str, str],
        secrets: Mapping[str, str],
        files: Mapping[str, bytes] | None = None,
    ) -> str: ...
    def put_file(self, container: str, path: str, data: bytes) -> None: ...
    def read_file(self, container: str, path: str) -> bytes | None: ...
    def signal(self, container: str, signal: str) -> None: ...
    def state(self, container: str) -> str: ...
    def logs_tail(self, container: str, lines: int = 40) -> str: ...
    def stop(self, container: str, timeout_s: int = 30) -> None: ...
    def start(self, container: str) -> None: ...
    def remove(self, container: str, timeout_s: int = 30) -> None: ...
    def rename(self, container: str, new_name: str) -> None: ...
    def image_digest(self, image: str) -> str | None: ...
    def ensure_image(self, image: str) -> None: ...


@runtime_checkable
class LeasingHost(Protocol):
    """A host that can hold the fleet's lease (a Docker host; fakes need not)."""

    def lease(self, fleet: str, ttl_s: float) -> Lease | None: ...


@runtime_checkable
class ContainerInspector(Protocol):
    """What `health` reads about a container's current run on a host."""

    def run_info(self, container: str) -> ContainerRun: ...
    def logs_head(self, container: str, lines: int = 200, since: float | None = None) -> str: ...


Observer = Callable[["Inventory"], "ObservedFleet"]
HostFactory = Callable[["Inventory"], Mapping[str, HostAPI]]
InspectorFactory = Callable[["Inventory"], Mapping[str, ContainerInspector]]


# -- Triton's repository API -------------------------------------------------------------
@runtime_checkable
class TritonControl(Protocol):
    """Models loaded into and unloaded from a running Triton server."""

    def load(self, endpoint: str, model: str, member: str, overrides: Mapping[str, Any]) -> None:
        """Load (or reload) `model` as fleetctl's `member`; raises with Triton's reason."""
        ...

    def unload(self, endpoint: str, model: str) -> None: ...

    def load_declared(
        self, endpoint: str, models: Sequence[str], timeout_s: float
    ) -> tuple[bool, str]:
        """Load these models as the server's repository declares them and check each is
        ready: (all ready, what happened)."""
        ...


# -- the state ---------------------------------------------------------------------------
@runtime_checkable
class StepStore(Protocol):
    """The part of the state store that records a rollout and its steps."""

    def batch(self) -> AbstractContextManager[None]: ...
    def fail_abandoned_rollouts(self, summary: str = ...) -> list[int]: ...
    def begin_rollout(
        self,
        command: str,
        inventory_path: str | Path,
        inventory_digest: str,
        plan: dict[str, Any],
        *,
        user: str | None = None,
        forbidden_values: Sequence[str] = (),
    ) -> int: ...
    def finish_rollout(self, rollout_id: int, outcome: str, summary: str = "") -> None: ...
    def begin_step(
        self,
        rollout_id: int,
        *,
        deployment: str,
        replica: int,
        host: str,
        action: str,
        container: str,
    ) -> int: ...
    def end_step(
        self,
        step_id: int,
        *,
        outcome: str,
        detail: str,
        container: str,
        log_tail: str = "",
        finished_at: datetime | None = None,
    ) -> None: ...
    def record_step(
        self,
        rollout_id: int,
        *,
        deployment: str,
        replica: int,
        host: str,
        action: str,
        container: str,
        outcome: str,
        detail: str = "",
        log_tail: str = "",
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
    ) -> int: ...


# -- everything at once ------------------------------------------------------------------
@dataclass(frozen=True)
class Outside:
    """The adapters a command works through, built once by the composition root."""

    observe: Observer
    hosts: HostFactory
    inspectors: InspectorFactory
    probes: Probes
    clock: Clock
    triton: TritonControl
