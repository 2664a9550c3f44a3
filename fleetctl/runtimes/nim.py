"""NVIDIA NIM: a prebuilt, tuned engine with an OpenAI-compatible API in one image.

Contract followed: the API listens on NIM_SERVER_PORT (host networking) or on 8000
published; NGC_API_KEY comes from its reference at apply time only; the model cache is
mounted at /opt/nim/.cache; readiness is GET /v1/health/ready, with a start-up budget that
fits real NIMs (engine build or download: 20 minutes by default).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

from pydantic import Field

from fleetctl.core.fleet import Deployment
from fleetctl.core.inventory import SecretRef, Strict
from fleetctl.runtimes.hookspecs import API_VERSION, hookimpl
from fleetctl.runtimes.spec import (
    ContainerSpec,
    RenderContext,
    Routing,
    SecretEnv,
    Volume,
    http_health,
    merged_env,
    ports_for,
    secret_env_from,
    settings_of,
    startup_budget,
)

CONTAINER_PORT = 8000
CACHE_TARGET = "/opt/nim/.cache"
MULTI_GPU_SHM = "16g"


class NimConfig(Strict):
    """The NIM runtime's settings: a model's or a pin's `nim:` block."""

    # Its fields and their defaults are written here only; core keeps none of them.

    # Host paths, relative to the inventory file (the loader makes them absolute).
    host_paths: ClassVar[tuple[str, ...]] = ("cache_dir",)

    model_profile: str | None = Field(None, description="NIM_MODEL_PROFILE")
    served_model_name: str | None = Field(None, description="NIM_SERVED_MODEL_NAME")
    cache_dir: str = Field("/var/cache/nim", description="Host path mounted at /opt/nim/.cache")
    shm_size: str | None = Field(None, description="Default 16g for multi-GPU replicas")
    startup_timeout_s: float = Field(
        1200, gt=0, description="Readiness budget (real NIMs need minutes)"
    )
    kvcache_percent: float | None = Field(
        None, gt=0, le=1, description="Override NIM_KVCACHE_PERCENT"
    )
    ngc_api_key: SecretRef = Field(default_factory=lambda: SecretRef(env="NGC_API_KEY", file=None))
    passthrough_args: str | None = Field(None, description="NIM_PASSTHROUGH_ARGS")


class NimRuntime:
    name = "nim"
    config_key = "nim"
    config = NimConfig

    def routing(self, d: Deployment) -> Routing:
        served = settings_of(NimConfig, d.settings.get("nim")).served_model_name
        names = tuple(dict.fromkeys([d.model, *([served] if served else [])]))
        return Routing("openai", names, "/v1/health/ready", served)

    def render(self, ctx: RenderContext) -> ContainerSpec:
        d = ctx.deployment
        cfg = settings_of(NimConfig, d.settings.get("nim"))
        env: dict[str, str] = {}
        if ctx.network == "host":
            env["NIM_SERVER_PORT"] = str(ctx.port)
            env["NIM_HTTP_API_PORT"] = str(ctx.port)
        env["NIM_CACHE_PATH"] = CACHE_TARGET
        if cfg.served_model_name:
            env["NIM_SERVED_MODEL_NAME"] = cfg.served_model_name
        if cfg.model_profile:
            env["NIM_MODEL_PROFILE"] = cfg.model_profile
        passthrough = cfg.passthrough_args or ""
        kv = cfg.kvcache_percent
        if ctx.shared or kv:
            # vLLM and TensorRT-LLM engines take ~90% of the GPU unless told otherwise;
            # a shared GPU must hold the planned share only.
            share = float(kv) if kv else round(ctx.memory_fraction, 3)
            env["NIM_KVCACHE_PERCENT"] = f"{share:g}"
            framework = str(d.settings.get("framework") or "")
            if "vllm" in framework and "--gpu-memory-utilization" not in passthrough:
                passthrough = f"{passthrough} --gpu-memory-utilization {share:g}".strip()
        if passthrough:
            env["NIM_PASSTHROUGH_ARGS"] = passthrough
        env = merged_env(env, d.settings.get("env"))

        ref = cfg.ngc_api_key
        if isinstance(ref, Mapping):  # the settings hold the reference as JSON
            ref = SecretRef.model_validate(ref)
        ngc = SecretEnv("NGC_API_KEY", ref.describe())
        secrets = (ngc,) + tuple(
            s for s in secret_env_from(d.settings.get("secrets") or {}) if s.name != "NGC_API_KEY"
        )

        shm = cfg.shm_size or (MULTI_GPU_SHM if d.gpus > 1 else None)
        return ContainerSpec(
            image=d.image,
            endpoint=f"http://{ctx.address}:{ctx.port}",
            health=(http_health("/v1/health/ready"),),
            startup_timeout_s=startup_budget(d, cfg.startup_timeout_s),
            env=env,
            secret_env=secrets,
            volumes=(Volume(cfg.cache_dir, CACHE_TARGET),),
            ports=ports_for(ctx.network, [(CONTAINER_PORT, ctx.port)]),
            network_mode=ctx.network,
            shm_size=shm,
            gpus=ctx.gpus,
            simulated_gpus=ctx.simulated,
        )


# Built-ins declare the hook API version like any plugin.
FLEETCTL_API_VERSION = API_VERSION


@hookimpl
def register_runtimes(register: Callable[[object], None]) -> None:
    register(NimRuntime())
