"""The command line as a user meets it: output formats, saved plans, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fleetctl.core.inventory import Inventory

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "inventory" / "fleet.yaml"


def fleetctl(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run([sys.executable, "-m", "fleetctl", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_plan_json_is_only_json_with_placements_actions_and_summary() -> None:
    r = fleetctl("plan", "--offline", "-f", str(SEED), "--output", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["summary"]["gpus_used"] == 2
    assert data["summary"]["gpus_naive"] == 5
    assert data["summary"]["gpus_lower_bound"] == 2
    assert len(data["placements"]) == 5
    assert {p["host"] for p in data["placements"]} == {"gpu-host-1"}
    assert {a["kind"] for a in data["actions"]} == {"create"}


def test_plan_table_shows_the_gpu_map_actions_and_summary() -> None:
    r = fleetctl("plan", "--offline", "-f", str(SEED))
    assert r.returncode == 0, r.stderr
    assert "GPU map" in r.stdout and "Actions" in r.stdout
    assert "GPUs used 2 of 4 (lower bound 2, one GPU per replica 5)" in r.stdout


def test_detailed_exitcode_signals_pending_changes() -> None:
    r = fleetctl("plan", "--offline", "-f", str(SEED), "--detailed-exitcode", "--output", "json")
    assert r.returncode == 5


def test_explain_says_why_not_beside_the_chat_model() -> None:
    r = fleetctl("plan", "--offline", "-f", str(SEED), "--explain", "safety-guard")
    assert r.returncode == 0, r.stderr
    assert "safety-guard@1" in r.stdout
    assert "chat-llm" in r.stdout
    j = fleetctl("plan", "--offline", "-f", str(SEED), "--explain", "safety-guard", "--output", "json")
    assert json.loads(j.stdout)["explain"]


def test_explain_unknown_name_is_a_clear_error() -> None:
    r = fleetctl("plan", "--offline", "-f", str(SEED), "--explain", "nope")
    assert r.returncode == 12
    assert "no deployment or model named 'nope'" in r.stderr


def test_saved_plan_file(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    r = fleetctl("plan", "--offline", "-f", str(SEED), "-o", str(out), "--output", "json")
    assert r.returncode == 0
    doc = json.loads(out.read_text())
    assert doc["format"] == "fleetctl-plan/1" and doc["plan"]["summary"]["gpus_used"] == 2


def test_invalid_inventory_one_line_per_problem_and_exit_3(tmp_path: Path) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text("hosts:\n  - name: h\n    gpus: {count: 1, memory_gb: 8}\n    colour: red\n")
    r = fleetctl("validate", "-f", str(bad))
    assert r.returncode == 3
    assert r.stderr.strip() == f"error: {bad}:4:5: hosts[0].colour: unknown key"
    assert "Traceback" not in r.stderr


def test_infeasible_plan_exits_4_with_the_reason(tmp_path: Path) -> None:
    inv = tmp_path / "fleet.yaml"
    inv.write_text(
        "hosts:\n  - {name: h, simulated: true, gpus: {count: 1, memory_gb: 80}}\n"
        "models:\n"
        "  - {name: a, version: '1', runtime: nim, image: i, gpu_memory_gb: 60}\n"
        "  - {name: b, version: '1', runtime: nim, image: i, gpu_memory_gb: 60}\n"
    )
    r = fleetctl("plan", "--offline", "-f", str(inv))
    assert r.returncode == 4
    assert "cannot place" in r.stdout


def test_usage_error_exits_2() -> None:
    assert fleetctl("plan", "--no-such-option").returncode == 2


def test_committed_schema_matches_the_inventory_model(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert fleetctl("schema", "-o", str(out)).returncode == 0
    assert json.loads(out.read_text()) == json.loads((REPO / "inventory" / "fleet.schema.json").read_text())
    assert json.loads(out.read_text())["properties"].keys() == Inventory.model_json_schema()["properties"].keys()


def test_every_inventory_in_the_repository_validates() -> None:
    for path in sorted((REPO / "inventory").glob("*.yaml")):
        r = fleetctl("validate", "-f", str(path), "--output", "json")
        assert r.returncode == 0, (path, r.stderr)
        assert json.loads(r.stdout)["valid"] is True


def test_gpus_auto_cannot_be_planned_offline(tmp_path: Path) -> None:
    inv = tmp_path / "fleet.yaml"
    inv.write_text("hosts:\n  - {name: h}\nmodels:\n  - {name: a, version: '1', runtime: nim, image: i, gpu_memory_gb: 8}\n")
    r = fleetctl("plan", "--offline", "-f", str(inv))
    assert r.returncode == 1
    assert "gpus: auto" in r.stderr and "NVML" in r.stderr and "Traceback" not in r.stderr
