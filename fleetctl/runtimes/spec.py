"""What a runtime renders: a container spec for one placed replica, and its health checks.

Pure values. The Docker adapter turns a `ContainerSpec` into API calls; the probe adapter
runs the `HealthCheck`s. Secrets appear only as references, resolved at apply time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel

from fleetctl.core.fleet import Deployment
from fleetctl.core.front_door import Routing  # noqa: F401 (re-exported: part of the runtime API)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class RenderContext:
    deployment: Deployment
    replica: int
    host: str
    gpus: tuple[int, ...]
    port: int  # first of a block of PORTS_PER_REPLICA ports on the host
    network: Literal["host", "bridge"]
    address: str  # where clients reach the host's endpoints
    simulated: bool
    gpu_memory_gb: float  # device memory of one of its GPUs
    shared: bool  # another replica shares one of its GPUs

    @property
    def memory_fraction(self) -> float:
        """The planned share of each GPU's memory for this replica."""
        return self.deployment.memory_per_gpu_gb / self.gpu_memory_gb if self.gpu_memory_gb else 1.0

    @property
    def bind_address(self) -> str:
        return bind_address_for(self.address)


def bind_address_for(address: str) -> str:
    """With host networking, listen only on the host's declared address when it is an IP
    address; a DNS name cannot be bound, so then every interface."""
    import ipaddress

    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "0.0.0.0"
    return address


@dataclass(frozen=True)
class Volume:
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class PortMap:
    container_port: int
    host_port: int


@dataclass(frozen=True)
class SecretEnv:
    """An environment variable whose value is read at apply time from `source`."""

    name: str
    source: str  # "env:NAME" or "file:PATH"


@dataclass(frozen=True)
class HealthCheck:
    # "http", "triton_model" (built in), or a kind a plugin registers (CheckKind).
    kind: str
    target: str  # URL path for http, model name for triton_model
    description: str = ""
    # The settings of a plugin's kind (JSON values), validated by its `CheckKind.settings`.
    params: Mapping[str, Any] = field(default_factory=dict)


BUILTIN_CHECK_KINDS = ("http", "triton_model")


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


class CheckProbe(Protocol):
    """The probe interface of a plugin's check kind: one attempt, within `timeout_s`.

    `settings` is the check's `params` validated by the kind's model (None without one).
    A probe answers not-ready with a `CheckResult`; an exception counts as not ready.
    """

    def __call__(
        self, endpoint: str, check: HealthCheck, settings: Any, timeout_s: float
    ) -> CheckResult: ...


@dataclass(frozen=True)
class CheckKind:
    """A health-check kind a plugin adds (hook `register_health_checks`)."""

    name: str
    probe: CheckProbe
    settings: type[BaseModel] | None = None  # validates HealthCheck.params


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    endpoint: str
    health: tuple[HealthCheck, ...]
    startup_timeout_s: float
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: tuple[SecretEnv, ...] = ()
    volumes: tuple[Volume, ...] = ()
    ports: tuple[PortMap, ...] = ()  # published ports, bridge networking only
    network_mode: Literal["host", "bridge"] = "bridge"
    shm_size: str | None = None
    gpus: tuple[int, ...] = ()
    simulated_gpus: bool = False


class Runtime(Protocol):
    """A way to serve a model. Built-in NIM and Triton implement it; plugins add more.

    A runtime may also define `routing(deployment) -> Routing | None` to be reachable
    through the front door; without it, its replicas are served only at their own ports.
    """

    name: str

    def render(self, ctx: RenderContext) -> ContainerSpec: ...


def settings_of(model: type[M], raw: Mapping[str, Any] | None) -> M:
    """A deployment's runtime block as its runtime's model, defaults included.

    The block was validated when the inventory was loaded and is kept in the settings as
    JSON; a missing key or a None stands for the model's default.
    """
    given = {k: v for k, v in (raw or {}).items() if v is not None and k in model.model_fields}
    return model.model_construct(**given)


def secret_env_from(refs: Mapping[str, str]) -> tuple[SecretEnv, ...]:
    return tuple(SecretEnv(name, src) for name, src in sorted(refs.items()))


def http_health(path: str) -> HealthCheck:
    return HealthCheck("http", path, f"GET {path} answers 200")


def startup_budget(d: Deployment, default: float) -> float:
    override = d.settings.get("health", {}).get("startup_timeout_s")
    return float(override) if override else float(default)


def merged_env(*parts: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in parts:
        if p:
            out.update(p)
    return out


def ports_for(network: str, mapping: Sequence[tuple[int, int]]) -> tuple[PortMap, ...]:
    return tuple(PortMap(c, h) for c, h in mapping) if network == "bridge" else ()
