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
from fleetctl.decide.holdings import Holding, holdings
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
    return advise_model(m, weights or Weights(), Costs(), Holding("m"))


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


# --- pricing ------------------------------------------------------------------------------


PRICING_MODELS = """  - {name: llm, version: '1', runtime: nim, image: 'i:1', gpu_memory_gb: 60, replicas: 2}
  - {name: emb, version: '1', runtime: triton, image: 'i:1', gpu_memory_gb: 20,
     triton: {model_repository: /srv/models}}
"""
PRICING_COSTS = (
    "costs: {gpu_hour_usd: 2, nim_license_per_gpu_year_usd: 10000, engineer_week_usd: 1000}\n"
)


def test_gpu_holdings_count_shared_gpus_by_memory_share(tmp_path: Path) -> None:
    plan = plan_inventory(write_inventory(tmp_path, PRICING_MODELS, PRICING_COSTS), None).plan
    held = holdings(plan)
    # Two llm replicas never share a GPU; emb (20 GB) joins one of them (60 + 20 = 80 GB).
    assert plan.summary.gpus_used == 2
    assert held["llm"].gpus == pytest.approx(1 + 60 / 80)
    assert held["emb"].gpus == pytest.approx(20 / 80)
    assert sum(h.gpus for h in held.values()) == pytest.approx(plan.summary.gpus_used)


def test_pricing_arithmetic(tmp_path: Path, cli: typer.Typer) -> None:
    data = run_json(cli, "-f", str(write_inventory(tmp_path, PRICING_MODELS, PRICING_COSTS)))
    weeks = WEEKS_TO_PRODUCTION["triton"] - WEEKS_TO_PRODUCTION["nim"]

    llm = by_model(data, "llm")["pricing"]
    assert llm["alternative"] == "triton"
    assert llm["gpus"] == pytest.approx(1.75)
    assert llm["licence_per_year_usd"] == pytest.approx(1.75 * 10000)
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
