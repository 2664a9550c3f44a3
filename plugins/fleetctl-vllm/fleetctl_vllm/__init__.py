"""A third-party runtime for fleetctl: the vLLM OpenAI-compatible server.

It shows the whole plugin API: the hook API version it is built for, a runtime with its
own inventory block (`options:`, validated by `VllmOptions`), and a health-check kind of
its own (`vllm_model`: the server lists the served model), registered through the
`fleetctl` entry-point group.
Inventory: `runtime: vllm`, `options: {model: meta-llama/Llama-3.1-8B-Instruct}`.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field

from fleetctl.core.fleet import Deployment
from fleetctl.core.inventory import Strict
from fleetctl.runtimes.hookspecs import hookimpl
from fleetctl.runtimes.spec import (
    CheckKind,
    CheckResult,
    ContainerSpec,
    HealthCheck,
    RenderContext,
    Routing,
    http_health,
    merged_env,
    ports_for,
    secret_env_from,
    settings_of,
    startup_budget,
)

# The fleetctl hook API this plugin is built for (fleetctl refuses another major version).
FLEETCTL_API_VERSION = "1.0"

CONTAINER_PORT = 8000
MODEL_CHECK = "vllm_model"


class VllmOptions(Strict):
    """The model's `options:` block for `runtime: vllm`."""

    model: str | None = Field(
        None, min_length=1, description="What vLLM serves (--model; default: the model's name)"
    )
    max_model_len: int | None = Field(None, ge=1, description="--max-model-len")
    startup_timeout_s: float = Field(900, gt=0, description="Readiness budget")


class ModelCheckSettings(Strict):
    """Settings of the `vllm_model` check."""

    models_path: str = Field("/v1/models", pattern=r"^/", description="Where vLLM lists its models")


def probe_served_model(
    endpoint: str, check: HealthCheck, settings: ModelCheckSettings, timeout_s: float
) -> CheckResult:
    """Ready when the server lists `check.target` among its models (it answers /health
    before the model is usable under its served name)."""
    import httpx

    path = settings.models_path
    try:
        r = httpx.get(endpoint.rstrip("/") + path, timeout=timeout_s)
        doc = r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        return CheckResult(False, f"GET {path}: {type(exc).__name__}")
    if doc is None:
        return CheckResult(False, f"GET {path}: {r.status_code}")
    rows = doc.get("data") if isinstance(doc, dict) else None
    ids = [str(m.get("id")) for m in rows or [] if isinstance(m, dict)]
    if check.target in ids:
        return CheckResult(True, f"GET {path}: serves {check.target}")
    return CheckResult(False, f"GET {path}: {check.target} not listed ({', '.join(ids) or 'none'})")


class VllmRuntime:
    name = "vllm"
    config = VllmOptions  # validates `options:` (the default config_key)

    def served(self, d: Deployment) -> str:
        return settings_of(VllmOptions, d.settings.get("options")).model or d.model

    def routing(self, d: Deployment) -> Routing:
        """vLLM speaks the OpenAI API, so the front door routes to it by the body's model."""
        served = self.served(d)
        return Routing("openai", tuple(dict.fromkeys([d.model, served])), "/health", served)

    def render(self, ctx: RenderContext) -> ContainerSpec:
        d = ctx.deployment
        opts = settings_of(VllmOptions, d.settings.get("options"))
        served = self.served(d)
        host_net = ctx.network == "host"
        port = ctx.port if host_net else CONTAINER_PORT
        args = ["--model", served, "--port", str(port)]
        if host_net:
            args += ["--host", ctx.bind_address]
        if d.gpus > 1:
            args += ["--tensor-parallel-size", str(d.gpus)]
        if opts.max_model_len:
            args += ["--max-model-len", str(opts.max_model_len)]
        # vLLM takes 90% of the GPU by default; hold it to the planned share.
        args += ["--gpu-memory-utilization", f"{min(0.95, ctx.memory_fraction):.3g}"]
        return ContainerSpec(
            image=d.image,
            endpoint=f"http://{ctx.address}:{ctx.port}",
            health=(
                http_health("/health"),
                HealthCheck(MODEL_CHECK, served, f"/v1/models lists {served}"),
            ),
            startup_timeout_s=startup_budget(d, opts.startup_timeout_s),
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
def register_runtimes(register: Callable[[object], None]) -> None:
    register(VllmRuntime())


@hookimpl
def register_health_checks(register: Callable[[object], None]) -> None:
    register(CheckKind(MODEL_CHECK, probe_served_model, ModelCheckSettings))
