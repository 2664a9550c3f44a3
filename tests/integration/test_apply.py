"""`fleetctl apply` against real Docker engines, a real Triton server and the NIM stand-in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from fleetctl.errors import ExitCode
from fleetctl.state.lock import StateLock
from fleetctl.state.store import StateStore

CANARY = "nvapi-CANARY-7f3e1d9a2b"
_next_range = iter(range(23000, 26000, 100))
_fleet_names = iter(f"t{i}" for i in range(10_000))


def run_fleetctl(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NGC_API_KEY": CANARY, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "fleetctl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )


class Fleet:
    """An inventory file, a state database and the helpers to act on them."""

    def __init__(self, tmp_path: Path, testbed: Any, hosts: dict[str, str] | None = None) -> None:
        self.tmp = tmp_path
        self.testbed = testbed
        self.path = tmp_path / "fleet.yaml"
        self.state = tmp_path / "state.db"
        self.hosts = hosts or {"host-a": testbed.host_a}
        self.ranges = {name: next(_next_range) for name in self.hosts}
        self.models: list[dict[str, Any]] = []
        self.outputs: list[str] = []
        self.name = f"{next(_fleet_names)}-{os.getpid()}"

    def nim(self, name: str, image: str, *, memory: float = 10, env: dict[str, str] | None = None, timeout: float = 60, version: str = "1", **kw: Any) -> dict[str, Any]:
        m = {
            "name": name,
            "version": version,
            "runtime": "nim",
            "image": image,
            "gpu_memory_gb": memory,
            "env": env or {},
            "nim": {"served_model_name": name, "cache_dir": str(self.tmp / "nim-cache"), "startup_timeout_s": timeout},
            **kw,
        }
        self.models.append(m)
        return m

    def triton(self, name: str, *, memory: float = 2) -> dict[str, Any]:
        m = {
            "name": name,
            "version": "1",
            "runtime": "triton",
            "image": self.testbed.images.triton,
            "gpu_memory_gb": memory,
            "sla_ms": 50,
            "triton": {
                "model_repository": str(self.testbed.model_repository),
                "models": [name],
                "server_binary": "/opt/tritonserver/bin/tritonserver",
                "startup_timeout_s": 120,
            },
        }
        self.models.append(m)
        return m

    def write(self) -> None:
        hosts = [
            {
                "name": name,
                "docker": url,
                "simulated": True,
                "gpus": {"count": 2, "memory_gb": 80, "model": "H100-80GB"},
                "network": "host",
                "address": "127.0.0.1",
                "ports": f"{self.ranges[name]}-{self.ranges[name] + 99}",
                "labels": {"name": name},
            }
            for name, url in self.hosts.items()
        ]
        doc = {"fleet": self.name, "hosts": hosts, "models": self.models}
        self.path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def container(self, deployment: str, replica: int = 0) -> str:
        return f"fleetctl-{self.name}-{deployment.replace('@', '-')}-{replica}"

    def cli(self, *args: str, inventory: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
        self.write()
        r = run_fleetctl(*args, *(["-f", str(self.path)] if inventory else []), **kw)
        self.outputs.append(r.stdout + r.stderr)
        return r

    def apply(self, *extra: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.cli("apply", "--yes", "--state", str(self.state), *extra, **kw)

    def status(self) -> dict[str, Any]:
        r = self.cli("status", "--output", "json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def deployment(self, name: str) -> dict[str, Any]:
        return next(d for d in self.status()["deployments"] if d["deployment"] == name)

    def endpoint(self, name: str, replica: int = 0) -> str:
        return self.deployment(name)["replicas"][replica]["endpoint"]


@pytest.fixture
def fleet(tmp_path: Path, testbed: Any, docker_cleanup: Any) -> Fleet:
    return Fleet(tmp_path, testbed)


def container_ids(fleet: Fleet, engine: str = "a") -> dict[str, str]:
    """This fleet's managed containers on one engine: name -> id."""
    api = fleet.testbed.client(engine).api
    rows = api.containers(all=True, filters={"label": ["io.fleetctl.owner=fleetctl", f"io.fleetctl.fleet={fleet.name}"]})
    return {r["Names"][0].lstrip("/"): r["Id"] for r in rows}


