"""Triton Inference Server: an open multi-model server.

Started in explicit model-control mode with the declared models loaded from a model
repository mounted read-only. Ready when /v2/health/ready answers 200 and every declared
model reports ready through tritonclient.
"""

from __future__ import annotations

from fleetctl.core.fleet import Deployment
from fleetctl.core.triton_servers import is_server, repositories_of, repository_mount
from fleetctl.runtimes.hookspecs import hookimpl
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
    startup_budget,
)

HTTP, GRPC, METRICS = 8000, 8001, 8002
REPO_TARGET = "/models"
DEFAULT_STARTUP_S = 300.0


class TritonRuntime:
    name = "triton"

    def routing(self, d: Deployment) -> Routing:
        models = tuple((d.settings.get("triton") or {}).get("models") or [d.model])
        return Routing("kserve", models, "/v2/health/ready")

    def render(self, ctx: RenderContext) -> ContainerSpec:
        d = ctx.deployment
        cfg = d.settings.get("triton") or {}
        host_net = ctx.network == "host"
        http, grpc, metrics = (
            (ctx.port, ctx.port + 1, ctx.port + 2) if host_net else (HTTP, GRPC, METRICS)
        )
        models = list(cfg.get("models") or [d.model])
        if is_server(d):  # a shared server: every member's repository, each at its own path
            repos = repositories_of(d)
            volumes = tuple(Volume(r, repository_mount(r), read_only=True) for r in repos)
        else:
            volumes = (Volume(cfg["model_repository"], REPO_TARGET, read_only=True),)
        cmd = [
            *[f"--model-repository={v.target}" for v in volumes],
            "--model-control-mode=explicit",
            *[f"--load-model={m}" for m in models],
            f"--backend-directory={cfg.get('backend_directory') or '/opt/tritonserver/backends'}",
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
        cmd += list(cfg.get("args") or [])
        health = (http_health("/v2/health/ready"),) + tuple(
            HealthCheck("triton_model", m, f"model {m} is READY") for m in models
        )
        return ContainerSpec(
            image=d.image,
            endpoint=f"http://{ctx.address}:{ctx.port}",
            health=health,
            startup_timeout_s=startup_budget(d, cfg.get("startup_timeout_s") or DEFAULT_STARTUP_S),
            entrypoint=(cfg.get("server_binary") or "tritonserver",),
            command=tuple(cmd),
            env=merged_env(d.settings.get("env")),
            secret_env=secret_env_from(d.settings.get("secrets") or {}),
            volumes=volumes,
            ports=ports_for(
                ctx.network, [(HTTP, ctx.port), (GRPC, ctx.port + 1), (METRICS, ctx.port + 2)]
            ),
            network_mode=ctx.network,
            shm_size=cfg.get("shm_size"),
            gpus=ctx.gpus,
            simulated_gpus=ctx.simulated,
        )


@hookimpl
def register_runtimes(register) -> None:
    register(TritonRuntime())
