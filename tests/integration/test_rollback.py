"""`fleetctl rollback MODEL@VERSION` on the real test bed: a running pin becomes the version
every customer gets without a restart, the old current version goes, and the hold keeps
`plan` and `apply` there until `fleetctl release`.

Real Docker engines, the real front door image and NIM stand-ins; the client is httpx on
loopback.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from .output_schemas import checked

CHAT = {
    "model": "chat-llm",
    "messages": [{"role": "user", "content": "hello rollback"}],
    "max_tokens": 8,
}


def test_rollback_to_a_pinned_version_moves_everyone_without_a_restart_and_holds(
    fleet: Any, testbed: Any
) -> None:
    fleet.nim(
        "chat-llm",
        testbed.images.nim_standin_v2,
        version="v4",
        pins=[{"version": "v3", "image": testbed.images.nim_standin, "customers": ["acme-corp"]}],
    )
    state = ("--state", str(fleet.state))
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    v3_id = fleet.ids()[fleet.container("chat-llm@v3")]
    url = fleet.front_door_url()
    assert (
        httpx.post(url + "/v1/chat/completions", json=CHAT).headers["x-fleetctl-deployment"]
        == "chat-llm@v4"
    )

    r = fleet.cli("rollback", "chat-llm@v3", "--yes", *state)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "every customer moves to chat-llm@v3 (revision 1)" in r.stdout
    ids = fleet.ids()
    assert (
        ids[fleet.container("chat-llm@v3")] == v3_id
    )  # not restarted: the same container serves everyone
    assert fleet.container("chat-llm@v4") not in ids  # the old current version is gone
    reply = httpx.post(
        url + "/v1/chat/completions", json=CHAT
    )  # no X-Customer: the current version
    assert reply.status_code == 200 and reply.headers["x-fleetctl-deployment"] == "chat-llm@v3"
    pinned = httpx.post(
        url + "/v1/chat/completions", json=CHAT, headers={"X-Customer": "acme-corp"}
    )
    assert pinned.headers["x-fleetctl-deployment"] == "chat-llm@v3"

    # The hold: the inventory still says v4, and neither plan nor apply brings it back.
    plan = fleet.cli("plan", "--detailed-exitcode", *state)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert (
        "chat-llm held at v3 (revision 1) by rollback at" in plan.stdout
        and "the inventory asks v4" in plan.stdout
    )
    doc = json.loads(fleet.cli("plan", "--output", "json", *state).stdout)
    assert [a["kind"] for a in doc["actions"] if a["kind"] != "keep"] == []
    assert any(n.startswith("chat-llm held at v3") for n in doc["notes"])
    again = fleet.apply()
    assert (
        again.returncode == 0
        and "nothing to do" in again.stdout
        and "chat-llm held at v3" in again.stdout
    )
    assert fleet.container("chat-llm@v4") not in fleet.ids()
    # status and health measure against the hold too: chat-llm@v3 is what should run.
    status = json.loads(fleet.cli("status", "--output", "json", *state).stdout)
    assert {d["deployment"]: d["state"] for d in status["deployments"]} == {"chat-llm@v3": "ok"}
    health = fleet.cli("health", "--output", "json", *state)
    assert health.returncode == 0, health.stdout + health.stderr

    pins = checked("pins", fleet.cli("pins", "--output", "json", *state).stdout)["pins"]
    acme = next(p for p in pins if p["customer"] == "acme-corp")
    assert (acme["model"], acme["version"], acme["health"]) == ("chat-llm", "v3", "ok")
    assert acme["route"] == {"url": url + "/v1", "header": "X-Customer", "value": "acme-corp"}
    assert acme["replicas"] == {"running": 1, "desired": 1}
    (held,) = [p for p in pins if p["kind"] == "hold"]
    assert held["hold"]["in_force"] is True and held["hold"]["inventory_version"] == "v4"

    hist = json.loads(
        fleet.cli("history", "chat-llm@v4", "--output", "json", *state, inventory=False).stdout
    )
    assert [r["outcome"] for r in hist["revisions"]] == ["rolled_back"]
    rollouts = json.loads(fleet.cli("history", "--output", "json", *state, inventory=False).stdout)[
        "rollouts"
    ]
    assert (
        rollouts[0]["command"] == "rollback chat-llm@v3" and rollouts[0]["outcome"] == "succeeded"
    )

    # Released: the inventory speaks again, and v4 would come back.
    rel = fleet.cli("release", "chat-llm", *state)
    assert rel.returncode == 0, rel.stdout + rel.stderr
    assert "chat-llm@v4 the version every customer gets again" in rel.stdout
    after = fleet.cli("plan", "--detailed-exitcode", *state)
    assert after.returncode == 5, after.stdout + after.stderr
    assert "held at" not in after.stdout
    assert fleet.cli("release", "chat-llm", *state).returncode == 12
