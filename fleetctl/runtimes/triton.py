"""Triton Inference Server: an open multi-model server.

Started in explicit model-control mode with the declared models loaded from a model
repository mounted read-only. Ready when /v2/health/ready answers 200 and every declared
model reports ready through tritonclient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, ClassVar

from pydantic import Field, model_validator

from fleetctl.core.fleet import Deployment
from fleetctl.core.inventory import Strict
from fleetctl.core.triton_servers import is_server, repositories_of, repository_mount
from fleetctl.runtimes.hookspecs import API_VERSION, hookimpl
from fleetctl.runtimes.spec import (
    ContainerSpec,
    HealthCheck,
    RenderContext,
    Routing,
    Volume,
    http_health,
    merged_env,
    ports_for,
    secret_env_from,
    settings_of,
    startup_budget,
)

HTTP, GRPC, METRICS = 8000, 8001, 8002
REPO_TARGET = "/models"


class DynamicBatching(Strict):
    """Triton's dynamic batcher for a model (its `max_batch_size` must be above 0)."""

    max_queue_delay_us: int = Field(0, ge=0, description="max_queue_delay_microseconds")
    preferred_batch_sizes: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)


class VersionPolicy(Strict):
    """Which versions of the model Triton serves: exactly one of the three."""

    latest: int | None = Field(None, ge=1, description="the newest N versions")
    specific: list[Annotated[int, Field(ge=1)]] | None = Field(None, min_length=1)
    all: bool = False

    @model_validator(mode="after")
    def _one(self) -> VersionPolicy:
        if sum([self.latest is not None, self.specific is not None, self.all]) != 1:
            raise ValueError("give exactly one of latest, specific, all")
        return self


class TritonConfig(Strict):
    """The Triton runtime's settings: a model's or a pin's `triton:` block."""

    # Its fields and their defaults are written here only; core keeps none of them.

    # Host paths, relative to the inventory file (the loader makes them absolute).
    host_paths: ClassVar[tuple[str, ...]] = ("model_repository",)

    model_repository: str = Field(
        description="Host path of the model repository (mounted read-only)"
    )
    models: list[str] = Field(default_factory=list, description="Models loaded with --load-model")
    startup_timeout_s: float = Field(300, gt=0)
    args: list[str] = Field(default_factory=list, description="Extra tritonserver arguments")
    server_binary: str = Field("tritonserver", description="Entrypoint of the image's server")
    backend_directory: str = "/opt/tritonserver/backends"
    shm_size: str | None = None
    dedicated: bool = Field(
        False,
        description="Serve this model in a Triton server of its own, never shared with co-located models",
    )
    # Applied to the model's Triton configuration through the load API's config override
    # (docs/triton.md), never by editing files on the host.
    instance_count: int | None = Field(None, ge=1, le=64, description="instance_group count")
    dynamic_batching: DynamicBatching | None = None
    version_policy: VersionPolicy | None = None


class TritonRuntime:
    name = "triton"
    config_key = "triton"
    config = TritonConfig

    def routing(self, d: Deployment) -> Routing:
        models = tuple(settings_of(TritonConfig, d.settings.get("triton")).models or [d.model])
        return Routing("kserve", models, "/v2/health/ready")

    def render(self, ctx: RenderContext) -> ContainerSpec:
        d = ctx.deployment
        cfg = settings_of(TritonConfig, d.settings.get("triton"))
        host_net = ctx.network == "host"
        http, grpc, metrics = (
            (ctx.port, ctx.port + 1, ctx.port + 2) if host_net else (HTTP, GRPC, METRICS)
        )
        models = list(cfg.models or [d.model])
        if is_server(d):  # a shared server: every member's repository, each at its own path
            repos = repositories_of(d)
            volumes = tuple(Volume(r, repository_mount(r), read_only=True) for r in repos)
        else:
            volumes = (Volume(cfg.model_repository, REPO_TARGET, read_only=True),)
        cmd = [
            *[f"--model-repository={v.target}" for v in volumes],
            "--model-control-mode=explicit",
            *[f"--load-model={m}" for m in models],
            f"--backend-directory={cfg.backend_directory}",
            f"--http-port={http}",
            f"--grpc-port={grpc}",
            f"--metrics-port={metrics}",
        ]
        if is_server(d):
            # A shared server stays ready (for the front door's checks) while one of its
            # models loads, reloads or unloads; each model's readiness is gated on its own.
            cmd.append("--strict-readiness=false")
        if host_net:
            bind = ctx.bind_address
            cmd += [f"--http-address={bind}", f"--grpc-address={bind}", f"--metrics-address={bind}"]
        if ctx.shared:
            # Inside the container its GPUs are numbered from 0 (NVIDIA_VISIBLE_DEVICES).
            share = round(ctx.memory_fraction, 3)
            cmd += [f"--model-load-gpu-limit={i}:{share:g}" for i in range(len(ctx.gpus))]
        cmd += list(cfg.args)
        health = (http_health("/v2/health/ready"),) + tuple(
            HealthCheck("triton_model", m, f"model {m} is READY") for m in models
        )
        return ContainerSpec(
            image=d.image,
            endpoint=f"http://{ctx.address}:{ctx.port}",
            health=health,
            startup_timeout_s=startup_budget(d, cfg.startup_timeout_s),
            entrypoint=(cfg.server_binary,),
            command=tuple(cmd),
            env=merged_env(d.settings.get("env")),
            secret_env=secret_env_from(d.settings.get("secrets") or {}),
            volumes=volumes,
            ports=ports_for(
                ctx.network, [(HTTP, ctx.port), (GRPC, ctx.port + 1), (METRICS, ctx.port + 2)]
            ),
            network_mode=ctx.network,
            shm_size=cfg.shm_size,
            gpus=ctx.gpus,
            simulated_gpus=ctx.simulated,
        )


# Built-ins declare the hook API version like any plugin.
FLEETCTL_API_VERSION = API_VERSION


@hookimpl
def register_runtimes(register: Callable[[object], None]) -> None:
    register(TritonRuntime())
