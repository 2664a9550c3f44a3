"""The inventory: the declarative source of truth, as pydantic models.

Unknown keys are refused everywhere (`extra="forbid"`). Secrets are given only by
reference (the name of an environment variable or a file), never by value. Loading
from YAML with file:line:col errors lives in `fleetctl.core.loader`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

NAME_RE = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
# Environment keys that carry credentials: refused as plain `env:` values.
SECRET_KEY_RE = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)


class Strict(BaseModel):
    # strict: "true" is not a boolean nor "4" a number; no infinities or NaN anywhere.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class SecretRef(Strict):
    """Where a secret comes from at apply time: an environment variable or a file."""

    env: str | None = Field(None, description="Name of an environment variable holding the secret")
    file: str | None = Field(None, description="Path of a file holding the secret")

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self

    def describe(self) -> str:
        return f"env:{self.env}" if self.env else f"file:{self.file}"


class GpuDecl(Strict):
    """A group of like GPUs (or MIG slices: memory_gb is then the slice's memory)."""

    count: int = Field(ge=1, le=64)
    memory_gb: float = Field(gt=0)
    model: str = Field("", description="GPU model name, matched by models' gpu_models")


class TlsConfig(Strict):
    # Paths of a TLS host's certificates (read when a client is made, never stored).
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True

    @model_validator(mode="after")
    def _cert_with_key(self) -> TlsConfig:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("give client_cert and client_key together")
        return self


class HostFrontDoor(Strict):
    """Per-host overrides of the fleet's front door."""

    port: int | None = Field(
        None, ge=1, le=65535, description="Overrides front_door.port on this host"
    )
    listen: str | None = Field(None, description="Overrides the address the front door listens on")


class Host(Strict):
    name: Annotated[str, Field(pattern=NAME_RE)]
    docker: str = Field(
        "unix:///var/run/docker.sock", description="unix://, ssh://user@host or tcp:// (TLS)"
    )
    tls: TlsConfig | None = None
    allow_insecure_tcp: bool = Field(False, description="Accept plain tcp:// without TLS")
    gpus: Literal["auto"] | GpuDecl | Annotated[list[GpuDecl], Field(min_length=1)] = Field(
        "auto",
        description="auto (NVML), one group {count, memory_gb, model} or a list of groups",
    )
    simulated: bool = Field(
        False, description="Declared GPUs are not real (tests, demos, planning)"
    )
    reserve_gb: float = Field(0.0, ge=0, description="GPU memory per GPU kept free")
    labels: dict[str, str] = Field(default_factory=dict)
    ports: str = Field(
        "20000-20999", pattern=r"^\d{1,5}-\d{1,5}$", description="Port range for endpoints"
    )
    network: Literal["bridge", "host"] = "bridge"
    address: str = Field(
        "127.0.0.1", description="Address clients use to reach this host's endpoints"
    )
    max_parallel: int = Field(
        4, ge=1, le=64, description="Container operations at once on this host"
    )
    publish_address: str = Field(
        "127.0.0.1",
        description="Host address that published replica ports bind (bridge networking)",
    )
    front_door: HostFrontDoor = Field(default_factory=HostFrontDoor)
    max_containers: int | None = Field(
        None,
        ge=0,
        description="Replicas the host may run at most (placement also counts its port blocks)",
    )

    @field_validator("docker")
    @classmethod
    def _docker_url(cls, v: str) -> str:
        if not re.match(r"^(unix|ssh|tcp)://.+", v):
            raise ValueError("must start with unix://, ssh:// or tcp://")
        return v

    @field_validator("ports")
    @classmethod
    def _port_range(cls, v: str) -> str:
        lo, hi = (int(p) for p in v.split("-"))
        if not (1 <= lo <= hi <= 65535):
            raise ValueError("must be LOW-HIGH with 1 <= LOW <= HIGH <= 65535")
        return v

    @model_validator(mode="after")
    def _tcp_needs_tls(self) -> Host:
        if self.docker.startswith("tcp://") and self.tls is None and not self.allow_insecure_tcp:
            raise ValueError(
                "plain tcp:// exposes the Docker API unencrypted: add a 'tls:' block "
                "or set 'allow_insecure_tcp: true'"
            )
        return self

    @model_validator(mode="after")
    def _tls_is_for_tcp(self) -> Host:
        if self.tls is not None and not self.docker.startswith("tcp://"):
            raise ValueError("'tls:' applies to tcp:// endpoints only (ssh:// uses ssh's own keys)")
        return self

    @property
    def port_range(self) -> tuple[int, int]:
        lo, hi = (int(p) for p in self.ports.split("-"))
        return lo, hi

    @property
    def gpu_groups(self) -> list[GpuDecl]:
        """The declared GPU groups in order (GPU indexes follow it); none for `auto`."""
        if self.gpus == "auto":
            return []
        return self.gpus if isinstance(self.gpus, list) else [self.gpus]


def _runtime_block(value: Any) -> Any:
    if value is None or isinstance(value, dict | BaseModel):
        return value
    raise ValueError("Input should be a mapping of the runtime's settings")


# A runtime's own block (`nim:`, `triton:`, `options:`): core keeps none of its fields.
# The loader validates it with the pydantic model its runtime registers
# (fleetctl.core.runtime_blocks) and keeps it as that model's value.
RuntimeBlock = Annotated[Any, AfterValidator(_runtime_block)]


class HealthSample(Strict):
    """One small inference `fleetctl health` sends to time a Triton replica against its SLA."""

    model: str | None = Field(
        None, description="Triton model to call (default: the first of triton.models)"
    )
    inputs: dict[str, list[Any]] = Field(
        min_length=1,
        description="Input name -> values (nested lists give the shape); datatypes from the model",
    )


class HealthConfig(Strict):
    startup_timeout_s: float | None = Field(
        None, gt=0, description="Overrides the runtime's budget"
    )
    interval_s: float = Field(1.0, gt=0)
    sample: HealthSample | None = Field(
        None,
        description="Triton: the inference `fleetctl health` times (else it times a model-ready call)",
    )


class RolloutConfig(Strict):
    """How a model's replicas are replaced (see docs/rollouts.md)."""

    max_surge: int = Field(
        1, ge=1, le=64, description="Replacements in flight at once for one deployment"
    )
    max_unavailable: int = Field(
        0, ge=0, le=64, description="Replicas that may be out of service at once"
    )
    allow_downtime: bool = Field(
        False,
        description="Permit stop-first replacements when no GPU anywhere can hold the old and new replica",
    )


class Overrides(Strict):
    """Fields a pinned version may override."""

    gpu_memory_gb: float | None = Field(None, gt=0)
    gpus: int | None = Field(None, ge=1, le=16)
    replicas: int | None = Field(None, ge=0)
    sla_ms: float | None = Field(None, gt=0)
    latency_ms: float | None = Field(None, gt=0)
    gpu_util: float | None = Field(None, gt=0, le=1)
    exclusive: bool | None = None
    env: dict[str, str] | None = None
    nim: RuntimeBlock = Field(None, description="Settings of the nim runtime")
    triton: RuntimeBlock = Field(None, description="Settings of the triton runtime")


class Pin(Overrides):
    version: str = Field(min_length=1)
    image: str = Field(min_length=1)
    customers: list[str] = Field(min_length=1)


# "unknown" (the default) is a fact not stated: advise gives it no bonus and no exclusion,
# and says which value would decide.
Origin = Literal["catalog", "lora", "custom", "unknown"]
Api = Literal["openai", "custom", "unknown"]


class Model(Strict):
    name: Annotated[str, Field(pattern=NAME_RE)]
    version: str = Field(min_length=1)
    runtime: str = Field(min_length=1, description="nim, triton or a plugin runtime")
    image: str = Field(min_length=1)
    gpu_memory_gb: float = Field(
        gt=0, description="One replica's total GPU memory, split over its GPUs"
    )
    gpus: int = Field(1, ge=1, le=16, description="GPUs per replica (tensor parallel), on one host")
    replicas: int = Field(1, ge=0)
    sla_ms: float | None = Field(None, gt=0, description="p95 latency target")
    latency_ms: float | None = Field(None, gt=0, description="p95 when alone on a GPU")
    gpu_util: float | None = Field(
        None, gt=0, le=1, description="Share of GPU compute at target load"
    )
    exclusive: bool = False
    hosts: dict[str, str] = Field(default_factory=dict, description="Label selector")
    gpu_models: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="GPU models the model runs on (any of them; empty: any GPU)",
    )
    pins: list[Pin] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, SecretRef] = Field(default_factory=dict, description="Env name -> reference")
    nim: RuntimeBlock = Field(None, description="Settings of the nim runtime")
    triton: RuntimeBlock = Field(None, description="Settings of the triton runtime")
    options: RuntimeBlock = Field(default_factory=dict, description="Settings for a plugin runtime")
    health: HealthConfig = Field(default_factory=HealthConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    # Facts for `fleetctl advise` and `report`.
    framework: str | None = Field(None, description="e.g. vllm, tensorrt-llm, onnx, pytorch")
    origin: Origin = Field(
        "unknown", description="catalog model, LoRA on a catalog base, custom, or unknown"
    )
    base_model: str | None = None
    portability_required: bool = Field(False, description="Must also run off NVIDIA hardware")
    custom_quantization: bool = Field(False, description="A quantization the team must control")
    custom_topology: bool = Field(False, description="A serving topology the team must control")
    api: Api = Field("unknown", description="The API clients call: openai, custom, or unknown")

    @field_validator("env")
    @classmethod
    def _no_secret_values(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if SECRET_KEY_RE.search(key):
                raise ValueError(
                    f"{key} looks like a secret: give it under 'secrets:' by reference "
                    f"({{env: NAME}} or {{file: PATH}}), never by value"
                )
        return v


class TeamWeights(Strict):
    control: float = Field(1, ge=0)
    time_to_prod: float = Field(3, ge=0)
    eng_cost: float = Field(2, ge=0)
    lock_in_freedom: float = Field(1, ge=0)


class Team(Strict):
    weights: TeamWeights = Field(default_factory=TeamWeights)


class Costs(Strict):
    gpu_hour_usd: float = Field(2.5, ge=0)
    nim_license_per_gpu_year_usd: float = Field(4500, ge=0)
    engineer_week_usd: float = Field(4000, ge=0)


class FrontDoorConfig(Strict):
    """One URL per host for every model of the fleet (see docs/front-door.md)."""

    enabled: bool = Field(True, description="Run a front door on every host")
    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port of every host's front door (default: the top of the host's port range)",
    )
    image: str = Field(
        "fleetctl/front-door:0.1.0", min_length=1, description="The front door image"
    )
    customer_header: str = Field(
        "X-Customer",
        pattern=r"^[A-Za-z0-9-]+$",
        description="Request header that names the customer",
    )
    api_keys: dict[str, SecretRef] = Field(
        default_factory=dict,
        description="Customer -> API key reference (Authorization: Bearer KEY)",
    )
    check_interval_s: float = Field(
        1.0, gt=0, le=60, description="Active health check interval per replica"
    )
    check_timeout_s: float = Field(1.0, gt=0, le=60)
    check_fall: int = Field(
        2, ge=1, le=10, description="Failed checks in a row that take a replica out"
    )
    drain_timeout_s: float = Field(
        30.0, ge=0, description="How long a replaced replica may finish its requests"
    )


class Inventory(Strict):
    fleet: Annotated[str, Field(pattern=NAME_RE)] = Field(
        "default",
        description="Name of this fleet: containers of other fleets on the same hosts are never touched",
    )
    hosts: list[Host] = Field(min_length=1)
    models: list[Model] = Field(default_factory=list)
    team: Team = Field(default_factory=Team)
    costs: Costs = Field(default_factory=Costs)
    front_door: FrontDoorConfig = Field(default_factory=FrontDoorConfig)
    triton_servers: Literal["shared", "dedicated"] = Field(
        "shared",
        description="shared: co-located Triton models share one Triton server and change in it without a "
        "restart (docs/triton.md); dedicated: one Triton container per deployment",
    )

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def model(self, name: str) -> Model:
        return next(m for m in self.models if m.name == name)
