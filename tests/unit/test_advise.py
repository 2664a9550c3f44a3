"""`fleetctl advise`: scoring, weights, the facts that override it, and NIM pricing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from fleetctl.cli import decide_cmds
from fleetctl.core.inventory import Costs, Model
from fleetctl.decide.advise import (
    BUILD_CUSTOM_QUANTIZATION_BONUS,
    BUILD_CUSTOM_TOPOLOGY_BONUS,
    NIM_STOCK_OPENAI_BONUS,
    WEEKS_TO_PRODUCTION,
    Advice,
    advise_model,
)
from fleetctl.decide.holdings import Holding, holdings, licensed_gpus
from fleetctl.decide.weights import Weights, parse_weights
from fleetctl.errors import ExitCode, FleetctlError, NotFoundError
from fleetctl.ops.planning import plan_inventory

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "inventory" / "fleet.yaml"

HOST = """hosts:
  - name: h1
    simulated: true
    gpus: {count: 4, memory_gb: 80, model: H100-80GB}
"""


@pytest.fixture()
def cli() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    decide_cmds.register(app)
    return app


def run_json(cli: typer.Typer, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["advise", *args, "--output", "json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.output)


def by_model(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in data["models"] if m["model"] == name)


def model(**facts: Any) -> Model:
    base: dict[str, Any] = {
        "name": "m",
        "version": "1",
        "runtime": "triton",
        "image": "img:1",
        "gpu_memory_gb": 10,
    }
    return Model(**{**base, **facts})


def advise(m: Model, weights: Weights | None = None) -> Advice:
    return advise_model(m, weights or Weights(), Costs.model_validate({}), Holding("m"))


def option(a: Advice, name: str) -> Any:
    return next(s for s in a.ranking if s.option == name)


def write_inventory(tmp_path: Path, models: str, extra: str = "") -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(HOST + "models:\n" + models + extra)
    return path


# --- the arithmetic -------------------------------------------------------------------


def test_default_weights_rank_nim_first_for_the_stock_catalog_model(cli: typer.Typer) -> None:
    data = run_json(cli, "-f", str(SEED))
    chat = by_model(data, "chat-llm")
    assert data["weights"] == {"control": 1, "time_to_prod": 3, "eng_cost": 2, "lock_in_freedom": 1}
    assert chat["winner"] == "nim"
    assert [r["option"] for r in chat["ranking"]] == ["nim", "triton", "build"]
    # Baseline: nim 2+15+10+2 = 29, triton 4+9+6+4 = 23, build 5+3+2+5 = 15 over total 7.
    weighted = {r["option"]: r["weighted"] for r in chat["ranking"]}
    assert weighted == {"nim": 29, "triton": 23, "build": 15}
    nim = chat["ranking"][0]
    assert nim["score"] == pytest.approx(29 + NIM_STOCK_OPENAI_BONUS * 7)
    assert nim["normalised"] == pytest.approx((29 + NIM_STOCK_OPENAI_BONUS * 7) / 7, abs=1e-4)


def test_lock_in_freedom_weighted_high_demotes_nim(cli: typer.Typer) -> None:
    data = run_json(cli, "-f", str(SEED), "--weights", "lock_in_freedom=10")
    chat = by_model(data, "chat-llm")
    assert data["weights"]["lock_in_freedom"] == 10
    assert data["weights_source"] == "--weights"
    assert chat["winner"] != "nim"
    assert chat["ranking"][-1]["option"] == "nim"


def test_option_overrides_inventory_weights(tmp_path: Path, cli: typer.Typer) -> None:
    m = "  - {name: chat, version: '1', runtime: nim, image: 'i:1', gpu_memory_gb: 10}\n"
    path = write_inventory(tmp_path, m, "team:\n  weights: {lock_in_freedom: 10}\n")
    assert by_model(run_json(cli, "-f", str(path)), "chat")["winner"] != "nim"
    data = run_json(cli, "-f", str(path), "--weights", "lock_in_freedom=1")
    assert by_model(data, "chat")["winner"] == "nim"
    # Dimensions not named keep the inventory's figures.
    assert data["weights"] == {"control": 1, "time_to_prod": 3, "eng_cost": 2, "lock_in_freedom": 1}


def test_scaling_all_weights_keeps_scores_normalised() -> None:
    one = advise(model(origin="catalog"), Weights(1, 3, 2, 1))
    ten = advise(model(origin="catalog"), Weights(10, 30, 20, 10))
    assert [s.option for s in one.ranking] == [s.option for s in ten.ranking]
    for a, b in zip(one.ranking, ten.ranking):
        assert a.normalised == pytest.approx(b.normalised)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("control", "is not NAME=NUMBER"),
        ("speed=3", "unknown dimension 'speed'"),
        ("control=high", "is not a number"),
        ("control=-1", "must be a finite number >= 0"),
        ("control=1,control=2", "given twice"),
        ("control=1,,eng_cost=2", "empty item"),
        ("control=0,time_to_prod=0,eng_cost=0,lock_in_freedom=0", "add up to 0"),
        ("  ", "no weights given"),
    ],
)
def test_malformed_weights_are_a_clear_error(text: str, fragment: str) -> None:
    with pytest.raises(FleetctlError) as info:
        parse_weights(text, Weights())
    assert fragment in info.value.message
    assert "--weights" in info.value.message
    assert info.value.exit_code == ExitCode.USAGE


def test_malformed_weights_on_the_command_line(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["advise", "-f", str(SEED), "--weights", "control=lots"])
    assert isinstance(result.exception, FleetctlError)
    assert "control='lots' is not a number" in result.exception.message


# --- facts that override the arithmetic --------------------------------------------------


def test_custom_origin_puts_nim_out() -> None:
    a = advise(model(origin="custom", custom_quantization=False), Weights(0, 10, 10, 0))
    assert option(a, "nim").excluded
    assert a.winner != "nim"  # even with weights that favour NIM's strengths
    assert a.ranking[-1].option == "nim"
    assert any("NIM out: origin custom" in r for r in a.reasons())
    assert a.pricing is None


def test_portability_puts_nim_out() -> None:
    a = advise(model(origin="catalog", portability_required=True))
    assert option(a, "nim").excluded
    assert a.winner != "nim"
    assert any("NIM out: portability_required" in r for r in a.reasons())
    # The stock-model bonus is moot once NIM is out, and is not shown.
    assert not any(r.startswith("NIM +") for r in a.reasons())


def test_lora_on_a_catalog_base_can_still_be_a_nim() -> None:
    a = advise(model(origin="lora", base_model="llama-3.1-8b-instruct"))
    assert not option(a, "nim").excluded
    assert a.winner == "nim"
    assert any("NIM still possible" in r and "llama-3.1-8b-instruct" in r for r in a.reasons())
    # A LoRA is not a stock model: no stock bonus.
    assert option(a, "nim").bonus == 0


def test_stock_openai_model_gives_nim_a_bonus() -> None:
    stock = advise(model(origin="catalog", api="openai"))
    custom_api = advise(model(origin="catalog", api="custom"))
    total = Weights().total
    assert option(stock, "nim").bonus == pytest.approx(NIM_STOCK_OPENAI_BONUS * total)
    assert option(custom_api, "nim").bonus == 0
    assert any(r.startswith(f"NIM +{NIM_STOCK_OPENAI_BONUS:g}") for r in stock.reasons())
    assert not any(r.startswith("NIM +") for r in custom_api.reasons())


@pytest.mark.parametrize(
    "fact, bonus, word",
    [
        ("custom_quantization", BUILD_CUSTOM_QUANTIZATION_BONUS, "custom_quantization"),
        ("custom_topology", BUILD_CUSTOM_TOPOLOGY_BONUS, "custom_topology"),
    ],
)
def test_custom_quantization_or_topology_favours_building(
    fact: str, bonus: float, word: str
) -> None:
    plain = advise(model(origin="custom"))
    a = advise(model(origin="custom", **{fact: True}))
    total = Weights().total
    assert option(a, "build").score - option(plain, "build").score == pytest.approx(bonus * total)
    assert any(r.startswith("build +") and word in r for r in a.reasons())


def test_both_build_facts_stack_and_can_make_build_win() -> None:
    a = advise(
        model(origin="custom", custom_quantization=True, custom_topology=True), Weights(3, 1, 1, 3)
    )
    assert a.winner == "build"
    bonus = (BUILD_CUSTOM_QUANTIZATION_BONUS + BUILD_CUSTOM_TOPOLOGY_BONUS) * Weights(
        3, 1, 1, 3
    ).total
    assert option(a, "build").bonus == pytest.approx(bonus)


def test_unstated_origin_and_api_are_unknown_no_bonus_no_exclusion() -> None:
    m = model()
    assert (m.origin, m.api) == ("unknown", "unknown")
    a = advise(m)
    assert a.facts["origin"] == "unknown" and a.facts["api"] == "unknown"
    assert a.adjustments == ()
    assert not any(s.excluded for s in a.ranking)
    assert all(s.bonus == 0 for s in a.ranking)
    assert option(a, "nim").score == option(a, "nim").weighted


def test_advise_says_what_each_value_of_an_unknown_fact_would_do() -> None:
    a = advise(model())
    assert [f.fact for f in a.open_facts] == ["origin", "api"]
    origin, api = a.open_facts
    assert origin.reason() == (
        "origin unknown: catalog would add NIM's +0.5 bonus with api openai, "
        "lora would change nothing, custom would rule NIM out and make Triton the winner"
    )
    assert api.reason() == (
        "api unknown: openai would add NIM's +0.5 bonus with origin catalog, "
        "custom would change nothing"
    )
    # NIM wins either way on the default weights, unless origin custom rules it out.
    assert origin.decides and not api.decides
    assert [o.winners for o in origin.outcomes] == [("nim",), ("nim",), ("triton",)]
    assert origin.reason() in a.reasons() and api.reason() in a.reasons()


def test_an_unknown_fact_that_would_flip_the_winner_is_said_to_decide() -> None:
    # nim 35, triton 35, build 30 of 10: the tie goes to Triton, NIM's bonus breaks it.
    w = Weights(1, 3, 2, 4)
    a = advise(model(origin="catalog"), w)
    assert a.winner == "triton"
    (api,) = a.open_facts
    assert api.decides
    assert api.reason() == (
        "api unknown: openai would add NIM's +0.5 bonus and make NIM the winner, "
        "custom would change nothing"
    )
    stated = advise(model(origin="catalog", api="openai"), w)
    assert stated.winner == "nim" and stated.open_facts == ()


def test_an_unknown_fact_that_changes_nothing_is_not_a_reason() -> None:
    # NIM is out whatever the API: the open fact is in the JSON, not among the reasons.
    a = advise(model(origin="custom"))
    (api,) = a.open_facts
    assert not api.matters and not api.decides
    assert not any(r.startswith("api unknown") for r in a.reasons())


def test_open_facts_in_json(tmp_path: Path, cli: typer.Typer) -> None:
    m = "  - {name: chat, version: '1', runtime: nim, image: 'i:1', gpu_memory_gb: 10}\n"
    chat = by_model(run_json(cli, "-f", str(write_inventory(tmp_path, m))), "chat")
    assert chat["facts"]["origin"] == "unknown" and chat["facts"]["api"] == "unknown"
    assert chat["ranking"][0]["bonus"] == 0
    origin = next(f for f in chat["open_facts"] if f["fact"] == "origin")
    assert origin["decides"] is True
    custom = next(o for o in origin["outcomes"] if o["value"] == "custom")
    assert custom == {
        "value": "custom",
        "effect": "would rule NIM out and make Triton the winner",
        "winners": ["triton"],
        "changes": True,
        "decides": True,
    }
    assert origin["reason"] in chat["reasons"]


# --- pricing ------------------------------------------------------------------------------


PRICING_MODELS = """  - {name: llm, version: '1', runtime: nim, image: 'i:1', gpu_memory_gb: 60, replicas: 2}
  - {name: emb, version: '1', runtime: triton, image: 'i:1', gpu_memory_gb: 20,
     triton: {model_repository: /srv/models}}