def test_first_apply_serves_triton_inference_and_nim_then_second_apply_changes_nothing(fleet: Fleet, testbed: Any) -> None:
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
        name: testbed.client().api.inspect_container(cid)["State"]["StartedAt"] for name, cid in container_ids(fleet).items()
    }
    again = fleet.apply("--output", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["changed"] is False
    after = {
        name: testbed.client().api.inspect_container(cid)["State"]["StartedAt"] for name, cid in container_ids(fleet).items()
    }
    assert after == before  # same containers, not restarted

    # Labels are the contract.
    labels = testbed.client().api.inspect_container(fleet.container("chat-llm@1", 0))["Config"]["Labels"]
    assert labels["io.fleetctl.deployment"] == "chat-llm@1"
    assert labels["io.fleetctl.fleet"] == fleet.name
    assert labels["io.fleetctl.replica"] == "0"
    assert labels["io.fleetctl.gpus"] and labels["io.fleetctl.gpus-simulated"] == "true"
    assert len(labels["io.fleetctl.spec-hash"]) == 16
    assert labels["io.fleetctl.revision"] == "1"


def test_changed_image_rolls_out_with_the_old_container_serving_until_the_new_one_is_ready(fleet: Fleet, testbed: Any) -> None:
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=10)
    assert fleet.apply().returncode == 0
    old_endpoint = fleet.endpoint("chat-llm@1")
    old_id = container_ids(fleet)[fleet.container("chat-llm@1", 0)]

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
    ids = container_ids(fleet)
    assert set(ids) == {fleet.container("chat-llm@1", 0)} and ids[fleet.container("chat-llm@1", 0)] != old_id
    assert testbed.client().api.inspect_container(ids[fleet.container("chat-llm@1", 0)])["Config"]["Image"] == testbed.images.nim_standin_v2
    assert httpx.get(fleet.endpoint("chat-llm@1") + "/v1/health/ready").status_code == 200


def test_never_ready_version_leaves_the_old_one_serving_and_exits_non_zero(fleet: Fleet, testbed: Any) -> None:
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=10)
    assert fleet.apply().returncode == 0
    old_id = container_ids(fleet)[fleet.container("chat-llm@1", 0)]
    endpoint = fleet.endpoint("chat-llm@1")

    fleet.models[0]["image"] = testbed.images.nim_standin_v2
    fleet.models[0]["env"] = {"STANDIN_NEVER_READY": "1"}
    fleet.models[0]["nim"]["startup_timeout_s"] = 4
    r = fleet.apply()
    assert r.returncode == ExitCode.ROLLOUT_FAILED, r.stdout + r.stderr
    assert "not ready within 4 s" in r.stdout
    assert "last log lines" in r.stdout
    # The old container still serves, the new one is gone.
    assert container_ids(fleet) == {fleet.container("chat-llm@1", 0): old_id}
    assert httpx.get(endpoint + "/v1/health/ready").status_code == 200
    with StateStore(fleet.state) as store:
        rollout = store.rollouts(1)[0]
        assert rollout.outcome == "failed"
        (step,) = store.steps(rollout.id)
        assert step.outcome == "failed" and "Selected profile" in step.log_tail
        assert store.latest_revision("chat-llm@1", outcome=None).outcome == "failed"


def test_hand_made_drift_is_planned_and_repaired(fleet: Fleet, testbed: Any) -> None:
    fleet.nim("a", testbed.images.nim_standin, memory=10)
    fleet.nim("b", testbed.images.nim_standin, memory=10)
    assert fleet.apply().returncode == 0
    api = testbed.client().api
    api.stop(fleet.container("a@1", 0), timeout=1)
    api.remove_container(fleet.container("b@1", 0), force=True)
    # An unlabelled container is never touched.
    api.create_container(testbed.images.tiny, name="not-managed-by-fleetctl", labels={"io.fleetctl.test": "1"})

    plan = json.loads(fleet.cli("plan", "--output", "json").stdout)
    kinds = {a["deployment"]: (a["kind"], a["reason"]) for a in plan["actions"]}
    assert kinds["a@1"] == ("recreate", "drift: container is exited")
    assert kinds["b@1"][0] == "create"

    assert fleet.apply().returncode == 0
    assert {d["deployment"]: d["state"] for d in fleet.status()["deployments"]} == {"a@1": "ok", "b@1": "ok"}
    assert api.inspect_container("not-managed-by-fleetctl")["State"]["Status"] == "created"


