"""`fleetctl report`: figures, SLA conflicts, costs and the JSON shape."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fleetctl.cli import decide_cmds
from fleetctl.cli.render.html import render_html
from fleetctl.core.fleet import Deployment, GpuSpec, HostSpec
from fleetctl.core.plan import per_model
from fleetctl.core.sla import predicted_p95
from fleetctl.decide.conflicts import PER_DEPLOYMENT, pair_findings, sla_findings
from fleetctl.decide.report import HOURS_PER_MONTH, build_report
from fleetctl.ops.planning import plan_inventory

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "inventory" / "fleet.yaml"
H100 = GpuSpec(0, 80, model="H100-80GB")


@pytest.fixture()
def cli() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    decide_cmds.register(app)
    return app


def report_json(cli: typer.Typer, path: Path) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["report", "-f", str(path), "--output", "json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.output)


def dep(name: str, memory: float, sla: float | None = None, **kw: Any) -> Deployment:
    return Deployment(
        model=name, version="1", runtime="triton", image="i:1", memory_gb=memory, sla_ms=sla, **kw
    )


def host(*gpus: GpuSpec, name: str = "h", **labels: str) -> HostSpec:
    return HostSpec(name=name, gpus=tuple(gpus), labels=labels)


# --- the seed -----------------------------------------------------------------------------


def test_seed_figures(cli: typer.Typer) -> None:
    data = report_json(cli, SEED)
    assert data["gpus"] == {"naive": 5, "packed": 2, "lower_bound": 2, "total": 4}
    assert data["models"]["by_runtime"] == {
        "nim": ["chat-llm"],
        "triton": ["embeddings", "reranker", "safety-guard"],
    }
    assert data["models"]["by_framework"]["onnx"] == ["embeddings", "safety-guard"]
    assert data["memory"]["demanded_gb"] == pytest.approx(40 + 40 + 2 + 4 + 1)
    gpu0 = data["gpu_map"][0]
    assert gpu0["used_gb"] == 80 and gpu0["memory_share"] == 1.0
    assert {t["deployment"] for t in gpu0["tenants"]} == {"chat-llm@v4", "chat-llm@v3"}


def test_seed_costs(cli: typer.Typer) -> None:
    costs = report_json(cli, SEED)["costs"]
    month = 2.5 * HOURS_PER_MONTH
    assert costs["gpus_packed_usd_per_month"] == pytest.approx(2 * month)
    assert costs["gpus_naive_usd_per_month"] == pytest.approx(5 * month)
    # chat-llm's two versions share one GPU: one licence packed, two without sharing.
    assert costs["nim_licence"] == {
        "gpus_packed": 1,
        "gpus_naive": 2,
        "packed_usd_per_month": 375.0,
        "naive_usd_per_month": 750.0,
    }
    assert costs["saved_usd_per_month"] == pytest.approx(3 * month + 375)


def test_seed_reports_safety_guard_beside_chat_llm(cli: typer.Typer) -> None:
    """The seed declares safety-guard's measured latency: chat-llm beside it breaks its SLA."""
    data = report_json(cli, SEED)
    found = [
        f
        for f in data["sla_conflicts"]
        if f["deployment"] == "safety-guard@1" and f["beside"] == "chat-llm@v4"
    ]
    assert len(found) == 1
    result = plan_inventory(SEED, None)
    by_name = {
        d.name: d for d in per_model(result.plan).deployments
    }  # members, not their shared server
    expected = predicted_p95(
        by_name["safety-guard@1"], result.plan.hosts[0].gpus[0], [by_name["chat-llm@v4"]]
    )
    assert found[0]["predicted_p95_ms"] == pytest.approx(expected)
    assert found[0]["sla_ms"] == 20


def test_sla_conflict_safety_guard_beside_chat_llm(cli: typer.Typer) -> None:
    data = report_json(cli, SEED)
    messages = [c["message"] for c in data["sla_conflicts"]]
    assert "safety-guard@1 beside chat-llm@v4: predicted 25.0 ms > 20 ms SLA" in messages
    assert "safety-guard@1 beside chat-llm@v3: predicted 25.0 ms > 20 ms SLA" in messages
    conflict = next(c for c in data["sla_conflicts"] if c["beside"] == "chat-llm@v4")
    assert conflict["predicted_p95_ms"] == pytest.approx(25.0)
    assert conflict["gpu"] == "H100-80GB 80 GB"
    # The packing is unchanged: the small models sit together, away from chat-llm.
    assert data["gpus"]["packed"] == 2


