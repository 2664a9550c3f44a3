"""The inventory: validation and errors a user can act on (FILE:LINE:COL: path: problem)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fleetctl.core.resolve import deployments, host_specs
from fleetctl.errors import ExitCode, InventoryError
from fleetctl.runtimes.inventory import load, load_text

REPO = Path(__file__).resolve().parents[2]

HOST = """\
hosts:
  - name: h1
    simulated: true
    gpus: {count: 2, memory_gb: 80}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(InventoryError) as exc:
        load_text(textwrap.dedent(text), "fleet.yaml")
    assert exc.value.exit_code == ExitCode.INVENTORY
    return exc.value.problems


def test_seed_inventory_loads_with_five_deployments() -> None:
    loaded = load(REPO / "inventory" / "fleet.yaml")
    names = [d.name for d in deployments(loaded.inventory)]
    assert names == ["chat-llm@v4", "chat-llm@v3", "embeddings@1", "reranker@1", "safety-guard@1"]
    pinned = [d for d in deployments(loaded.inventory) if d.pinned]
    assert [(d.name, d.customers, d.memory_gb) for d in pinned] == [
        ("chat-llm@v3", ("acme-corp",), 40)
    ]
    (host,) = host_specs(loaded.inventory)
    assert [g.usable_gb for g in host.gpus] == [80, 80, 80, 80]


def test_invalid_yaml_points_at_line_and_column() -> None:
    (p,) = problems("hosts:\n  - name: h1\n    gpus: {count: 2\n")
    assert p.startswith("fleet.yaml:")
    assert "<yaml>" in p


def test_unknown_key_is_refused_at_its_own_line() -> None:
    (p,) = problems(HOST + "    colour: blue\n")
    assert p == "fleet.yaml:5:5: hosts[0].colour: unknown key"


def test_duplicate_key_is_refused() -> None:
    (p,) = problems(HOST + "    simulated: false\n")
    assert p.startswith("fleet.yaml:5:5: hosts[0].simulated: duplicate key (first at line 3)")


def test_wrong_type_names_the_field() -> None:
    text = (
        HOST + "models:\n  - {name: m, version: '1', runtime: nim, image: i, gpu_memory_gb: lots}\n"
    )
    (p,) = problems(text)
    assert p.startswith("fleet.yaml:6:")
    assert "models[0].gpu_memory_gb" in p and "number" in p


def test_missing_required_field_points_at_its_mapping() -> None:
    (p,) = problems(
        HOST + "models:\n  - name: m\n    version: '1'\n    runtime: nim\n    gpu_memory_gb: 4\n"
    )
    assert p.startswith("fleet.yaml:6:5: models[0].image: Field required")


def test_duplicate_model_names() -> None:
    model = "  - {name: m, version: '1', runtime: nim, image: i, gpu_memory_gb: 4}\n"
    (p,) = problems(HOST + "models:\n" + model + model)
    assert p.startswith("fleet.yaml:7:")
    assert "duplicate model name 'm'" in p


def test_model_larger_than_every_gpu() -> None:
    (p,) = problems(
        HOST + "models:\n  - {name: big, version: '1', runtime: nim, image: i, gpu_memory_gb: 90}\n"
    )
    assert "models[0].gpu_memory_gb" in p and "needs 90 GB per GPU" in p and "80 GB" in p


def test_tensor_parallel_split_makes_a_big_model_fit() -> None:
    loaded = load_text(
        HOST
        + "models:\n  - {name: big, version: '1', runtime: nim, image: i, gpu_memory_gb: 140, gpus: 2}\n"
    )
    (d,) = deployments(loaded.inventory)
    assert d.memory_per_gpu_gb == 70


def test_selector_that_matches_no_host() -> None:
    (p,) = problems(
        HOST
        + "models:\n  - {name: m, version: '1', runtime: nim, image: i, gpu_memory_gb: 4, hosts: {gpu: a100}}\n"
    )
    assert "models[0].hosts: selector gpu=a100 matches no host" in p


def test_secret_by_value_is_refused() -> None:
    (p,) = problems(
        HOST
        + "models:\n  - name: m\n    version: '1'\n    runtime: nim\n    image: i\n    gpu_memory_gb: 4\n"
        + "    env: {NGC_API_KEY: nvapi-123}\n"
    )
    assert "models[0].env" in p and "by reference" in p
    assert "nvapi-123" not in p


def test_plain_tcp_needs_tls_or_explicit_consent() -> None:
    (p,) = problems(
        "hosts:\n  - {name: h, docker: 'tcp://10.0.0.1:2375', gpus: {count: 1, memory_gb: 8}}\n"
    )
    assert "tls" in p
    load_text(
        "hosts:\n  - {name: h, docker: 'tcp://10.0.0.1:2375', allow_insecure_tcp: true, gpus: {count: 1, memory_gb: 8}}\n"
    )


def test_pin_overrides_and_deployment_names() -> None:
    text = HOST + textwrap.dedent(
        """\
        models:
          - name: chat
            version: v4
            runtime: nim
            image: img:4
            gpu_memory_gb: 40
            sla_ms: 200
            pins:
              - {version: v3, image: img:3, customers: [acme], gpu_memory_gb: 30}
        """
    )
    deps = deployments(load_text(text).inventory)
    assert [(d.name, d.image, d.memory_gb, d.sla_ms) for d in deps] == [
        ("chat@v4", "img:4", 40, 200),
        ("chat@v3", "img:3", 30, 200),
    ]


def test_several_problems_are_all_reported() -> None:
    text = HOST + "    colour: blue\n    shape: round\n"
    assert len(problems(text)) == 2


def test_a_tls_client_certificate_needs_its_key_and_tls_needs_tcp() -> None:
    gpus = "gpus: {count: 1, memory_gb: 8}"
    (p,) = problems(
        f"hosts:\n  - {{name: h, docker: 'tcp://10.0.0.1:2376', tls: {{client_cert: /c.pem}}, {gpus}}}\n"
    )
    assert "client_cert and client_key together" in p
    (p,) = problems(
        f"hosts:\n  - {{name: h, docker: 'ssh://root@10.0.0.1', tls: {{ca_cert: /ca.pem}}, {gpus}}}\n"
    )
    assert "tcp:// endpoints only" in p
    inv = load_text(
        "hosts:\n  - {name: h, docker: 'tcp://10.0.0.1:2376', address: 10.0.0.1, "
        f"tls: {{ca_cert: /ca.pem, client_cert: /c.pem, client_key: /k.pem}}, {gpus}}}\n"
    )
    tls = inv.inventory.hosts[0].tls
    assert tls is not None and tls.client_key == "/k.pem"
