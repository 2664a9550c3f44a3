"""The command line as a user meets it: output formats, saved plans, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fleetctl.core.inventory import Inventory

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "inventory" / "fleet.yaml"


def fleetctl(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run(
        [sys.executable, "-m", "fleetctl", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_plan_json_is_only_json_with_placements_actions_and_summary() -> None:
    r = fleetctl("plan", "--offline", "-f", str(SEED), "--output", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["summary"]["gpus_used"] == 2
    assert data["summary"]["gpus_naive"] == 5
    assert data["summary"]["gpus_lower_bound"] == 2
    # chat-llm's two versions, and one Triton server for the three Triton models.
    assert len(data["placements"]) == 3
    (server,) = data["triton_servers"]
    assert data["triton_servers"][server] == ["embeddings@1", "reranker@1", "safety-guard@1"]
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
    j = fleetctl(
        "plan", "--offline", "-f", str(SEED), "--explain", "safety-guard", "--output", "json"
    )
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
    assert json.loads(out.read_text()) == json.loads(
        (REPO / "inventory" / "fleet.schema.json").read_text()
    )
    assert (
        json.loads(out.read_text())["properties"].keys()
        == Inventory.model_json_schema()["properties"].keys()
    )


def test_every_inventory_in_the_repository_validates() -> None:
    for path in sorted((REPO / "inventory").glob("*.yaml")):
        r = fleetctl("validate", "-f", str(path), "--output", "json")
        assert r.returncode == 0, (path, r.stderr)
        assert json.loads(r.stdout)["valid"] is True


def test_gpus_auto_cannot_be_planned_offline(tmp_path: Path) -> None:
    inv = tmp_path / "fleet.yaml"
    inv.write_text(
        "hosts:\n  - {name: h}\nmodels:\n  - {name: a, version: '1', runtime: nim, image: i, gpu_memory_gb: 8}\n"
    )
    r = fleetctl("plan", "--offline", "-f", str(inv))
    assert r.returncode == 1
    assert "gpus: auto" in r.stderr and "NVML" in r.stderr and "Traceback" not in r.stderr


# -- rollback, holds, release, pins, history ----------------------------------------


def _seed_state(db: Any, *, hold_at: str | None = "v3", inventory_version: str = "v4") -> None:
    """A state as a few applies and a rollback of the seed fleet would leave it."""
    from dataclasses import asdict

    from fleetctl.core.resolve import deployments
    from fleetctl.runtimes.inventory import load
    from fleetctl.state.store import StateStore

    v3 = next(d for d in deployments(load(SEED).inventory) if d.name == "chat-llm@v3")
    spec = {**asdict(v3), "selector": dict(v3.selector), "customers": list(v3.customers)}
    with StateStore(db) as store:
        rid = store.begin_rollout("apply", str(SEED), "d", {"actions": []})
        common = dict(
            deployment="chat-llm@v3",
            model="chat-llm",
            version="v3",
            image=v3.image,
            image_digest=None,
            placement=[],
        )
        store.record_revision(
            **common, spec_hash="h1", spec=spec, outcome="applied", rollout_id=rid
        )
        store.record_step(
            rid,
            deployment="chat-llm@v3",
            replica=0,
            host="gpu-host-1",
            action="recreate",
            container="c",
            outcome="failed",
            detail="not ready after 120 s: GET /v1/health/ready answered 503",
            log_tail="loading engine\nCUDA out of memory\n",
        )
        store.record_revision(**common, spec_hash="h2", spec=spec, outcome="failed", rollout_id=rid)
        store.finish_rollout(rid, "failed", "0 ok, 1 failed")
        if hold_at:
            store.set_hold(
                model="chat-llm",
                version=hold_at,
                revision=1,
                spec=spec,
                inventory_version=inventory_version,
                rollout_id=rid,
                command=f"rollback chat-llm@{hold_at}",
            )


def test_plan_honours_a_hold_from_the_state_offline_too(
    tmp_path: Path, state_location: Any
) -> None:
    db = state_location  # on SQLite, then on PostgreSQL
    _seed_state(db)
    data = json.loads(
        fleetctl(
            "plan", "--offline", "-f", str(SEED), "--state", str(db), "--output", "json"
        ).stdout
    )
    (note,) = data["notes"]
    assert (
        note.startswith("chat-llm held at v3 (revision 1) by rollback at ")
        and "the inventory asks v4" in note
    )
    placed = {p["deployment"] for p in data["placements"]}
    assert "chat-llm@v4" not in placed and "chat-llm@v3" in placed
    table = fleetctl("plan", "--offline", "-f", str(SEED), "--state", str(db))
    assert (
        "note: chat-llm held at v3" in table.stdout and "fleetctl release chat-llm" in table.stdout
    )
    # Without the state, the inventory alone decides.
    plain = json.loads(
        fleetctl(
            "plan",
            "--offline",
            "-f",
            str(SEED),
            "--state",
            str(tmp_path / "none.db"),
            "--output",
            "json",
        ).stdout
    )
    assert plain["notes"] == [] and "chat-llm@v4" in {p["deployment"] for p in plain["placements"]}
    assert not (tmp_path / "none.db").exists()  # reading holds creates no state file


def test_a_hold_the_inventory_moved_past_is_lifted_in_the_plan(
    tmp_path: Path, state_location: Any
) -> None:
    db = state_location  # on SQLite, then on PostgreSQL
    _seed_state(db, inventory_version="v2")
    data = json.loads(
        fleetctl(
            "plan", "--offline", "-f", str(SEED), "--state", str(db), "--output", "json"
        ).stdout
    )
    assert data["notes"] == [
        "hold on chat-llm lifted: the inventory now asks v4 (the hold was at v3)"
    ]
    assert "chat-llm@v4" in {p["deployment"] for p in data["placements"]}


def test_release_deletes_the_hold_and_says_what_the_next_apply_does(
    tmp_path: Path, state_location: Any
) -> None:
    db = state_location  # on SQLite, then on PostgreSQL
    _seed_state(db)
    r = fleetctl("release", "chat-llm", "-f", str(SEED), "--state", str(db), "--output", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (
        out["released"]["deployment"] == "chat-llm@v3"
        and out["released"]["inventory_version"] == "v4"
    )
    assert (
        out["next_apply"]
        == "the next apply makes chat-llm@v4 the version every customer gets again; chat-llm@v3 stays for acme-corp"
    )
    again = fleetctl("release", "chat-llm", "-f", str(SEED), "--state", str(db))
    assert again.returncode == 12 and "chat-llm has no hold" in again.stderr
    assert fleetctl("release", "chat-llm", "--state", str(tmp_path / "none.db")).returncode == 12
    assert not (tmp_path / "none.db").exists()


def test_history_shows_a_failed_revisions_reason_and_log_tail(
    tmp_path: Path, state_location: Any
) -> None:
    db = state_location  # on SQLite, then on PostgreSQL
    _seed_state(db)
    data = json.loads(
        fleetctl("history", "chat-llm@v3", "--state", str(db), "--output", "json").stdout
    )
    failed, ok = data["revisions"]
    assert (failed["number"], failed["outcome"]) == (2, "failed")
    assert failed["reason"] == "not ready after 120 s: GET /v1/health/ready answered 503"
    assert failed["log_tail"] == "loading engine\nCUDA out of memory\n"
    assert (
        failed["failed_step"]["host"] == "gpu-host-1"
        and failed["failed_step"]["action"] == "recreate"
    )
    assert ok["reason"] is None and ok["log_tail"] is None
    assert data["hold"]["revision"] == 1
    table = fleetctl("history", "chat-llm@v3", "--state", str(db)).stdout
    assert "revision 2 failed (recreate of replica 0 on gpu-host-1): not ready after 120 s" in table
    assert "CUDA out of memory" in table and "chat-llm is held at chat-llm@v3 (revision 1)" in table


def test_pins_lists_every_pinned_customer_and_the_holds(
    tmp_path: Path, state_location: Any
) -> None:
    db = state_location  # on SQLite, then on PostgreSQL
    _seed_state(db)
    r = fleetctl(
        "pins", "-f", str(SEED), "--state", str(db), "--output", "json"
    )  # the seed's host is not running
    assert r.returncode == 0, r.stderr
    pin, hold = json.loads(r.stdout)["pins"]
    assert (pin["kind"], pin["customer"], pin["model"], pin["version"]) == (
        "pin",
        "acme-corp",
        "chat-llm",
        "v3",
    )
    assert pin["route"] == {
        "url": "http://127.0.0.1:20999/v1",
        "header": "X-Customer",
        "value": "acme-corp",
    }
    assert pin["replicas"] == {"running": 0, "desired": 1} and pin["health"] == "down"
    assert (hold["kind"], hold["customer"], hold["version"]) == ("hold", None, "v3")
    assert hold["hold"]["in_force"] is True and hold["route"]["header"] is None
    table = fleetctl("pins", "-f", str(SEED), "--state", str(db)).stdout
    assert (
        "acme-corp" in table
        and "X-Customer: acme-corp" in table
        and "everyone else (hold)" in table
    )


def test_rollback_wiring_refusals(tmp_path: Path, state_location: Any) -> None:
    db = state_location  # on SQLite, then on PostgreSQL
    _seed_state(db, hold_at=None)
    nothing = fleetctl("rollback", "chat-llm@v9", "-f", str(SEED), "--state", str(db))
    assert nothing.returncode == 12 and "no revision of chat-llm@v9" in nothing.stderr
    unstable = fleetctl(
        "rollback", "chat-llm@v3", "--to-revision", "2", "-f", str(SEED), "--state", str(db)
    )
    assert (
        unstable.returncode == 1
        and "revision 2 of chat-llm@v3 is failed" in unstable.stderr
        and "--force" in unstable.stderr
    )
    assert (
        fleetctl(
            "rollback", "chat-llm@v3", "--to", "1", "--to-revision", "2", "-f", str(SEED)
        ).returncode
        == 2
    )
    assert fleetctl("rollback", "nope@v1", "-f", str(SEED), "--state", str(db)).returncode == 12
    # A plan with changes needs a yes; without a terminal to ask on, nothing happens.
    asked = fleetctl("rollback", "chat-llm@v3", "--to", "1", "-f", str(SEED), "--state", str(db))
    assert asked.returncode == 11 and "--yes" in asked.stderr
    from fleetctl.state.peek import read_holds

    assert read_holds(db) == []
