"""Runtimes render container specs from placed replicas; plugins register the same way."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fleetctl.core.fleet import Deployment
from fleetctl.errors import FleetctlError
from fleetctl.runtimes.hookspecs import hookimpl
from fleetctl.runtimes.registry import (
    collect_runtimes,
    get_runtime,
    make_plugin_manager,
    runtime_names,
)
from fleetctl.runtimes.spec import RenderContext

NIM = Deployment(
    model="chat-llm",
    version="v4",
    runtime="nim",
    image="nvcr.io/nim/meta/llama:1",
    memory_gb=40,
    settings={
        "env": {"LOG_LEVEL": "info"},
        "secrets": {},
        "nim": {
            "served_model_name": "chat",
            "ngc_api_key": {"env": "MY_NGC_KEY", "file": None},
            "cache_dir": "/cache",
        },
        "framework": "vllm",
    },
)
TRITON = Deployment(
    model="embeddings",
    version="1",
    runtime="triton",
    image="tritonserver:24.10",
    memory_gb=2,
    settings={
        "env": {},
        "secrets": {"HF_TOKEN": "file:/run/secrets/hf"},
        "triton": {"model_repository": "/srv/models", "models": ["embeddings"]},
    },
)


def ctx(
    d: Deployment, *, network: str = "host", shared: bool = False, gpus: tuple[int, ...] = (2,)
) -> RenderContext:
    return RenderContext(d, 0, "h1", gpus, 20004, network, "127.0.0.1", False, 80.0, shared)  # type: ignore[arg-type]


def test_builtins_are_registered_through_the_plugin_hooks() -> None:
    assert {"nim", "triton"} <= set(runtime_names())


def test_nim_host_network_sets_ports_cache_and_secret_reference_only() -> None:
    spec = get_runtime("nim").render(ctx(NIM))
    assert spec.env["NIM_SERVER_PORT"] == "20004" and spec.env["NIM_HTTP_API_PORT"] == "20004"
    assert spec.env["NIM_SERVED_MODEL_NAME"] == "chat"
    assert spec.env["LOG_LEVEL"] == "info"
    assert "NGC_API_KEY" not in spec.env
    assert [(s.name, s.source) for s in spec.secret_env] == [("NGC_API_KEY", "env:MY_NGC_KEY")]
    assert [(v.source, v.target) for v in spec.volumes] == [("/cache", "/opt/nim/.cache")]
    assert spec.ports == () and spec.network_mode == "host"
    assert [h.target for h in spec.health] == ["/v1/health/ready"]
    assert spec.startup_timeout_s == 1200
    assert spec.shm_size is None
    assert "NIM_KVCACHE_PERCENT" not in spec.env  # alone on its GPU


def test_nim_on_a_shared_gpu_is_capped_to_its_planned_share() -> None:
    spec = get_runtime("nim").render(ctx(NIM, shared=True))
    assert spec.env["NIM_KVCACHE_PERCENT"] == "0.5"
    assert "--gpu-memory-utilization 0.5" in spec.env["NIM_PASSTHROUGH_ARGS"]


def test_nim_bridge_publishes_8000_and_multi_gpu_gets_shm() -> None:
    d = replace(NIM, gpus=2, memory_gb=80)
    spec = get_runtime("nim").render(ctx(d, network="bridge", gpus=(0, 1)))
    assert [(p.container_port, p.host_port) for p in spec.ports] == [(8000, 20004)]
    assert "NIM_SERVER_PORT" not in spec.env
    assert spec.shm_size == "16g"


def test_triton_explicit_mode_with_declared_models_and_read_only_repository() -> None:
    spec = get_runtime("triton").render(ctx(TRITON))
    cmd = list(spec.command)
    assert "--model-control-mode=explicit" in cmd and "--load-model=embeddings" in cmd
    assert {"--http-port=20004", "--grpc-port=20005", "--metrics-port=20006"} <= set(cmd)
    assert "--http-address=127.0.0.1" in cmd
    assert not any(c.startswith("--model-load-gpu-limit") for c in cmd)
    assert [(v.source, v.target, v.read_only) for v in spec.volumes] == [
        ("/srv/models", "/models", True)
    ]
    assert [(h.kind, h.target) for h in spec.health] == [
        ("http", "/v2/health/ready"),
        ("triton_model", "embeddings"),
    ]
    assert [(s.name, s.source) for s in spec.secret_env] == [("HF_TOKEN", "file:/run/secrets/hf")]


def test_triton_shared_gpu_limits_model_loading() -> None:
    spec = get_runtime("triton").render(ctx(TRITON, shared=True))
    assert "--model-load-gpu-limit=0:0.025" in spec.command


def test_triton_bridge_publishes_three_ports() -> None:
    spec = get_runtime("triton").render(ctx(TRITON, network="bridge"))
    assert [(p.container_port, p.host_port) for p in spec.ports] == [
        (8000, 20004),
        (8001, 20005),
        (8002, 20006),
    ]
    assert "--http-port=8000" in spec.command


def test_health_startup_override() -> None:
    d = replace(TRITON, settings={**TRITON.settings, "health": {"startup_timeout_s": 42}})
    assert get_runtime("triton").render(ctx(d)).startup_timeout_s == 42


def test_a_third_party_plugin_registers_a_runtime() -> None:
    class Echo:
        name = "echo"

        def render(self, c: RenderContext):  # type: ignore[no-untyped-def]
            return get_runtime("triton").render(c)

    class Plugin:
        @hookimpl
        def register_runtimes(self, register):  # type: ignore[no-untyped-def]
            register(Echo())

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(Plugin())
    assert set(collect_runtimes(pm)) == {"echo"}


def test_the_out_of_tree_vllm_plugin_is_found_through_its_entry_point() -> None:
    # plugins/fleetctl-vllm is installed next to fleetctl by `make test`.
    assert "vllm" in runtime_names()
    spec = get_runtime("vllm").render(ctx(replace(NIM, runtime="vllm"), shared=True))
    assert "--gpu-memory-utilization" in spec.command


def test_a_plugin_runtime_without_render_is_refused() -> None:
    class Broken:
        @hookimpl
        def register_runtimes(self, register):  # type: ignore[no-untyped-def]
            register(object())

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(Broken())
    with pytest.raises(FleetctlError):
        collect_runtimes(pm)


def test_container_creation_real_gpus_are_a_device_request_simulated_ones_an_env_var() -> None:
    from fleetctl.adapters.docker_host import create_args

    real = get_runtime("nim").render(ctx(NIM, gpus=(2, 3)))
    args = create_args(real, {"NGC_API_KEY": "k"})
    assert args.device_ids == ("2", "3")
    assert "NVIDIA_VISIBLE_DEVICES" not in args.env and args.env["NGC_API_KEY"] == "k"

    sim = get_runtime("nim").render(replace(ctx(NIM, gpus=(1,)), simulated=True))
    args = create_args(sim, {})
    assert args.device_ids == () and args.env["NVIDIA_VISIBLE_DEVICES"] == "1"


def test_container_creation_bridge_publishes_ports_and_mounts_read_only() -> None:
    from fleetctl.adapters.docker_host import create_args

    args = create_args(get_runtime("triton").render(ctx(TRITON, network="bridge")), {})
    # Published on loopback unless the inventory asks for more (Docker's default is every interface).
    assert args.port_bindings == {
        8000: ("127.0.0.1", 20004),
        8001: ("127.0.0.1", 20005),
        8002: ("127.0.0.1", 20006),
    }
    wider = create_args(
        get_runtime("triton").render(ctx(TRITON, network="bridge")), {}, publish_address="10.0.0.5"
    )
    assert wider.port_bindings[8000] == ("10.0.0.5", 20004)
    assert args.binds == {"/srv/models": {"bind": "/models", "mode": "ro"}}
    host_net = create_args(get_runtime("triton").render(ctx(TRITON)), {})
    assert host_net.port_bindings == {}


BLOCKS = """\
hosts:
  - {name: h, simulated: true, gpus: {count: 1, memory_gb: 80}}