def test_json_shape(cli: typer.Typer) -> None:
    data = report_json(cli, SEED)
    assert set(data) >= {
        "inventory",
        "models",
        "deployments",
        "memory",
        "gpus",
        "gpu_map",
        "sla_conflicts",
        "costs",
    }
    for g in data["gpu_map"]:
        assert set(g) == {
            "host",
            "index",
            "model",
            "capacity_gb",
            "used_gb",
            "memory_share",
            "compute_share",
            "tenants",
        }
        for t in g["tenants"]:
            assert {
                "deployment",
                "replica",
                "memory_gb",
                "util",
                "sla_ms",
                "predicted_p95_ms",
            } <= set(t)
    for f in data["sla_conflicts"] + data["sla_at_limit"]:
        assert set(f) == {"deployment", "beside", "predicted_p95_ms", "sla_ms", "gpu", "message"}
    assert {d["name"] for d in data["deployments"]} == {
        "chat-llm@v4",
        "chat-llm@v3",
        "embeddings@1",
        "reranker@1",
        "safety-guard@1",
    }


def test_table_and_html_written(tmp_path: Path, cli: typer.Typer) -> None:
    out = tmp_path / "sub" / "report.html"
    result = CliRunner().invoke(
        cli, ["report", "-f", str(SEED), "--html", str(out)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert "2 after packing" in result.output and "5 with one GPU per replica" in result.output
    page = out.read_text()
    assert page.count('class="gpu-bar"') == 4
    # Self-contained: nothing to fetch.
    for needle in ("<script", "<link", "src=", "http://", "https://", "@import"):
        assert needle not in page


def test_no_nim_no_licence_line(tmp_path: Path, cli: typer.Typer) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "hosts:\n  - {name: h1, simulated: true, gpus: {count: 2, memory_gb: 24}}\n"
        "models:\n  - {name: a, version: '1', runtime: triton, image: 'i:1', gpu_memory_gb: 8,\n"
        "     triton: {model_repository: /m}}\n"
    )
    costs = report_json(cli, path)["costs"]
    assert costs["nim_licence"] is None
    assert costs["total_packed_usd_per_month"] == pytest.approx(2.5 * HOURS_PER_MONTH)


LICENCE_FLEET = """hosts:
  - {name: h1, simulated: true, gpus: {count: 4, memory_gb: 80}}
models:
  - {name: llm, version: '1', runtime: nim, image: 'i:1', gpu_memory_gb: 60, replicas: 2,
     origin: catalog, api: openai}
  - {name: emb, version: '1', runtime: nim, image: 'i:1', gpu_memory_gb: 10, replicas: 2}
  - {name: rank, version: '1', runtime: triton, image: 'i:1', gpu_memory_gb: 10, replicas: 2,
     triton: {model_repository: /m}}
  - {name: solo, version: '1', runtime: nim, image: 'i:1', gpu_memory_gb: 30, exclusive: true}
costs: {nim_license_per_gpu_year_usd: 6000}
"""


def test_advise_and_report_price_licences_alike(tmp_path: Path, cli: typer.Typer) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(LICENCE_FLEET)
    report = report_json(cli, path)
    result = CliRunner().invoke(cli, ["advise", "-f", str(path), "--output", "json"])
    assert result.exit_code == 0, (result.output, result.exception)
    advice = {m["model"]: m for m in json.loads(result.output)["models"]}
    licence = report["costs"]["nim_licence"]
    nim_models = report["models"]["by_runtime"]["nim"]
    assert sorted(nim_models) == ["emb", "llm", "solo"]
    # Every GPU with a NIM tenant is licensed once; the NIM models' advice adds up to them.
    held = sum(advice[m]["pricing"]["gpus"] for m in nim_models)
    nim_gpus = {
        (g["host"], g["index"])
        for g in report["gpu_map"]
        if any(t["runtime"] == "nim" for t in g["tenants"])
    }
    assert licence["gpus_packed"] == len(nim_gpus) == pytest.approx(held)
    yearly = sum(advice[m]["pricing"]["licence_per_year_usd"] for m in nim_models)
    assert licence["packed_usd_per_month"] == pytest.approx(yearly / 12)
    assert licence["packed_usd_per_month"] == pytest.approx(len(nim_gpus) * 6000 / 12)


# --- the pairwise method --------------------------------------------------------------------


def test_pair_that_does_not_fit_by_memory_is_no_sla_conflict() -> None:
    big, small = dep("big", 70, 100, latency_ms=90), dep("small", 20, 20, latency_ms=15)
    assert pair_findings(big, small, [host(H100)]) == ([], [])


def test_pair_conflict_both_ways() -> None:
    a, b = dep("a", 40, 20, latency_ms=15), dep("b", 40, 20, latency_ms=15)
    conflicts, _ = pair_findings(a, b, [host(H100)])
    assert [(c.deployment, c.beside) for c in conflicts] == [("a@1", "b@1"), ("b@1", "a@1")]
    assert conflicts[0].predicted_p95_ms == pytest.approx(30.0)


def test_most_favourable_gpu_decides() -> None:
    # On an 80 GB GPU b takes half the compute (memory share): a breaks. On a 160 GB GPU
    # b takes a quarter: a fits. The pair can share, on the larger GPU.
    a, b = dep("a", 4, 20, latency_ms=12.5), dep("b", 40)
    assert pair_findings(a, b, [host(H100)])[0]
    assert pair_findings(a, b, [host(H100), host(GpuSpec(0, 160), name="big")]) == ([], [])


def test_exclusive_and_selectors_are_not_sla_decisions() -> None:
    a, b = dep("a", 40, 20, latency_ms=15), dep("b", 40, 20, latency_ms=15)
    excl = dep("b", 40, 20, latency_ms=15, exclusive=True)
    assert pair_findings(a, excl, [host(H100)]) == ([], [])
    apart = dep("b", 40, 20, latency_ms=15, selector={"zone": "b"})
    assert pair_findings(a, apart, [host(H100, zone="a")]) == ([], [])
    assert pair_findings(a, b, [host(H100, zone="a")])[0]


def test_zero_replicas_are_skipped() -> None:
    a, b = dep("a", 40, 20, latency_ms=15), dep("b", 40, 20, latency_ms=15, replicas=0)
    assert sla_findings([a, b], [host(H100)]).conflicts == ()


def test_html_escapes_names(tmp_path: Path) -> None:
    result = plan_inventory(SEED, None)
    page = render_html(build_report(result.loaded.inventory, result.plan, "<odd & path>"))
    assert "&lt;odd &amp; path&gt;" in page and "<odd & path>" not in page


def every_pair(deps: list[Deployment], hosts: list[HostSpec]) -> tuple[set[str], set[str]]:
    """What judging every pair finds: the messages of conflicts and at-the-limit findings."""
    conflicts, at_limit = set(), set()
    live = [d for d in deps if d.replicas > 0]
    for i, a in enumerate(live):
        for b in live[i + 1 :]:
            c, lim = pair_findings(a, b, hosts)
            conflicts |= {f.message() for f in c}
            at_limit |= {f.message() for f in lim}
    return conflicts, at_limit


DEPLOYMENTS = st.lists(
    st.tuples(
        st.floats(1, 70),  # memory
        st.one_of(st.none(), st.floats(5, 100)),  # SLA
        st.floats(0.1, 1.0),  # latency alone, as a share of the SLA
        st.one_of(st.none(), st.floats(0.05, 0.9)),  # declared util
        st.booleans(),  # exclusive
        st.sampled_from([{}, {}, {"zone": "a"}]),
    ),
    min_size=2,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(DEPLOYMENTS)
def test_findings_are_what_judging_every_pair_finds(specs: list[tuple[Any, ...]]) -> None:
    """One kind of GPU: every finding is a pair's, and where no deployment has more than
    PER_DEPLOYMENT findings, none is missed."""
    deps = [
        dep(
            f"d{i}",
            round(memory, 1),
            None if sla is None else round(sla, 1),
            latency_ms=None if sla is None else round(share * sla, 2),
            gpu_util=util,
            exclusive=excl,
            selector=sel,
        )
        for i, (memory, sla, share, util, excl, sel) in enumerate(specs)
    ]
    hosts = [host(H100, GpuSpec(1, 80, model="H100-80GB"), name="a", zone="a"), host(H100)]
    found = sla_findings(deps, hosts)
    conflicts, at_limit = every_pair(deps, hosts)
    got_c = {f.message() for f in found.conflicts}
    got_l = {f.message() for f in found.at_limit}
    assert got_c <= conflicts and got_l <= at_limit
    per: dict[str, int] = {}
    for f in [*conflicts, *at_limit]:
        per[f.split(" beside ")[0]] = per.get(f.split(" beside ")[0], 0) + 1
    if all(n <= PER_DEPLOYMENT for n in per.values()):
        assert got_c == conflicts and got_l == at_limit


def test_html_escapes_a_script_in_a_model_name(tmp_path: Path) -> None:
    """A name with markup in it stays text: the template autoescapes every value."""
    result = plan_inventory(SEED, None)
    report = build_report(result.loaded.inventory, result.plan, str(SEED))
    evil = "<script>alert(1)</script>"
    rows = tuple(replace(d, name=evil + d.name) for d in report.deployments)
    gpus = tuple(
        replace(g, tenants=tuple(replace(t, deployment=evil + t.deployment) for t in g.tenants))
        for g in report.gpu_rows
    )
    page = render_html(replace(report, deployments=rows, gpu_rows=gpus, by_runtime={evil: (evil,)}))
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;chat-llm@v3" in page
    assert page.count('class="seg"') == 5
