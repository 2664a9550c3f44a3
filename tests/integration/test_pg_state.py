"""A fleet whose state is in PostgreSQL (a real PostgreSQL 15 started by the session
fixture), on the real engines: the team setup of docs/state.md."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from fleetctl.errors import ExitCode
from fleetctl.state.paths import parse_state_location
from fleetctl.state.pg import connect


def _apply_from(checkout: Path, state: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleetctl",
            "apply",
            "--yes",
            "-f",
            str(checkout / "fleet.yaml"),
            "--state",
            state,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def test_two_applies_from_two_checkouts_one_proceeds_and_the_other_exits_8_naming_the_holder(
    make_fleet: Any, testbed: Any, postgres_server: Any, tmp_path: Path
) -> None:
    url = postgres_server.url(postgres_server.new_database())
    fleet = make_fleet(state=url)
    # Slow enough to start that the first apply still holds the lock when the second asks.
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=10, env={"STANDIN_START_DELAY_S": "2"})
    fleet.write()
    checkouts = [tmp_path / "laptop", tmp_path / "ci"]
    for c in checkouts:
        c.mkdir()
        shutil.copy(fleet.path, c / "fleet.yaml")
    env = {**os.environ, "NGC_API_KEY": fleet.canary, "COLUMNS": "200"}
    procs = [_apply_from(c, url, env) for c in checkouts]
    results = [(p, *p.communicate(timeout=300)) for p in procs]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, ExitCode.LOCKED], [(p.returncode, out, err) for p, out, err in results]
    (winner,) = [p for p, _, _ in results if p.returncode == 0]
    (refused,) = [err for p, _, err in results if p.returncode == ExitCode.LOCKED]
    assert f"is locked by pid {winner.pid} (apply)" in refused and url.split("?")[0] in refused, (
        refused
    )
    assert refused.count("\n") == 1 and "Traceback" not in refused
    assert postgres_server.password not in "".join(out + err for _, out, err in results)
    # One rollout in the shared history, and the fleet converged once.
    rollouts = json.loads(fleet.cli("history", "--output", "json").stdout)["rollouts"]
    assert [r["outcome"] for r in rollouts] == ["succeeded"]
    assert list(fleet.ids()) == [fleet.container("chat-llm@1")]
    # From the other checkout, nothing is left to do.
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetctl",
            "apply",
            "--yes",
            "-f",
            str(checkouts[1] / "fleet.yaml"),
            "--state",
            url,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr


def test_apply_status_history_and_rollback_on_a_postgresql_state(
    make_fleet: Any, testbed: Any, postgres_server: Any
) -> None:
    url = postgres_server.url(postgres_server.new_database())
    fleet = make_fleet(state=url)
    chat = fleet.nim("chat-llm", testbed.images.nim_standin, memory=10, version="v4")
    assert (r := fleet.apply()).returncode == 0, r.stdout + r.stderr
    chat["image"] = testbed.images.nim_standin_v2
    assert (r := fleet.apply()).returncode == 0, r.stdout + r.stderr

    status = fleet.status()
    assert {d["deployment"]: d["state"] for d in status["deployments"]} == {"chat-llm@v4": "ok"}

    r = fleet.cli("rollback", "chat-llm", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    api = testbed.client().api
    assert (
        api.inspect_container(fleet.container("chat-llm@v4"))["Config"]["Image"]
        == testbed.images.nim_standin
    )
    assert httpx.get(fleet.endpoint("chat-llm@v4") + "/v1/health/ready").status_code == 200

    hist = json.loads(
        fleet.cli("history", "chat-llm@v4", "--output", "json", inventory=False).stdout
    )
    assert {r["number"]: (r["outcome"], r["image"]) for r in hist["revisions"]} == {
        1: ("applied", testbed.images.nim_standin),
        2: ("rolled_back", testbed.images.nim_standin_v2),
        3: ("applied", testbed.images.nim_standin),
    }
    rollouts = json.loads(fleet.cli("history", "--output", "json", inventory=False).stdout)[
        "rollouts"
    ]
    assert [r["command"].split()[0] for r in rollouts] == ["rollback", "apply", "apply"]
    # The hold is in PostgreSQL too: plan keeps the restored revision.
    plan = fleet.cli("plan", "--detailed-exitcode")
    assert plan.returncode == 0 and "chat-llm held at v4 (revision 1)" in plan.stdout, (
        plan.stdout + plan.stderr
    )
    health = fleet.cli("health", "--output", "json")
    assert health.returncode == 0, health.stdout + health.stderr

    # The state is where it was said to be, and holds no secret.
    db = parse_state_location(url)
    with connect(db, autocommit=True) as conn:  # type: ignore[arg-type]
        assert conn.execute("SELECT count(*) FROM rollout").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM health_streak").fetchone() == (1,)
        dump = str(
            [
                conn.execute(f"SELECT * FROM {t}").fetchall()
                for t in ("rollout", "rollout_step", "revision", "hold")
            ]
        )
    assert fleet.canary not in dump and postgres_server.password not in dump
    assert not any(postgres_server.password in out for out in fleet.outputs)
    assert not (
        fleet.tmp / "state"
    ).exists()  # nothing fell back to a SQLite file beside the inventory
