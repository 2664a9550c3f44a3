"""Changes without downtime, measured with steady load through the front door.

Every scenario runs a client that sends one chat completion after another through the
front door while `apply` changes the fleet, and counts every failed request.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from fleetctl.errors import ExitCode
from fleetctl.state.store import StateStore

CHAT = {"model": "chat-llm", "messages": [{"role": "user", "content": "steady"}], "max_tokens": 4}


def chat(fleet: Any, testbed: Any, **kw: Any) -> dict[str, Any]:
    return fleet.nim("chat-llm", testbed.images.nim_standin, version="v4", **kw)


def test_an_env_change_rolls_replicas_one_at_a_time_with_no_failed_request(
    fleet: Any, testbed: Any, steady_load: Any
) -> None:
    m = chat(
        fleet,
        testbed,
        replicas=2,
        pins=[{"version": "v3", "image": testbed.images.nim_standin, "customers": ["acme-corp"]}],
    )
    assert fleet.apply().returncode == 0
    pinned = fleet.ids()[fleet.container("chat-llm@v3")]
    m["env"] = {"STANDIN_START_DELAY_S": "1"}
    url = fleet.front_door_url() + "/v1/chat/completions"
    with (
        steady_load(url, CHAT) as load,
        steady_load(url, CHAT, headers={"X-Customer": "acme-corp"}) as pin,
    ):
        r = fleet.apply("--output", "json")
        time.sleep(0.3)
    assert r.returncode == 0, r.stdout + r.stderr
    assert load.failures == [] and pin.failures == [] and load.ok > 20
    assert set(pin.served_by) == {"chat-llm@v3"}
    assert (
        fleet.ids()[fleet.container("chat-llm@v3")] == pinned
    )  # a pin does not inherit the model's env
    steps = [s for s in json.loads(r.stdout)["steps"] if s["deployment"] == "chat-llm@v4"]
    assert [s["replica"] for s in steps] == [0, 1] and all(s["ok"] for s in steps)
    with StateStore(fleet.state) as store:
        rollout = store.rollouts(1)[0]
        timed = sorted(
            (s for s in store.steps(rollout.id) if s.deployment == "chat-llm@v4"),
            key=lambda s: s.started_at,
        )
    assert timed[0].finished_at <= timed[1].started_at  # one replica at a time
    names = set(fleet.ids())
    assert {fleet.container("chat-llm@v4", 0), fleet.container("chat-llm@v4", 1)} <= names
    assert not [n for n in names if n.endswith(("-old", "-next"))]  # nothing parked is left behind


def test_a_version_bump_creates_v5_first_and_moves_clients_before_v4_goes(
    fleet: Any, testbed: Any, steady_load: Any
) -> None:
    m = chat(fleet, testbed)
    assert fleet.apply().returncode == 0
    m["version"] = "v5"
    m["image"] = testbed.images.nim_standin_v2
    with steady_load(fleet.front_door_url() + "/v1/chat/completions", CHAT) as load:
        r = fleet.apply()
        time.sleep(0.3)
    assert r.returncode == 0, r.stdout + r.stderr
    assert load.failures == []
    assert load.served_by[0] == "chat-llm@v4" and load.served_by[-1] == "chat-llm@v5"
    switched = load.served_by.index("chat-llm@v5")
    assert set(load.served_by[switched:]) == {"chat-llm@v5"}  # no flapping back
    assert set(fleet.ids()) == {fleet.container("chat-llm@v5")}


def test_a_full_gpu_surges_to_idle_gpus_and_never_stops_a_serving_replica(
    fleet: Any, testbed: Any, steady_load: Any
) -> None:
    fleet.gpus = {"count": 4, "memory_gb": 80, "model": "H100-80GB"}
    m = chat(fleet, testbed, replicas=2, memory=80)
    assert fleet.apply().returncode == 0
    before = {r["replica"]: r["gpus"] for r in fleet.deployment("chat-llm@v4")["replicas"]}
    m["image"] = testbed.images.nim_standin_v2
    plan = json.loads(fleet.cli("plan", "--output", "json").stdout)
    changes = [a for a in plan["actions"] if a["kind"] == "recreate"]
    assert all(
        a["strategy"] == "start-first" and not a["downtime"] and "surge" in a["reason"]
        for a in changes
    )
    with steady_load(fleet.front_door_url() + "/v1/chat/completions", CHAT) as load:
        r = fleet.apply()
        time.sleep(0.3)
    assert r.returncode == 0, r.stdout + r.stderr
    assert load.failures == []
    after = {r["replica"]: r["gpus"] for r in fleet.deployment("chat-llm@v4")["replicas"]}
    assert set(map(tuple, after.values())).isdisjoint(map(tuple, before.values()))
    assert not json.loads(fleet.cli("plan", "--output", "json").stdout)["summary"]["changes"][
        "recreate"
    ]


def test_a_never_ready_revision_reverts_every_replica_with_no_failed_request(
    fleet: Any, testbed: Any, steady_load: Any
) -> None:
    m = chat(fleet, testbed, replicas=2)
    assert fleet.apply().returncode == 0
    ids = fleet.ids()
    m["env"] = {"STANDIN_NEVER_READY": "1"}
    m["nim"]["startup_timeout_s"] = 3
    with steady_load(fleet.front_door_url() + "/v1/chat/completions", CHAT) as load:
        r = fleet.apply("--output", "json")
        time.sleep(0.3)
    assert r.returncode == ExitCode.ROLLOUT_FAILED, r.stdout + r.stderr
    assert load.failures == [] and load.ok > 20
    assert fleet.ids() == ids  # the same containers: the last stable revision, exactly
    steps = json.loads(r.stdout)["steps"]
    assert any("not ready within 3 s" in s["detail"] for s in steps)
    with StateStore(fleet.state) as store:
        (rev,) = [x for x in store.revisions("chat-llm@v4") if x.outcome == "failed"]
        assert rev.rollout_id == store.rollouts(1)[0].id


def test_scaling_1_to_3_and_back_fails_no_request(
    fleet: Any, testbed: Any, steady_load: Any
) -> None:
    fleet.gpus = {"count": 4, "memory_gb": 80, "model": "H100-80GB"}
    m = chat(fleet, testbed)
    assert fleet.apply().returncode == 0
    with steady_load(fleet.front_door_url() + "/v1/chat/completions", CHAT) as load:
        m["replicas"] = 3
        up = fleet.apply()
        m["replicas"] = 1
        down = fleet.apply()
        time.sleep(0.3)
    assert up.returncode == 0 and down.returncode == 0, up.stdout + down.stdout
    assert load.failures == [] and load.ok > 20
    assert len(fleet.ids()) == 1


def test_an_image_missing_on_one_host_changes_nothing_anywhere(
    make_fleet: Any, testbed: Any
) -> None:
    fleet = make_fleet({"host-a": testbed.host_a, "host-b": testbed.host_b})
    m = fleet.nim("chat-llm", replicas=2, memory=80)
    fleet.gpus = {"count": 1, "memory_gb": 80, "model": "H100-80GB"}
    assert fleet.apply().returncode == 0
    ids = {**fleet.ids("a"), **fleet.ids("b")}
    # Only engine a has it, and its registry (a closed loopback port) cannot be reached.
    only_a = "127.0.0.1:1/fleetctl-testbed/only-on-a:1"
    testbed.client("a").api.tag(
        testbed.images.nim_standin_v2, "127.0.0.1:1/fleetctl-testbed/only-on-a", "1"
    )
    m["image"] = only_a
    r = fleet.apply("--allow-downtime")
    assert r.returncode == ExitCode.ROLLOUT_FAILED, r.stdout + r.stderr
    assert "is not available on host-b" in r.stdout
    assert {**fleet.ids("a"), **fleet.ids("b")} == ids  # not even host a's replica moved


def test_stop_first_needs_permission_and_its_outage_is_as_predicted(
    fleet: Any, testbed: Any, steady_load: Any
) -> None:
    fleet.gpus = {"count": 1, "memory_gb": 80, "model": "H100-80GB"}
    m = chat(fleet, testbed, memory=80)
    assert fleet.apply().returncode == 0
    m["image"] = testbed.images.nim_standin_v2
    refused = fleet.apply()
    assert refused.returncode == ExitCode.DOWNTIME_REFUSED, refused.stdout + refused.stderr
    assert "--allow-downtime" in refused.stderr and "chat-llm@v4#0" in refused.stderr
    plan = json.loads(fleet.cli("plan", "--output", "json").stdout)
    (change,) = [a for a in plan["actions"] if a["kind"] == "recreate"]
    assert change["strategy"] == "stop-first" and change["downtime"]

    with steady_load(fleet.front_door_url() + "/v1/chat/completions", CHAT) as load:
        r = fleet.apply("--allow-downtime", "--output", "json")
        time.sleep(0.5)
    assert r.returncode == 0, r.stdout + r.stderr
    predicted = json.loads(r.stdout)["plan"]["actions"][0]["unavailable_s"]
    assert predicted is not None  # from the first apply's start time
    outage = [f for f in load.failures if f.startswith("503")]
    assert outage and len(outage) == len(
        load.failures
    )  # refused cleanly by the front door, never an error
    measured = load.failed_at[-1] - load.failed_at[0]
    assert measured <= 2 * predicted + 2.0, (measured, predicted)
    assert httpx.post(fleet.front_door_url() + "/v1/chat/completions", json=CHAT).status_code == 200


def test_a_triton_model_unloaded_by_hand_is_drift_in_plan_and_apply_repairs_it(
    fleet: Any, testbed: Any
) -> None:
    import tritonclient.http as tc

    fleet.triton("embeddings")
    assert fleet.apply().returncode == 0
    server = tc.InferenceServerClient(fleet.endpoint("embeddings@1").removeprefix("http://"))
    server.unload_model("embeddings")
    testbed.wait_until(lambda: not server.is_model_ready("embeddings"), 30, what="model unloaded")
    plan = json.loads(fleet.cli("plan", "--output", "json").stdout)
    (change,) = [a for a in plan["actions"] if a["kind"] != "keep"]
    # A shared server: the model is loaded again in it, the container left running.
    assert (change["kind"], change["model"], change["reason"]) == (
        "load",
        "embeddings",
        "load embeddings (embeddings@1)",
    )
    before = fleet.ids()
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    assert fleet.ids() == before
    door = tc.InferenceServerClient(fleet.front_door_url().removeprefix("http://"))
    assert door.is_model_ready("embeddings")
    again = json.loads(fleet.cli("plan", "--output", "json").stdout)
    assert [a["kind"] for a in again["actions"]] == ["keep"]
