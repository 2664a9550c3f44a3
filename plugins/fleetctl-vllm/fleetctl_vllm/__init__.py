"""A third-party runtime for fleetctl: the vLLM OpenAI-compatible server.

It shows the whole plugin API: one `register_runtimes` hook, registered through the
`fleetctl` entry-point group, returning an object with a `name` and `render(ctx)`.
Inventory: `runtime: vllm`, `options: {model: meta-llama/Llama-3.1-8B-Instruct}`.
"""

from __future__ import annotations

from fleetctl.core.fleet import Deployment
from fleetctl.runtimes.hookspecs import hookimpl
from fleetctl.runtimes.spec import (
    ContainerSpec,
    RenderContext,
    Routing,
    http_health,
    merged_env,
    ports_for,
    secret_env_from,
    startup_budget,
)

CONTAINER_PORT = 8000


class VllmRuntime:
    name = "vllm"

    def routing(self, d: Deployment) -> Routing:
        """vLLM speaks the OpenAI API, so the front door routes to it by the body's model."""
        served = str((d.settings.get("options") or {}).get("model", d.model))
        return Routing("openai", tuple(dict.fromkeys([d.model, served])), "/health", served)

    def render(self, ctx: RenderContext) -> ContainerSpec:
        d = ctx.deployment
        opts = d.settings.get("options") or {}
        host_net = ctx.network == "host"
        port = ctx.port if host_net else CONTAINER_PORT
        args = ["--model", str(opts.get("model", d.model)), "--port", str(port)]
        if host_net:
            args += ["--host", ctx.bind_address]
        if d.gpus > 1:
            args += ["--tensor-parallel-size", str(d.gpus)]
        # vLLM takes 90% of the GPU by default; hold it to the planned share.
        args += ["--gpu-memory-utilization", f"{min(0.95, ctx.memory_fraction):.3g}"]
        return ContainerSpec(
            image=d.image,
            endpoint=f"http://{ctx.address}:{ctx.port}",
            health=(http_health("/health"),),
            startup_timeout_s=startup_budget(d, 900),
            command=tuple(args),
            env=merged_env(d.settings.get("env")),
            secret_env=secret_env_from(d.settings.get("secrets") or {}),
            ports=ports_for(ctx.network, [(CONTAINER_PORT, ctx.port)]),
            network_mode=ctx.network,
            shm_size="16g" if d.gpus > 1 else None,
            gpus=ctx.gpus,
            simulated_gpus=ctx.simulated,
        )


@hookimpl
def register_runtimes(register) -> None:  # type: ignore[no-untyped-def]
    register(VllmRuntime())