def test_two_hosts_spread_replicas_and_down_removes_everything(tmp_path: Path, testbed: Any, docker_cleanup: Any) -> None:
    fleet = Fleet(tmp_path, testbed, hosts={"host-b": testbed.host_b, "host-c": testbed.host_c})
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=10, replicas=2)
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    replicas = fleet.deployment("chat-llm@1")["replicas"]
    assert sorted(r["host"] for r in replicas) == ["host-b", "host-c"]
    assert len(container_ids(fleet, "b")) == 1
    assert len(container_ids(fleet, "c")) == 1
    for rep in replicas:
        assert httpx.get(rep["endpoint"] + "/v1/health/ready").status_code == 200

    down = fleet.cli("down", "--yes", "--state", str(fleet.state))
    assert down.returncode == 0, down.stderr
    assert container_ids(fleet, "b") == {} and container_ids(fleet, "c") == {}


def test_unreachable_host_is_reported_and_blocks_only_its_changes(tmp_path: Path, testbed: Any, docker_cleanup: Any) -> None:
    fleet = Fleet(tmp_path, testbed, hosts={"host-a": testbed.host_a, "gone": "unix:///run/fleetctl-testbed/missing.sock"})
    fleet.nim("here", testbed.images.nim_standin, memory=10, hosts={"name": "host-a"})
    fleet.nim("there", testbed.images.nim_standin, memory=10, hosts={"name": "gone"})
    status = fleet.status()
    assert [h["reachable"] for h in status["hosts"]] == [True, False]
    r = fleet.apply()
    assert r.returncode == ExitCode.HOST_UNREACHABLE, r.stdout + r.stderr
    assert "host gone unreachable" in r.stdout
    assert "skipped: host unreachable" in r.stdout
    assert fleet.container("here@1", 0) in container_ids(fleet)


def test_the_lock_refuses_a_second_apply_with_the_holder(fleet: Fleet, testbed: Any) -> None:
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=10)
    with StateLock(fleet.state, "apply (test holder)"):
        t0 = time.monotonic()
        r = fleet.apply()
        elapsed = time.monotonic() - t0
    assert r.returncode == ExitCode.LOCKED, r.stdout + r.stderr
    assert f"pid {os.getpid()}" in r.stderr and "apply (test holder)" in r.stderr
    assert elapsed < 5  # refused promptly (python start-up included), not after a long wait
    assert container_ids(fleet) == {}


def test_saved_plan_is_refused_once_the_fleet_changed(fleet: Fleet, testbed: Any) -> None:
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=10)
    saved = fleet.tmp / "plan.json"
    assert fleet.cli("plan", "-o", str(saved)).returncode == 0
    labels = {
        "io.fleetctl.owner": "fleetctl",
        "io.fleetctl.fleet": fleet.name,
        "io.fleetctl.deployment": "chat-llm@1",
        "io.fleetctl.replica": "0",
    }
    testbed.client().api.create_container(testbed.images.tiny, name=fleet.container("chat-llm@1", 0), labels=labels)
    r = fleet.apply("--plan", str(saved))
    assert r.returncode == ExitCode.STALE_PLAN, r.stdout + r.stderr
    assert "changed since this plan was made" in r.stderr


def test_saved_plan_applies_when_nothing_moved(fleet: Fleet, testbed: Any) -> None:
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=10)
    saved = fleet.tmp / "plan.json"
    assert fleet.cli("plan", "-o", str(saved)).returncode == 0
    r = fleet.apply("--plan", str(saved))
    assert r.returncode == 0, r.stdout + r.stderr
    assert fleet.container("chat-llm@1", 0) in container_ids(fleet)


def test_the_canary_api_key_never_reaches_state_plan_logs_or_output(fleet: Fleet, testbed: Any) -> None:
    fleet.nim("chat-llm", testbed.images.nim_standin, memory=10)
    fleet.nim("broken", testbed.images.nim_standin_v2, memory=10, env={"STANDIN_NEVER_READY": "1"}, timeout=3)
    fleet.apply()
    fleet.cli("plan", "--output", "json")
    fleet.cli("plan", "-o", str(fleet.tmp / "plan.json"))
    fleet.cli("status")
    # The key did reach the container that needs it...
    env = testbed.client().api.inspect_container(fleet.container("chat-llm@1", 0))["Config"]["Env"]
    assert f"NGC_API_KEY={CANARY}" in env
    # ...and nowhere else.
    for out in fleet.outputs:
        assert CANARY not in out
    for f in fleet.tmp.iterdir():
        if f.is_file():
            assert CANARY.encode() not in f.read_bytes(), f
    for name in container_ids(fleet):
        assert CANARY not in testbed.client().api.logs(name).decode(errors="replace")