"""
PRICING_COSTS = (
    "costs: {gpu_hour_usd: 2, nim_license_per_gpu_year_usd: 10000, engineer_week_usd: 1000}\n"
)


def test_a_gpu_with_a_nim_tenant_needs_one_whole_licence(tmp_path: Path) -> None:
    plan = plan_inventory(write_inventory(tmp_path, PRICING_MODELS, PRICING_COSTS), None).plan
    held = holdings(plan)
    # Two llm replicas never share a GPU; emb (20 GB) joins one of them (60 + 20 = 80 GB).
    assert plan.summary.gpus_used == 2
    # llm is the only NIM on both GPUs: it carries both licences, emb beside it or not.
    assert held["llm"].gpus == pytest.approx(2.0)
    # emb as a NIM would share the licence of llm's GPU by memory: 20 of 60 + 20 GB.
    assert held["emb"].gpus == pytest.approx(20 / 80)
    assert licensed_gpus(plan) == 2


def test_nim_tenants_of_one_gpu_split_its_licence_by_memory(tmp_path: Path) -> None:
    models = """  - {name: big, version: '1', runtime: nim, image: 'i:1', gpu_memory_gb: 60}
  - {name: small, version: '1', runtime: nim, image: 'i:1', gpu_memory_gb: 20}
  - {name: tiny, version: '1', runtime: triton, image: 'i:1', gpu_memory_gb: 10,
     exclusive: true, triton: {model_repository: /srv/models}}
