"""The vLLM plugin as fleetctl sees it: found through its entry point, its `options:`
validated by its model, its container spec, and its `vllm_model` health check probing a
real HTTP server on loopback."""

from __future__ import annotations

import importlib.metadata as md
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fleetctl_vllm
import pytest
from packaging.requirements import Requirement

from fleetctl.adapters.probes import run_check
from fleetctl.core.fleet import Deployment
from fleetctl.core.resolve import deployments
from fleetctl.errors import InventoryError
from fleetctl.runtimes.hookspecs import API_VERSION
from fleetctl.runtimes.inventory import load_text
from fleetctl.runtimes.registry import get_runtime, plugins, run_plugin_check
from fleetctl.runtimes.spec import HealthCheck, RenderContext

INVENTORY = """\
hosts:
  - {name: h, simulated: true, gpus: {count: 2, memory_gb: 80}}
models:
  - name: chat
    version: '1'
    runtime: vllm
    image: vllm/vllm-openai:v0.6.3
    gpu_memory_gb: 20
"""


def ctx(d: Deployment, *, network: str = "host") -> RenderContext:
    return RenderContext(d, 0, "h", (0,), 20010, network, "127.0.0.1", True, 80.0, True)  # type: ignore[arg-type]


def deployment(options: str = "") -> Deployment:
    text = INVENTORY + (f"    options: {options}\n" if options else "")
    (d,) = deployments(load_text(text, "fleet.yaml").inventory)
    return d


def test_found_through_its_entry_point_with_its_distribution_and_check_kind() -> None:
    found = plugins()
    assert found.sources["vllm"] == "fleetctl-vllm"
    assert fleetctl_vllm.MODEL_CHECK in found.check_kinds
    assert not found.broken


def test_it_declares_the_hook_api_and_bounds_the_fleetctl_it_is_written_for() -> None:
    assert fleetctl_vllm.FLEETCTL_API_VERSION.split(".")[0] == API_VERSION.split(".")[0]
    (req,) = [
        Requirement(r) for r in md.requires("fleetctl-vllm") or [] if r.startswith("fleetctl")
    ]
    assert req.specifier.contains(md.version("fleetctl"))
    assert any(s.operator == "<" for s in req.specifier)  # an upper bound: the next minor


def test_options_are_validated_by_the_plugin_model_with_file_line_col() -> None:
    with pytest.raises(InventoryError) as err:
        deployment("{modle: meta-llama/Llama-3.1-8B-Instruct, max_model_len: 0}")
    assert err.value.problems == [
        "fleet.yaml:9:15: models[0].options.modle: unknown key (did you mean model?)",
        "fleet.yaml:9:71: models[0].options.max_model_len: Input should be greater than or equal to 1",
    ]


def test_render_serves_the_configured_model_within_its_share_and_checks_it_is_listed() -> None:
    d = deployment("{model: meta-llama/Llama-3.1-8B-Instruct, max_model_len: 8192}")
    # Only what the inventory gave is kept in the settings (and hashed into the spec).
    assert d.settings["options"] == {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "max_model_len": 8192,
    }
    spec = get_runtime("vllm").render(ctx(d))
    cmd = list(spec.command)
    assert cmd[:4] == ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--port", "20010"]
    assert cmd[cmd.index("--max-model-len") + 1] == "8192"
    assert cmd[cmd.index("--gpu-memory-utilization") + 1] == "0.25"
    assert spec.startup_timeout_s == 900  # the plugin's default, written once
    assert [(h.kind, h.target) for h in spec.health] == [
        ("http", "/health"),
        ("vllm_model", "meta-llama/Llama-3.1-8B-Instruct"),
    ]
    routing = get_runtime("vllm").routing(d)  # type: ignore[attr-defined]
    assert routing.names == ("chat", "meta-llama/Llama-3.1-8B-Instruct")


def test_without_options_it_serves_the_model_name_and_publishes_8000_on_a_bridge() -> None:
    spec = get_runtime("vllm").render(ctx(deployment(), network="bridge"))
    assert list(spec.command[:4]) == ["--model", "chat", "--port", "8000"]
    assert [(p.container_port, p.host_port) for p in spec.ports] == [(8000, 20010)]


class _Models(BaseHTTPRequestHandler):
    listed: list[str] = []
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        body = json.dumps({"object": "list", "data": [{"id": m} for m in self.listed]}).encode()
        self.send_response(self.status if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Models]]]:
    handler = type("Models", (_Models,), {"listed": [], "status": 200})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_model_check_passes_only_when_the_server_lists_the_model(
    server: tuple[str, type[_Models]],
) -> None:
    url, handler = server
    check = get_runtime("vllm").render(ctx(deployment())).health[1]
    handler.listed = ["other"]
    result = run_check(url, check)  # the apply gate's probe interface
    assert not result.ok and result.detail == "GET /v1/models: chat not listed (other)"
    handler.listed = ["other", "chat"]
    assert run_check(url, check).ok
    handler.status = 503
    assert run_check(url, check).detail == "GET /v1/models: 503"


def test_the_model_check_settings_are_validated_and_a_dead_server_is_not_ready(
    server: tuple[str, type[_Models]],
) -> None:
    url, handler = server
    handler.listed = ["chat"]
    moved = HealthCheck("vllm_model", "chat", params={"models_path": "/v2/models"})
    assert run_plugin_check(url, moved, 1.0).detail == "GET /v2/models: 404"
    bad = HealthCheck("vllm_model", "chat", params={"models_path": "v1/models"})
    assert run_plugin_check(url, bad, 1.0).detail.startswith("vllm_model check: models_path: ")
    dead = run_plugin_check("http://127.0.0.1:9", replace(moved, params={}), 0.5)
    assert not dead.ok and dead.detail.startswith("GET /v1/models: ")


def test_the_health_sweep_runs_the_plugin_check_too(server: tuple[str, type[_Models]]) -> None:
    from fleetctl.ops.health.model import ProbeSpec
    from fleetctl.ops.health.probing import Prober

    url, handler = server
    handler.listed = ["other"]
    spec = replace(get_runtime("vllm").render(ctx(deployment())), endpoint=url)
    with Prober() as probe:
        result = probe(ProbeSpec(spec, runtime="vllm"), 2.0)
        # /health is not served by this server; both checks report, each with its reason.
        assert not result.ok
        assert result.problems == ("GET /health: 404", "GET /v1/models: chat not listed (other)")
        handler.listed = ["chat"]
        assert probe(ProbeSpec(replace(spec, health=spec.health[1:]), runtime="vllm"), 2.0).ok