def test_rollback_restores_the_exact_earlier_revision_of_one_pinned_version(fleet: Fleet, testbed: Any) -> None:
    chat = fleet.nim("chat-llm", testbed.images.nim_standin, memory=10, version="v4")
    chat["pins"] = [{"version": "v3", "image": testbed.images.nim_standin, "customers": ["acme-corp"]}]
    assert fleet.apply().returncode == 0
    v4_id = container_ids(fleet)[fleet.container("chat-llm@v4", 0)]

    chat["pins"][0]["image"] = testbed.images.nim_standin_v2
    assert fleet.apply().returncode == 0
    api = testbed.client().api
    assert api.inspect_container(fleet.container("chat-llm@v3", 0))["Config"]["Image"] == testbed.images.nim_standin_v2

    r = fleet.cli("rollback", "chat-llm@v3", "--yes", "--state", str(fleet.state))
    assert r.returncode == 0, r.stdout + r.stderr
    assert api.inspect_container(fleet.container("chat-llm@v3", 0))["Config"]["Image"] == testbed.images.nim_standin
    assert httpx.get(fleet.endpoint("chat-llm@v3") + "/v1/health/ready").status_code == 200
    # Everyone else's version did not move.
    assert container_ids(fleet)[fleet.container("chat-llm@v4", 0)] == v4_id

    hist = json.loads(fleet.cli("history", "chat-llm@v3", "--output", "json", "--state", str(fleet.state), inventory=False).stdout)
    revs = {r["number"]: (r["outcome"], r["image"]) for r in hist["revisions"]}
    assert revs == {
        1: ("applied", testbed.images.nim_standin),
        2: ("rolled_back", testbed.images.nim_standin_v2),
        3: ("applied", testbed.images.nim_standin),
    }
    # The inventory still asks for the newer image: plan shows the roll-forward.
    plan = json.loads(fleet.cli("plan", "--output", "json").stdout)
    (change,) = [a for a in plan["actions"] if a["kind"] != "keep"]
    assert change["deployment"] == "chat-llm@v3" and "nim-standin:2" in change["reason"]

    rollouts = json.loads(fleet.cli("history", "--output", "json", "--state", str(fleet.state), inventory=False).stdout)["rollouts"]
    assert [r["command"] for r in rollouts][:1] == ["rollback chat-llm@v3"]


def test_the_demo_inventory_applies_triton_models_answer_and_nim_stand_ins_are_ready(
    tmp_path: Path, testbed: Any, docker_cleanup: Any
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
    inv = tmp_path / "demo.yaml"
    inv.write_text(yaml.safe_dump(doc, sort_keys=False))
    r = run_fleetctl("apply", "-f", str(inv), "--yes", "--state", str(tmp_path / "state.db"))
    assert r.returncode == 0, r.stdout + r.stderr

    status = json.loads(run_fleetctl("status", "-f", str(inv), "--output", "json").stdout)
    endpoints = {d["deployment"]: d["replicas"][0]["endpoint"] for d in status["deployments"]}
    assert {d["deployment"]: d["state"] for d in status["deployments"]} == dict.fromkeys(endpoints, "ok")

    import numpy as np
    import tritonclient.http as tc

    for model in ("embeddings", "reranker", "safety-guard"):
        client = tc.InferenceServerClient(endpoints[f"{model}@1"].removeprefix("http://"))
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
    for dep in ("chat-llm@v4", "chat-llm@v3"):
        assert httpx.get(endpoints[dep] + "/v1/health/ready").status_code == 200
        reply = httpx.post(
            endpoints[dep] + "/v1/chat/completions",
            json={"model": "chat-llm", "messages": [{"role": "user", "content": "hi"}]},
        ).json()
        assert reply["choices"][0]["message"]["content"]
    again = run_fleetctl("apply", "-f", str(inv), "--yes", "--state", str(tmp_path / "state.db"))
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_an_image_that_cannot_be_had_fails_that_replica_with_a_clear_reason(fleet: Fleet, testbed: Any) -> None:
    fleet.nim("ok", testbed.images.nim_standin, memory=10)
    fleet.nim("ghost", "fleetctl-testbed/does-not-exist:9", memory=10)
    r = fleet.apply()
    assert r.returncode == ExitCode.ROLLOUT_FAILED, r.stdout + r.stderr
    assert "fleetctl-testbed/does-not-exist:9 is not on host host-a and pulling it failed" in r.stdout
    assert set(container_ids(fleet)) == {fleet.container("ok@1", 0)}
