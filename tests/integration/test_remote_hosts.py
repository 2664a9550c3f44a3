"""fleetctl against remote Docker hosts for real: an engine reached over ssh:// (a real
sshd, the system ssh client) and one over tcp:// with TLS client verification, each in its
own network namespace with its own address (tests/testbed/netns.sh).
"""

from __future__ import annotations

import json
import time
from typing import Any

import certifi
import httpx

from fleetctl.errors import ExitCode

CHAT = {"model": "chat-llm", "messages": [{"role": "user", "content": "hello"}]}


def _served_by(url: str, headers: dict[str, str] | None = None) -> str:
    r = httpx.post(url + "/v1/chat/completions", json=CHAT, headers=headers or {}, timeout=10)
    assert r.status_code == 200, r.text
    return r.headers["x-fleetctl-deployment"]


def test_plan_apply_status_health_and_rollback_converge_a_fleet_on_the_ssh_and_tls_hosts(remote_fleet: Any) -> None:
    fleet = remote_fleet
    chat = fleet.nim("chat-llm", fleet.testbed.images.nim_standin, memory=10, hosts={"name": "ssh-host"})
    fleet.nim("reranker", fleet.testbed.images.nim_standin, memory=10, hosts={"name": "tls-host"})

    plan = fleet.cli("plan", "--output", "json", "--state", str(fleet.state))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    kinds = {(a["deployment"], a["kind"]) for a in json.loads(plan.stdout)["actions"] if a.get("deployment")}
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
    assert {h["host"]: h["reachable"] for h in status["hosts"]} == {"ssh-host": True, "tls-host": True}
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
    chat["pins"] = [{"version": "1", "image": fleet.testbed.images.nim_standin, "customers": ["acme-corp"]}]
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
