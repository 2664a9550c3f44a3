"""`fleetctl apply` against real Docker engines, a real Triton server and the NIM stand-in.

The `fleet` and `make_fleet` fixtures (conftest.py) write an inventory for the test bed
and run the real CLI on it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from fleetctl.errors import ExitCode
from fleetctl.state.lock import StateLock
from fleetctl.state.store import StateStore

from .output_schemas import checked


def test_first_apply_serves_triton_inference_and_nim_then_second_apply_changes_nothing(
    fleet: Any, testbed: Any
) -> None:
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=40, sla_ms=200)
    fleet.triton("embeddings")
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr

    # Triton answers a real inference through tritonclient.
    import numpy as np
    import tritonclient.http as tc

    url = fleet.endpoint("embeddings@1").removeprefix("http://")
    client = tc.InferenceServerClient(url)
    assert client.is_model_ready("embeddings")
    text = tc.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"hello fleet"], dtype=object))
    result = client.infer("embeddings", [text])
    assert result.as_numpy("EMBEDDING").shape[-1] == 16

    # The NIM stand-in is ready and serves the OpenAI API under the served model name.
    nim = fleet.endpoint("chat-llm@1")
    assert httpx.get(nim + "/v1/health/ready").status_code == 200
    assert httpx.get(nim + "/v1/models").json()["data"][0]["id"] == "chat-llm"

    before = {
        name: testbed.client().api.inspect_container(cid)["State"]["StartedAt"]
        for name, cid in fleet.ids().items()
    }
    again = fleet.apply("--output", "json")
    assert again.returncode == 0, again.stderr
    assert checked("apply", again.stdout)["changed"] is False
    after = {
        name: testbed.client().api.inspect_container(cid)["State"]["StartedAt"]
        for name, cid in fleet.ids().items()
    }
    assert after == before  # same containers, not restarted

    # Labels are the contract.
    labels = testbed.client().api.inspect_container(fleet.container("chat-llm@1", 0))["Config"][
        "Labels"
    ]
    assert labels["io.fleetctl.deployment"] == "chat-llm@1"
    assert labels["io.fleetctl.fleet"] == fleet.name
    assert labels["io.fleetctl.replica"] == "0"
    assert labels["io.fleetctl.gpus"] and labels["io.fleetctl.gpus-simulated"] == "true"
    assert len(labels["io.fleetctl.spec-hash"]) == 16
    assert labels["io.fleetctl.revision"] == "1"


def test_changed_image_rolls_out_with_the_old_container_serving_until_the_new_one_is_ready(
    fleet: Any, testbed: Any
) -> None:
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=10)
    assert fleet.apply().returncode == 0
    old_endpoint = fleet.endpoint("chat-llm@1")
    old_id = fleet.ids()[fleet.container("chat-llm@1", 0)]

    fleet.models[0]["image"] = testbed.images.nim_standin_v2
    fleet.models[0]["env"] = {"STANDIN_START_DELAY_S": "3"}
    plan = fleet.cli("plan", "--output", "json")
    (action,) = [a for a in json.loads(plan.stdout)["actions"] if a["kind"] != "keep"]
    assert action["kind"] == "recreate" and action["strategy"] == "start-first"

    answers: list[int] = []
    stop = threading.Event()

    def poll_old() -> None:
        while not stop.is_set():
            try:
                answers.append(httpx.get(old_endpoint + "/v1/health/ready", timeout=1).status_code)
            except httpx.HTTPError:
                answers.append(0)
            time.sleep(0.1)

    poller = threading.Thread(target=poll_old)
    poller.start()
    r = fleet.apply()
    stop.set()
    poller.join()
    assert r.returncode == 0, r.stdout + r.stderr
    # The old one answered 200 all through the new one's 3 s start-up, then went away.
    first_gap = answers.index(0) if 0 in answers else len(answers)
    assert first_gap >= 20, answers
    assert all(a == 200 for a in answers[:first_gap])
    ids = fleet.ids()
    assert (
        set(ids) == {fleet.container("chat-llm@1", 0)}
        and ids[fleet.container("chat-llm@1", 0)] != old_id
    )
    assert (
        testbed.client().api.inspect_container(ids[fleet.container("chat-llm@1", 0)])["Config"][
            "Image"
        ]
        == testbed.images.nim_standin_v2
    )
    assert httpx.get(fleet.endpoint("chat-llm@1") + "/v1/health/ready").status_code == 200


def test_never_ready_version_leaves_the_old_one_serving_and_exits_non_zero(
    fleet: Any, testbed: Any
) -> None:
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=10)
    assert fleet.apply().returncode == 0
    old_id = fleet.ids()[fleet.container("chat-llm@1", 0)]
    endpoint = fleet.endpoint("chat-llm@1")

    fleet.models[0]["image"] = testbed.images.nim_standin_v2
    fleet.models[0]["env"] = {"STANDIN_NEVER_READY": "1"}
    fleet.models[0]["nim"]["startup_timeout_s"] = 4
    r = fleet.apply()
    assert r.returncode == ExitCode.ROLLOUT_FAILED, r.stdout + r.stderr
    assert "not ready within 4 s" in r.stdout
    assert "last log lines" in r.stdout
    # The old container still serves, the new one is gone.
    assert fleet.ids() == {fleet.container("chat-llm@1", 0): old_id}
    assert httpx.get(endpoint + "/v1/health/ready").status_code == 200
    with StateStore(fleet.state) as store:
        rollout = store.rollouts(1)[0]
        assert rollout.outcome == "failed"
        (step,) = [s for s in store.steps(rollout.id) if s.deployment != "front-door"]
        assert step.outcome == "failed" and "Selected profile" in step.log_tail
        assert store.latest_revision("chat-llm@1", outcome=None).outcome == "failed"


def test_hand_made_drift_is_planned_and_repaired(fleet: Any, testbed: Any) -> None:
    fleet.nim("a", testbed.images.nim_standin, memory=10)
    fleet.nim("b", testbed.images.nim_standin, memory=10)
    assert fleet.apply().returncode == 0
    api = testbed.client().api
    api.stop(fleet.container("a@1", 0), timeout=1)
    api.remove_container(fleet.container("b@1", 0), force=True)
    # An unlabelled container is never touched.
    stranger = f"not-managed-by-fleetctl-{fleet.name}"
    api.create_container(testbed.images.tiny, name=stranger, labels=testbed.test_labels)

    plan = json.loads(fleet.cli("plan", "--output", "json").stdout)
    kinds = {a["deployment"]: (a["kind"], a["reason"]) for a in plan["actions"]}
    assert kinds["a@1"] == ("recreate", "drift: container is exited")
    assert kinds["b@1"][0] == "create"

    assert fleet.apply().returncode == 0
    assert {d["deployment"]: d["state"] for d in fleet.status()["deployments"]} == {
        "a@1": "ok",
        "b@1": "ok",
    }
    assert api.inspect_container(stranger)["State"]["Status"] == "created"


def test_two_hosts_spread_replicas_and_down_removes_everything(
    make_fleet: Any, testbed: Any
) -> None:
    fleet = make_fleet(hosts={"host-b": testbed.host_b, "host-c": testbed.host_c})
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=10, replicas=2)
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    replicas = fleet.deployment("chat-llm@1")["replicas"]
    assert sorted(r["host"] for r in replicas) == ["host-b", "host-c"]
    assert len(fleet.ids("b")) == 1
    assert len(fleet.ids("c")) == 1
    for rep in replicas:
        assert httpx.get(rep["endpoint"] + "/v1/health/ready").status_code == 200

    down = fleet.cli("down", "--yes", "--state", str(fleet.state), "--output", "json")
    assert down.returncode == 0, down.stderr
    checked("down", down.stdout)
    assert fleet.ids("b") == {} and fleet.ids("c") == {}


def test_unreachable_host_is_reported_and_blocks_only_its_changes(
    make_fleet: Any, testbed: Any
) -> None:
    fleet = make_fleet(
        hosts={"host-a": testbed.host_a, "gone": "unix:///run/fleetctl-testbed/missing.sock"}
    )
    fleet.nim("here", testbed.images.nim_standin, memory=10, hosts={"name": "host-a"})
    fleet.nim("there", testbed.images.nim_standin, memory=10, hosts={"name": "gone"})
    status = fleet.status()
    assert [h["reachable"] for h in status["hosts"]] == [True, False]
    r = fleet.apply()
    assert r.returncode == ExitCode.HOST_UNREACHABLE, r.stdout + r.stderr
    assert "host gone unreachable" in r.stdout
    assert "skipped: host unreachable" in r.stdout
    assert fleet.container("here@1", 0) in fleet.ids()


def test_the_lock_refuses_a_second_apply_with_the_holder(fleet: Any, testbed: Any) -> None:
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=10)
    with StateLock(fleet.state, "apply (test holder)"):
        t0 = time.monotonic()
        r = fleet.apply()
        elapsed = time.monotonic() - t0
    assert r.returncode == ExitCode.LOCKED, r.stdout + r.stderr
    assert f"pid {os.getpid()}" in r.stderr and "apply (test holder)" in r.stderr
    assert elapsed < 5  # refused promptly (python start-up included), not after a long wait
    assert fleet.ids() == {}


def test_saved_plan_is_refused_once_the_fleet_changed(fleet: Any, testbed: Any) -> None:
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=10)
    saved = fleet.tmp / "plan.json"
    assert fleet.cli("plan", "-o", str(saved)).returncode == 0
    labels = {
        "io.fleetctl.owner": "fleetctl",
        "io.fleetctl.fleet": fleet.name,
        "io.fleetctl.deployment": "chat-llm@1",
        "io.fleetctl.replica": "0",
    }
    testbed.client().api.create_container(
        testbed.images.tiny, name=fleet.container("chat-llm@1", 0), labels=labels
    )
    r = fleet.apply("--plan", str(saved))
    assert r.returncode == ExitCode.STALE_PLAN, r.stdout + r.stderr
    assert "changed since this plan was made" in r.stderr


def test_saved_plan_applies_when_nothing_moved(fleet: Any, testbed: Any) -> None:
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=10)
    saved = fleet.tmp / "plan.json"
    assert fleet.cli("plan", "-o", str(saved)).returncode == 0
    r = fleet.apply("--plan", str(saved))
    assert r.returncode == 0, r.stdout + r.stderr
    assert fleet.container("chat-llm@1", 0) in fleet.ids()


def test_the_canary_api_key_never_reaches_state_plan_logs_or_output(
    fleet: Any, testbed: Any
) -> None:
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=10)
    fleet.nim(
        "broken",
        testbed.images.nim_standin_v2,
        memory=10,
        env={"STANDIN_NEVER_READY": "1"},
        timeout=3,
    )
    fleet.apply()
    fleet.cli("plan", "--output", "json")
    fleet.cli("plan", "-o", str(fleet.tmp / "plan.json"))
    fleet.cli("status")
    # The key did reach the container that needs it...
    env = testbed.client().api.inspect_container(fleet.container("chat-llm@1", 0))["Config"]["Env"]
    assert f"NGC_API_KEY={fleet.canary}" in env
    # ...and nowhere else.
    for out in fleet.outputs:
        assert fleet.canary not in out
    for f in fleet.tmp.iterdir():
        if f.is_file():
            assert fleet.canary.encode() not in f.read_bytes(), f
    for name in fleet.ids():
        assert fleet.canary not in testbed.client().api.logs(name).decode(errors="replace")


def test_rollback_of_a_model_restores_the_previous_revision_of_its_current_version_and_holds_it(
    fleet: Any, testbed: Any
) -> None:
    chat = fleet.nim("chat-llm", testbed.images.nim_standin, memory=10, version="v4")
    chat["pins"] = [
        {"version": "v3", "image": testbed.images.nim_standin, "customers": ["acme-corp"]}
    ]
    state = ("--state", str(fleet.state))
    assert fleet.apply().returncode == 0
    v3_id = fleet.ids()[fleet.container("chat-llm@v3", 0)]

    chat["image"] = testbed.images.nim_standin_v2
    assert fleet.apply().returncode == 0
    api = testbed.client().api
    assert (
        api.inspect_container(fleet.container("chat-llm@v4", 0))["Config"]["Image"]
        == testbed.images.nim_standin_v2
    )

    r = fleet.cli("rollback", "chat-llm", "--yes", "--output", "json", *state)
    assert r.returncode == 0, r.stdout + r.stderr
    checked("rollback", r.stdout)
    assert (
        api.inspect_container(fleet.container("chat-llm@v4", 0))["Config"]["Image"]
        == testbed.images.nim_standin
    )
    assert httpx.get(fleet.endpoint("chat-llm@v4") + "/v1/health/ready").status_code == 200
    # The pinned customer's version did not move.
    assert fleet.ids()[fleet.container("chat-llm@v3", 0)] == v3_id

    hist = json.loads(
        fleet.cli("history", "chat-llm@v4", "--output", "json", *state, inventory=False).stdout
    )
    revs = {r["number"]: (r["outcome"], r["image"]) for r in hist["revisions"]}
    assert revs == {
        1: ("applied", testbed.images.nim_standin),
        2: ("rolled_back", testbed.images.nim_standin_v2),
        3: ("applied", testbed.images.nim_standin),
    }
    # The inventory still asks for the newer image; the hold keeps the restored revision.
    plan = json.loads(fleet.cli("plan", "--output", "json", *state).stdout)
    assert [a for a in plan["actions"] if a["kind"] != "keep"] == []
    assert plan["notes"][0].startswith("chat-llm held at v4 (revision 1) by rollback at ")
    held = fleet.cli("plan", "--detailed-exitcode", *state)
    assert held.returncode == 0 and "chat-llm held at v4" in held.stdout, held.stdout + held.stderr
    # Released, plan shows the roll-forward.
    assert fleet.cli("release", "chat-llm", *state).returncode == 0
    plan = json.loads(fleet.cli("plan", "--output", "json", *state).stdout)
    (change,) = [a for a in plan["actions"] if a["kind"] != "keep"]
    assert change["deployment"] == "chat-llm@v4" and "nim-standin:2" in change["reason"]

    rollouts = json.loads(fleet.cli("history", "--output", "json", *state, inventory=False).stdout)[
        "rollouts"
    ]
    assert [r["command"] for r in rollouts][:1] == ["rollback chat-llm"]

    # In the words: `rollback chat-llm@v4` to a recorded revision holds too.
    again = fleet.cli("rollback", "chat-llm@v4", "--to-revision", "1", "--yes", *state)
    assert again.returncode == 0, again.stdout + again.stderr
    held = fleet.cli("plan", "--detailed-exitcode", *state)
    assert held.returncode == 0 and "chat-llm held at v4 (revision 1)" in held.stdout, (
        held.stdout + held.stderr
    )
    assert fleet.cli("release", "chat-llm", *state).returncode == 0
    assert fleet.cli("plan", "--detailed-exitcode", *state).returncode == ExitCode.CHANGES_PENDING


def test_the_demo_inventory_applies_triton_models_answer_and_nim_stand_ins_are_ready(
    tmp_path: Path, testbed: Any, docker_cleanup: Any, fleetctl_run: Any, suite_state: str
) -> None:
    """inventory/demo.yaml itself, moved to its own fleet name and port range."""
    repo = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((repo / "inventory" / "demo.yaml").read_text())
    doc["fleet"] = f"demo-test-{os.getpid()}"
    (host,) = doc["hosts"]
    host["docker"] = testbed.host_a
    host["ports"] = "25800-25899"
    for m in doc["models"]:
        if m.get("triton"):
            m["triton"]["model_repository"] = str(testbed.model_repository)
        if m.get("nim"):
            m["nim"]["cache_dir"] = str(tmp_path / "nim-cache")
    doc["front_door"]["port"] = 25880
    inv = tmp_path / "demo.yaml"
    inv.write_text(yaml.safe_dump(doc, sort_keys=False))
    r = fleetctl_run("apply", "-f", str(inv), "--yes", "--state", suite_state)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "http://127.0.0.1:25880" in r.stdout

    status = checked(
        "status",
        fleetctl_run("status", "-f", str(inv), "--output", "json", "--state", suite_state).stdout,
    )
    states = {d["deployment"]: d["state"] for d in status["deployments"]}
    assert states == dict.fromkeys(states, "ok") and len(states) == 3
    # The three Triton models share one Triton server (one container).
    (server,) = [d for d in status["deployments"] if d.get("members")]
    assert [m["deployment"] for m in server["members"]] == [
        "embeddings@1",
        "reranker@1",
        "safety-guard@1",
    ]
    assert len(server["replicas"]) == 1
    assert status["front_doors"][0]["url"] == "http://127.0.0.1:25880"
    assert status["front_doors"][0]["routes_current"] is True

    import numpy as np
    import tritonclient.http as tc

    # Every model through the one front door URL: Triton by path, the NIMs by body.
    client = tc.InferenceServerClient("127.0.0.1:25880")
    assert client.is_server_ready()
    for model in ("embeddings", "reranker", "safety-guard"):
        meta = client.get_model_metadata(model)
        inputs = []
        for spec in meta["inputs"]:
            shape = [1 if d == -1 else int(d) for d in spec["shape"]]
            x = tc.InferInput(spec["name"], shape, spec["datatype"])
            if spec["datatype"] == "BYTES":
                x.set_data_from_numpy(np.full(shape, b"is this safe?", dtype=object))
            else:
                x.set_data_from_numpy(np.ones(shape, dtype=np.float32))
            inputs.append(x)
        result = client.infer(model, inputs)
        assert all(result.as_numpy(o["name"]) is not None for o in meta["outputs"]), model
    for customer, served in ((None, "chat-llm@v4"), ("acme-corp", "chat-llm@v3")):
        reply = httpx.post(
            "http://127.0.0.1:25880/v1/chat/completions",
            json={"model": "chat-llm", "messages": [{"role": "user", "content": "hi"}]},
            headers={"X-Customer": customer} if customer else {},
        )
        assert reply.status_code == 200 and reply.headers["x-fleetctl-deployment"] == served
        assert reply.json()["choices"][0]["message"]["content"]
    again = fleetctl_run("apply", "-f", str(inv), "--yes", "--state", suite_state)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_an_image_that_cannot_be_had_fails_that_replica_with_a_clear_reason(
    fleet: Any, testbed: Any
) -> None:
    fleet.nim("ok", testbed.images.nim_standin, memory=10)
    # Its registry is a closed port on loopback: the pull fails without leaving the machine.
    fleet.nim("ghost", "127.0.0.1:1/fleetctl-testbed/does-not-exist:9", memory=10)
    r = fleet.apply()
    assert r.returncode == ExitCode.ROLLOUT_FAILED, r.stdout + r.stderr
    assert (
        "image 127.0.0.1:1/fleetctl-testbed/does-not-exist:9 is not available on host-a" in r.stdout
    )
    assert "pulling it failed" in r.stdout
    assert set(fleet.ids()) == {fleet.container("ok@1", 0)}


def test_a_gpu_too_full_for_old_and_new_stops_the_old_first_and_restarts_it_on_failure(
    fleet: Any, testbed: Any
) -> None:
    fleet.gpus = {"count": 1, "memory_gb": 80, "model": "H100-80GB"}  # no other GPU to surge to
    chat = fleet.nim("chat-llm", memory=70, rollout={"allow_downtime": True})
    assert fleet.apply().returncode == 0
    old_id = fleet.ids()[fleet.container("chat-llm@1")]
    endpoint = fleet.endpoint("chat-llm@1")

    # 70 GB of an 80 GB GPU: a second copy does not fit beside the first.
    chat["image"] = testbed.images.nim_standin_v2
    chat["env"] = {"STANDIN_NEVER_READY": "1"}
    chat["nim"]["startup_timeout_s"] = 3
    plan = json.loads(fleet.cli("plan", "--output", "json").stdout)
    (change,) = [a for a in plan["actions"] if a["kind"] != "keep"]
    assert change["strategy"] == "stop-first"
    r = fleet.apply()
    assert r.returncode == ExitCode.ROLLOUT_FAILED, r.stdout + r.stderr
    assert "old container restored" in r.stdout
    # The very same old container serves again, under its own name, on its own port.
    assert fleet.ids() == {fleet.container("chat-llm@1"): old_id}
    testbed.wait_until(
        lambda: httpx.get(endpoint + "/v1/health/ready").status_code == 200,
        30,
        what="old one ready again",
    )

    chat["env"] = {}
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    new_id = fleet.ids()[fleet.container("chat-llm@1")]
    assert new_id != old_id
    assert fleet.endpoint("chat-llm@1") == endpoint  # stop-first keeps the port
    assert httpx.get(endpoint + "/v1/version").json()