models:
  - name: emb
    version: '2'
    runtime: triton
    image: tritonserver:24.10
    gpu_memory_gb: 2
    triton: {model_repository: repo}
    pins:
      - {version: '1', image: tritonserver:24.09, customers: [acme], triton: %s}
"""


def test_the_built_in_blocks_are_the_models_their_runtimes_register() -> None:
    from fleetctl.runtimes.nim import NimConfig
    from fleetctl.runtimes.registry import runtime_catalog
    from fleetctl.runtimes.triton import TritonConfig

    catalog = runtime_catalog()
    assert (catalog.blocks["nim"].key, catalog.blocks["nim"].model) == ("nim", NimConfig)
    assert (catalog.blocks["triton"].key, catalog.blocks["triton"].model) == (
        "triton",
        TritonConfig,
    )
    assert catalog.blocks["vllm"].key == "options"
    for model in (NimConfig, TritonConfig):
        assert model.model_config["extra"] == "forbid"


def test_blocks_of_models_and_pins_load_as_their_runtime_models_with_absolute_paths(
    tmp_path: Path,
) -> None:
    from fleetctl.runtimes.inventory import load
    from fleetctl.runtimes.triton import TritonConfig

    path = tmp_path / "fleet.yaml"
    path.write_text(BLOCKS % "{model_repository: old-repo, dedicated: true}")
    model = load(path).inventory.models[0]
    assert isinstance(model.triton, TritonConfig) and isinstance(model.pins[0].triton, TritonConfig)
    assert model.triton.model_repository == str(tmp_path / "repo")
    assert model.pins[0].triton.model_repository == str(tmp_path / "old-repo")
    assert model.triton.startup_timeout_s == 300  # TritonConfig's default


def test_a_pin_block_is_checked_by_its_runtime_model_with_file_line_col() -> None:
    from fleetctl.errors import InventoryError
    from fleetctl.runtimes.inventory import load_text

    with pytest.raises(InventoryError) as err:
        load_text(BLOCKS % "{model_repository: r, dedicatd: true, instance_count: 0}", "f.yaml")
    assert err.value.problems == [
        "f.yaml:11:100: models[0].pins[0].triton.dedicatd: unknown key (did you mean dedicated?)",
        "f.yaml:11:132: models[0].pins[0].triton.instance_count: Input should be greater than or equal to 1",
    ]
    with pytest.raises(InventoryError) as err:
        load_text(BLOCKS % "5", "f.yaml")
    assert err.value.problems == [
        "f.yaml:11:78: models[0].pins[0].triton: Input should be a mapping of the runtime's settings"
    ]


def test_triton_without_its_block_is_refused_by_what_its_model_requires() -> None:
    from fleetctl.errors import InventoryError
    from fleetctl.runtimes.inventory import load_text

    text = BLOCKS.replace("    triton: {model_repository: repo}\n", "").split("    pins:")[0]
    with pytest.raises(InventoryError) as err:
        load_text(text, "f.yaml")
    assert err.value.problems == [
        "f.yaml:4:5: models[0]: runtime triton needs a 'triton:' block with model_repository"
    ]


def test_a_runtime_reads_its_settings_with_its_own_defaults() -> None:
    from fleetctl.runtimes.nim import NimConfig
    from fleetctl.runtimes.spec import settings_of

    cfg = settings_of(NimConfig, {"served_model_name": "chat", "startup_timeout_s": None})
    assert cfg.served_model_name == "chat"
    assert (cfg.startup_timeout_s, cfg.cache_dir) == (1200, "/var/cache/nim")
    assert cfg.ngc_api_key.describe() == "env:NGC_API_KEY"