"""
    path = tmp_path / "fleet.yaml"
    host = "hosts:\n  - {name: h1, simulated: true, gpus: {count: 2, memory_gb: 80}}\n"
    path.write_text(host + "models:\n" + models)
    plan = plan_inventory(path, None).plan
    assert plan.summary.gpus_used == 2
    held = holdings(plan)
    assert held["big"].gpus == pytest.approx(60 / 80)
    assert held["small"].gpus == pytest.approx(20 / 80)
    # tiny is alone on its GPU: as a NIM it would need that GPU's licence whole.
    assert held["tiny"].gpus == pytest.approx(1.0)
    assert licensed_gpus(plan) == 1


def test_pricing_arithmetic(tmp_path: Path, cli: typer.Typer) -> None:
    data = run_json(cli, "-f", str(write_inventory(tmp_path, PRICING_MODELS, PRICING_COSTS)))
    weeks = WEEKS_TO_PRODUCTION["triton"] - WEEKS_TO_PRODUCTION["nim"]

    llm = by_model(data, "llm")["pricing"]
    assert llm["alternative"] == "triton"
    assert llm["gpus"] == pytest.approx(2.0)
    assert llm["licence_per_year_usd"] == pytest.approx(2 * 10000)
    assert llm["weeks_saved"] == weeks
    assert llm["engineering_saved_usd"] == pytest.approx(weeks * 1000)
    assert llm["larger"] == "licence"
    assert any("the licence is larger" in r for r in by_model(data, "llm")["reasons"])

    emb = by_model(data, "emb")["pricing"]
    assert emb["licence_per_year_usd"] == pytest.approx(0.25 * 10000)
    assert emb["larger"] == "engineering"
    assert any("the engineering saved is larger" in r for r in by_model(data, "emb")["reasons"])


def test_no_pricing_where_nim_is_out(tmp_path: Path, cli: typer.Typer) -> None:
    data = run_json(cli, "-f", str(SEED))
    assert by_model(data, "reranker")["pricing"] is None
    assert by_model(data, "chat-llm")["pricing"]["gpus"] == pytest.approx(1.0)
    # Its two versions share one GPU: one licence, not two shares of "shared" GPUs.
    assert by_model(data, "chat-llm")["pricing"]["gpu_note"] == "1 GPU licence whole"


# --- the command ----------------------------------------------------------------------


def test_table_lists_every_model_with_winner(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["advise", "-f", str(SEED)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("chat-llm", "embeddings", "reranker", "safety-guard"):
        assert name in result.output
    assert "NIM out: origin custom" in result.output


def test_one_model_step_by_step(cli: typer.Typer) -> None:
    result = CliRunner().invoke(
        cli, ["advise", "chat-llm", "-f", str(SEED)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    out = result.output
    for step in (
        "1. Baseline score x weight",
        "2. Facts",
        "3. Scores",
        "4. Pricing NIM",
        "5. Winner: NIM",
    ):
        assert step in out
    assert "5 x 3 = 15" in out  # nim's time_to_prod, baseline x weight
    assert "$4,500/year" in out


def test_one_model_json(cli: typer.Typer) -> None:
    data = run_json(cli, "reranker", "-f", str(SEED))
    assert [m["model"] for m in data["models"]] == ["reranker"]
    assert data["model"]["winner"] == "triton"


def test_unknown_model_is_not_found(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["advise", "no-such-model", "-f", str(SEED)])
    assert isinstance(result.exception, NotFoundError)
    assert "no-such-model" in result.exception.message
    assert result.exception.exit_code == ExitCode.NOT_FOUND
