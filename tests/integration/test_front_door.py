"""The front door on the real test bed: one URL per host, every model behind it.

Real Docker engines, the real front door image, NIM stand-ins and Triton; the clients
are the `openai` package, httpx and tritonclient, on loopback only.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from fleetctl.errors import ExitCode

CHAT = {
    "model": "chat-llm",
    "messages": [{"role": "user", "content": "hello front door"}],
    "max_tokens": 8,
}


def chat_fleet(fleet: Any, testbed: Any, replicas: int = 1) -> Any:
    fleet.nim(
        "chat-llm",
        testbed.images.nim_standin_v2,
        version="v4",
        replicas=replicas,
        pins=[{"version": "v3", "image": testbed.images.nim_standin, "customers": ["acme-corp"]}],
    )
    return fleet


def test_openai_chat_streaming_pins_models_list_and_404_through_the_front_door(
    fleet: Any, testbed: Any
) -> None:
    chat_fleet(fleet, testbed)
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    url = fleet.front_door_url()
    assert len(fleet.ids(front_door=True)) == 1

    from openai import OpenAI

    client = OpenAI(base_url=url + "/v1", api_key="unused")
    reply = client.chat.completions.with_raw_response.create(
        model="chat-llm", messages=CHAT["messages"]
    )
    assert reply.headers["x-fleetctl-deployment"] == "chat-llm@v4"
    assert "hello front door" in reply.parse().choices[0].message.content

    pinned = client.chat.completions.with_raw_response.create(
        model="chat-llm", messages=CHAT["messages"], extra_headers={"X-Customer": "acme-corp"}
    )
    assert pinned.headers["x-fleetctl-deployment"] == "chat-llm@v3"
    other = httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"X-Customer": "globex"})
    assert other.headers["x-fleetctl-deployment"] == "chat-llm@v4"  # no pin: the current version

    chunks = list(
        client.chat.completions.create(model="chat-llm", messages=CHAT["messages"], stream=True)
    )
    assert len(chunks) > 1
    assert "hello" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    models = httpx.get(url + "/v1/models", headers={"X-Customer": "acme-corp"}).json()
    assert [m["id"] for m in models["data"]] == ["chat-llm"]
    assert models["data"][0]["fleetctl"]["deployment"] == "chat-llm@v3"

    missing = httpx.post(url + "/v1/chat/completions", json={**CHAT, "model": "no-such-model"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"

    status = fleet.status()
    assert status["front_doors"] == [
        {
            **status["front_doors"][0],
            "host": "host-a",
            "url": url,
            "state": "running",
            "routes_current": True,
        }
    ]
    chat = next(d for d in status["deployments"] if d["deployment"] == "chat-llm@v4")
    assert chat["client_url"] == url + "/v1"
    again = fleet.apply()
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_a_model_without_a_ready_replica_answers_503_with_retry_after(
    fleet: Any, testbed: Any
) -> None:
    fleet.nim("stuck", env={"STANDIN_NEVER_READY": "1"}, timeout=3)
    r = fleet.apply()
    assert r.returncode == ExitCode.ROLLOUT_FAILED, r.stdout + r.stderr
    reply = httpx.post(
        fleet.front_door_url() + "/v1/chat/completions", json={**CHAT, "model": "stuck"}
    )
    assert reply.status_code == 503
    assert reply.headers["retry-after"]
    assert reply.json()["error"]["code"] == "no_ready_replica"


def test_a_replica_stopped_by_hand_leaves_rotation_within_3_s_without_a_failed_request(
    fleet: Any, testbed: Any, steady_load: Any
) -> None:
    chat_fleet(fleet, testbed, replicas=2)
    assert fleet.apply().returncode == 0
    url = fleet.front_door_url()
    victim = fleet.ids()[fleet.container("chat-llm@v4", 1)]
    victim_url = fleet.endpoint("chat-llm@v4", 1)
    with steady_load(url + "/v1/chat/completions", CHAT) as load:
        time.sleep(1.0)
        stopped = time.monotonic()
        testbed.client().api.stop(victim, timeout=1)

        def out_of_rotation() -> bool:
            doc = httpx.get(url + "/-/fleetctl/status").json()
            return any(b["url"] == victim_url and not b["ready"] for b in doc["backends"])

        while not out_of_rotation():
            assert time.monotonic() - stopped < 3.0, (
                "the stopped replica is still in rotation after 3 s"
            )
            time.sleep(0.05)
        time.sleep(1.0)
    assert load.failures == [] and load.ok > 50


def test_a_rollout_under_steady_load_fails_no_request_and_pins_keep_their_containers(
    fleet: Any, testbed: Any, steady_load: Any
) -> None:
    chat_fleet(fleet, testbed)
    assert fleet.apply().returncode == 0
    url = fleet.front_door_url()
    pinned_id = fleet.ids()[fleet.container("chat-llm@v3", 0)]
    old_v4 = fleet.ids()[fleet.container("chat-llm@v4", 0)]
    fleet.models[0]["image"] = testbed.images.nim_standin  # an image change of the current version
    with (
        steady_load(url + "/v1/chat/completions", CHAT) as current,
        steady_load(
            url + "/v1/chat/completions", CHAT, headers={"X-Customer": "acme-corp"}
        ) as pinned,
    ):
        r = fleet.apply()
        time.sleep(0.5)
    assert r.returncode == 0, r.stdout + r.stderr
    assert current.failures == [] and pinned.failures == []
    assert current.ok > 20 and set(current.served_by) == {"chat-llm@v4"}
    assert set(pinned.served_by) == {"chat-llm@v3"}
    ids = fleet.ids()
    assert ids[fleet.container("chat-llm@v4", 0)] != old_v4
    assert ids[fleet.container("chat-llm@v3", 0)] == pinned_id
    doc = httpx.get(url + "/-/fleetctl/status").json()
    assert {b["url"] for b in doc["backends"] if b["in_routes"]} == {
        fleet.endpoint("chat-llm@v4"),
        fleet.endpoint("chat-llm@v3"),
    }


def test_routes_changed_by_hand_are_planned_as_a_reload_and_repaired(
    fleet: Any, testbed: Any
) -> None:
    chat_fleet(fleet, testbed)
    assert fleet.apply().returncode == 0
    (door,) = fleet.ids(front_door=True).values()
    api = testbed.client().api
    api.kill(door, signal="SIGHUP")  # reloading the same file changes nothing
    plan = json.loads(fleet.cli("plan", "--output", "json").stdout)
    assert [f["kind"] for f in plan["front_doors"]] == ["keep"]

    api.stop(door, timeout=1)
    plan = json.loads(fleet.cli("plan", "--output", "json").stdout)
    assert [(f["kind"], f["reason"]) for f in plan["front_doors"]] == [
        ("recreate", "drift: container is exited")
    ]
    assert fleet.apply().returncode == 0
    ok = httpx.post(fleet.front_door_url() + "/v1/chat/completions", json=CHAT)
    assert ok.status_code == 200


def test_every_host_front_door_serves_the_models_of_every_host(
    make_fleet: Any, testbed: Any
) -> None:
    fleet = make_fleet({"host-b": testbed.host_b, "host-c": testbed.host_c})
    fleet.nim("only-on-b", hosts={"name": "host-b"})
    fleet.nim("only-on-c", hosts={"name": "host-c"})
    assert fleet.apply().returncode == 0
    for host in ("host-b", "host-c"):
        for model in ("only-on-b", "only-on-c"):
            r = httpx.post(
                fleet.front_door_url(host) + "/v1/chat/completions", json={**CHAT, "model": model}
            )
            assert r.status_code == 200 and r.headers["x-fleetctl-deployment"] == f"{model}@1", (
                host,
                model,
            )
    down = fleet.cli("down", "--yes", "--state", str(fleet.state))
    assert down.returncode == 0
    assert fleet.ids("b", front_door=True) == {} and fleet.ids("c", front_door=True) == {}


@pytest.mark.parametrize("size_mb", [9])
def test_a_large_body_routes_by_a_model_key_after_the_messages(
    fleet: Any, testbed: Any, size_mb: int
) -> None:
    fleet.nim("chat-llm")
    assert fleet.apply().returncode == 0
    big = "x" * (size_mb * 1024 * 1024)
    body = (
        '{"messages": [{"role": "user", "content": "'
        + big
        + '"}], "model": "chat-llm", "max_tokens": 1}'
    )
    r = httpx.post(
        fleet.front_door_url() + "/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 200 and r.headers["x-fleetctl-deployment"] == "chat-llm@1"
