"""fleetctl against remote Docker hosts for real: an engine reached over ssh:// (a real
sshd, the system ssh client) and one over tcp:// with TLS client verification, each in its
own network namespace with its own address (tests/testbed/netns.sh).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import certifi
import httpx
import yaml

from fleetctl.errors import ExitCode

CHAT = {"model": "chat-llm", "messages": [{"role": "user", "content": "hello"}]}
DEMO = Path(__file__).resolve().parents[2] / "inventory" / "demo.yaml"


def _served_by(url: str, headers: dict[str, str] | None = None) -> str:
    r = httpx.post(url + "/v1/chat/completions", json=CHAT, headers=headers or {}, timeout=10)
    assert r.status_code == 200, r.text
    return r.headers["x-fleetctl-deployment"]


def test_plan_apply_status_health_and_rollback_converge_a_fleet_on_the_ssh_and_tls_hosts(
    remote_fleet: Any,
) -> None:
    fleet = remote_fleet
    chat = fleet.nim(
        "chat-llm", fleet.testbed.images.nim_standin, memory=10, hosts={"name": "ssh-host"}
    )
    fleet.nim("reranker", fleet.testbed.images.nim_standin, memory=10, hosts={"name": "tls-host"})

    plan = fleet.cli("plan", "--output", "json", "--state", str(fleet.state))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    kinds = {
        (a["deployment"], a["kind"])
        for a in json.loads(plan.stdout)["actions"]
        if a.get("deployment")
    }
    assert {("chat-llm@1", "create"), ("reranker@1", "create")} <= kinds

    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    assert set(fleet.remote_ids("ssh")) >= {fleet.container("chat-llm@1")}
    assert set(fleet.remote_ids("tls")) >= {fleet.container("reranker@1")}
    # The TLS host's own CA holds even where the environment names another bundle
    # (requests would otherwise let REQUESTS_CA_BUNDLE replace it).
    st = fleet.cli("status", "--output", "json", env={"REQUESTS_CA_BUNDLE": certifi.where()})
    assert st.returncode == 0, st.stdout + st.stderr
    status = json.loads(st.stdout)
    assert {h["host"]: h["reachable"] for h in status["hosts"]} == {
        "ssh-host": True,
        "tls-host": True,
    }
    # Endpoints are the namespaces' addresses, and they answer from here.
    endpoints = {d["deployment"]: d["replicas"][0]["endpoint"] for d in status["deployments"]}
    assert endpoints["chat-llm@1"].startswith(f"http://{fleet.address['ssh-host']}:")
    assert endpoints["reranker@1"].startswith(f"http://{fleet.address['tls-host']}:")
    for url in endpoints.values():
        assert httpx.get(url + "/v1/health/ready", timeout=5).status_code == 200
    # Each front door serves the whole fleet, the other host's replicas included.
    assert _served_by(fleet.front_door_url("tls-host")) == "chat-llm@1"

    # Version 2, with acme-corp pinned to version 1.
    chat.update(version="2", image=fleet.testbed.images.nim_standin_v2)
    chat["pins"] = [
        {"version": "1", "image": fleet.testbed.images.nim_standin, "customers": ["acme-corp"]}
    ]
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    door = fleet.front_door_url("ssh-host")
    assert _served_by(door) == "chat-llm@2"
    assert _served_by(door, {"X-Customer": "acme-corp"}) == "chat-llm@1"

    health = fleet.cli("health", "--output", "json", "--state", str(fleet.state))
    assert health.returncode == 0, health.stdout + health.stderr

    back = fleet.cli("rollback", "chat-llm@1", "--yes", "--state", str(fleet.state))
    assert back.returncode == 0, back.stdout + back.stderr
    assert _served_by(door) == "chat-llm@1"
    again = fleet.apply()
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr


def test_the_demo_fleet_converges_on_the_ssh_and_tls_hosts_and_down_removes_it(
    remote_fleet: Any,
) -> None:
    """inventory/demo.yaml itself (its models, pin, front door image and GPUs), with its one
    host swapped for the two remote ones; the models alternate between them in demo.yaml's
    order, so both hosts serve and each front door reaches the other's replicas."""
    fleet = remote_fleet
    demo = yaml.safe_load(DEMO.read_text())
    (demo_host,) = demo["hosts"]
    fleet.gpus = dict(demo_host["gpus"])
    # The front door's port is the demo host's; here each host's default (the top of its range).
    fleet.front_door = {k: v for k, v in demo["front_door"].items() if k != "port"}
    names = list(fleet.hosts)
    for i, m in enumerate(demo["models"]):
        m["hosts"] = {"name": names[i % len(names)]}
        if m.get("triton"):  # relative to demo.yaml, which this inventory is not beside
            m["triton"]["model_repository"] = str(fleet.testbed.model_repository)
        if m.get("nim"):
            m["nim"]["cache_dir"] = str(fleet.tmp / "nim-cache")
    fleet.models = demo["models"]
    state = ("--state", str(fleet.state))

    r = fleet.apply(timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr

    st = fleet.cli("status", "--output", "json", *state)
    assert st.returncode == 0, st.stdout + st.stderr
    status = json.loads(st.stdout)
    assert {h["host"]: h["reachable"] for h in status["hosts"]} == {
        "ssh-host": True,
        "tls-host": True,
    }
    # Every deployment of demo.yaml (each model's version and its pins) runs and is ok.
    wanted = {
        f"{m['name']}@{v}"
        for m in demo["models"]
        for v in [m["version"], *(p["version"] for p in m.get("pins", []))]
    }
    # A Triton model in a shared Triton server is as ok as its server.
    states = {
        name: d["state"]
        for d in status["deployments"]
        for name in (
            [m["deployment"] for m in d["members"]] if d.get("members") else [d["deployment"]]
        )
    }
    assert states == dict.fromkeys(wanted, "ok"), states
    hosts_used = {
        rep["endpoint"].split("//")[1].split(":")[0]
        for d in status["deployments"]
        for rep in d["replicas"]
    }
    assert hosts_used == set(fleet.address.values()), hosts_used  # spread over both hosts
    doors = {d["url"]: d["routes_current"] for d in status["front_doors"]}
    assert doors == {fleet.front_door_url(h): True for h in names}, doors

    # Through each host's front door: every model, the pin by its customer header.
    chat = next(m for m in demo["models"] if m["runtime"] == "nim")
    tritons = [name for m in demo["models"] if m.get("triton") for name in m["triton"]["models"]]
    assert tritons, "demo.yaml has Triton models"
    for host in names:
        door = fleet.front_door_url(host)
        assert _served_by(door) == f"{chat['name']}@{chat['version']}"
        for pin in chat.get("pins", []):
            for customer in pin["customers"]:
                assert (
                    _served_by(door, {"X-Customer": customer}) == f"{chat['name']}@{pin['version']}"
                )
        for name in tritons:
            ready = httpx.get(f"{door}/v2/models/{name}/ready", timeout=10)
            assert ready.status_code == 200, (host, name, ready.status_code, ready.text)

    health = fleet.cli("health", "--output", "json", *state)
    assert health.returncode == 0, health.stdout + health.stderr

    again = fleet.apply()
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr

    down = fleet.cli("down", "--yes", *state)
    assert down.returncode == 0, down.stdout + down.stderr
    assert fleet.remote_ids("ssh") == {} and fleet.remote_ids("tls") == {}
    for host in names:
        try:
            gone = httpx.get(fleet.front_door_url(host) + "/v1/models", timeout=5)
        except httpx.HTTPError:
            continue
        raise AssertionError(
            f"the front door of {host} still answers after down: {gone.status_code}"
        )


def _fault_ends_in_exit_6(fleet: Any, host: str, fault: Any) -> None:
    fleet.front_door["enabled"] = False  # one container is enough to need the host
    fleet.nim("chat-llm", fleet.testbed.images.nim_standin, memory=10, hosts={"name": host})
    with fault():
        t0 = time.monotonic()
        r = fleet.apply(timeout=120)
        elapsed = time.monotonic() - t0
    out = r.stdout + r.stderr
    assert r.returncode == ExitCode.HOST_UNREACHABLE, out
    assert f"host {host} unreachable" in out and "Traceback" not in out
    assert elapsed < 45, elapsed  # a timeout, not a hang
    print(f"figure: {host}: exit {r.returncode} after {elapsed:.1f} s")
    # Once the network is back, the same apply goes through: the fault wedged nothing.
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    assert fleet.container("chat-llm@1") in fleet.remote_ids(host.removesuffix("-host"))


def test_a_frozen_sshd_ends_in_a_timeout_and_exit_6(remote_fleet: Any) -> None:
    _fault_ends_in_exit_6(remote_fleet, "ssh-host", remote_fleet.ns.sshd_stopped)


def test_a_dropped_network_to_the_tls_host_ends_in_a_timeout_and_exit_6(remote_fleet: Any) -> None:
    _fault_ends_in_exit_6(remote_fleet, "tls-host", remote_fleet.ns.tls_dropped)
