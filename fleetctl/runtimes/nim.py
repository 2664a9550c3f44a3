"""NVIDIA NIM: a prebuilt, tuned engine with an OpenAI-compatible API in one image.

Contract followed: the API listens on NIM_SERVER_PORT (host networking) or on 8000
published; NGC_API_KEY comes from its reference at apply time only; the model cache is
mounted at /opt/nim/.cache; readiness is GET /v1/health/ready, with a start-up budget that
fits real NIMs (engine build or download: 20 minutes by default).
"""

from __future__ import annotations

from fleetctl.core.fleet import Deployment
from fleetctl.runtimes.hookspecs import hookimpl
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
    startup_budget,
)

CONTAINER_PORT = 8000
CACHE_TARGET = "/opt/nim/.cache"
MULTI_GPU_SHM = "16g"
DEFAULT_STARTUP_S = 1200.0


class NimRuntime:
    name = "nim"

    def routing(self, d: Deployment) -> Routing:
        served = (d.settings.get("nim") or {}).get("served_model_name")
        names = tuple(dict.fromkeys([d.model, *([served] if served else [])]))
        return Routing("openai", names, "/v1/health/ready", served)

    def render(self, ctx: RenderContext) -> ContainerSpec:
        d = ctx.deployment
        cfg = d.settings.get("nim") or {}
        env: dict[str, str] = {}
        if ctx.network == "host":
            env["NIM_SERVER_PORT"] = str(ctx.port)
            env["NIM_HTTP_API_PORT"] = str(ctx.port)
        env["NIM_CACHE_PATH"] = CACHE_TARGET
        if cfg.get("served_model_name"):
            env["NIM_SERVED_MODEL_NAME"] = cfg["served_model_name"]
        if cfg.get("model_profile"):
            env["NIM_MODEL_PROFILE"] = cfg["model_profile"]
        passthrough = cfg.get("passthrough_args") or ""
        kv = cfg.get("kvcache_percent")
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

        ref = cfg.get("ngc_api_key") or {"env": "NGC_API_KEY"}
        ngc = SecretEnv(
            "NGC_API_KEY", f"env:{ref['env']}" if ref.get("env") else f"file:{ref['file']}"
        )
        secrets = (ngc,) + tuple(
            s for s in secret_env_from(d.settings.get("secrets") or {}) if s.name != "NGC_API_KEY"
        )

        shm = cfg.get("shm_size") or (MULTI_GPU_SHM if d.gpus > 1 else None)
        return ContainerSpec(
            image=d.image,
            endpoint=f"http://{ctx.address}:{ctx.port}",
            health=(http_health("/v1/health/ready"),),
            startup_timeout_s=startup_budget(d, cfg.get("startup_timeout_s") or DEFAULT_STARTUP_S),
            env=env,
            secret_env=secrets,
            volumes=(Volume(cfg.get("cache_dir") or "/var/cache/nim", CACHE_TARGET),),
            ports=ports_for(ctx.network, [(CONTAINER_PORT, ctx.port)]),
            network_mode=ctx.network,
            shm_size=shm,
            gpus=ctx.gpus,
            simulated_gpus=ctx.simulated,
        )


@hookimpl
def register_runtimes(register) -> None:
    register(NimRuntime())
