"""`fleetctl health` against real Docker engines, a real Triton server and the NIM stand-in."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from fleetctl.errors import ExitCode

def health(fleet: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return fleet.cli("health", *args, timeout=120)


def health_json(fleet: Any) -> tuple[int, dict[str, Any]]:
    r = health(fleet, "--output", "json", "--textfile", str(fleet.prom))
    assert r.returncode in (0, ExitCode.UNHEALTHY, ExitCode.HOST_UNREACHABLE), r.stdout + r.stderr
    return r.returncode, json.loads(r.stdout)  # stdout is JSON and nothing else


def metrics(fleet: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = fleet.prom.read_text()
    assert fleet.canary not in text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def replicas(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{d['deployment']}#{r['replica']}": r for d in data["deployments"] for r in d["replicas"]}


def deployments(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["deployment"]: d for d in data["deployments"]}


def healthy_gauge(m: dict[Any, float], deployment: str, host: str) -> float:
    return m[("fleetctl_replica_healthy", (("deployment", deployment), ("host", host), ("replica", "0")))]


def test_healthy_fleet_then_a_stopped_nim_and_an_unloaded_triton_model(fleet: Any, testbed: Any) -> None:
    fleet.nim("chat-llm")
    fleet.triton("embeddings", hosts={"name": "host-a"})
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr

    code, data = health_json(fleet)
    assert code == 0, data
    assert data["exit_code"] == 0 and data["summary"]["healthy"] == 2
    reps = replicas(data)
    assert {k: v["state"] for k, v in reps.items()} == {"chat-llm@1#0": "healthy", "embeddings@1#0": "healthy"}
    for rep in reps.values():
        assert rep["endpoint"].startswith("http://127.0.0.1:") and rep["probe_latency_ms"] is not None
    m = metrics(fleet)
    assert healthy_gauge(m, "chat-llm@1", "host-a") == 1
    assert healthy_gauge(m, "embeddings@1", "host-a") == 1
    assert m[("fleetctl_host_reachable", (("host", "host-a"),))] == 1
    assert m[("fleetctl_deployment_desired_replicas", (("deployment", "chat-llm@1"),))] == 1
    print(f"\nhealth sweep, healthy 2-replica fleet (NIM stand-in + Triton): {data['duration_s']:.3f} s; "
          f"probes {reps['chat-llm@1#0']['probe_latency_ms']} ms (NIM), {reps['embeddings@1#0']['probe_latency_ms']} ms (Triton)")

    table = health(fleet)
    assert table.returncode == 0, table.stdout + table.stderr
    assert "2/2 replicas healthy" in table.stdout

    import tritonclient.http as tc

    testbed.client("a").api.stop(fleet.container("chat-llm@1"), timeout=1)
    url = reps["embeddings@1#0"]["endpoint"].removeprefix("http://")
    tc.InferenceServerClient(url).unload_model("embeddings")

    code, data = health_json(fleet)
    assert code == ExitCode.UNHEALTHY
    reps, deps = replicas(data), deployments(data)
    chat, emb = reps["chat-llm@1#0"], reps["embeddings@1#0"]
    assert chat["state"] == "stopped" and chat["container_state"] == "exited"
    assert chat["drift"] == "drift: container is exited"
    assert deps["chat-llm@1"]["state"] == "down" and deps["chat-llm@1"]["drift"] is True
    assert emb["state"] == "unhealthy" and emb["container_state"] == "running"
    # While the unload runs, Triton's server readiness fails too (400); once it is done
    # only the model check does. Either way the model check says which model.
    assert emb["detail"] in ("GET /v2/health/ready: 400; model embeddings: not ready", "model embeddings: not ready"), emb
    assert emb["check"] in ("GET /v2/health/ready answers 200", "model embeddings is READY"), emb
    m = metrics(fleet)
    assert healthy_gauge(m, "chat-llm@1", "host-a") == 0
    assert healthy_gauge(m, "embeddings@1", "host-a") == 0
    assert m[("fleetctl_deployment_healthy_replicas", (("deployment", "embeddings@1"),))] == 0
    assert m[("fleetctl_deployment_drift", (("deployment", "chat-llm@1"),))] == 1

    table = health(fleet)
    assert table.returncode == ExitCode.UNHEALTHY
    assert "0/2 replicas healthy" in table.stdout and "stopped" in table.stdout
    for out in fleet.outputs:
        assert fleet.canary not in out


def test_running_container_that_never_gets_ready_is_unhealthy_with_the_failing_check(fleet: Any, testbed: Any) -> None:
    fleet.nim("chat-llm")
    assert fleet.apply().returncode == 0
    # Replace the container by hand with one that carries the same labels (so the plan
    # sees nothing to do) but whose server never becomes ready: only a probe can tell.
    api = testbed.client("a").api
    name = fleet.container("chat-llm@1")
    info = api.inspect_container(name)
    api.remove_container(name, force=True)
    env = [e for e in info["Config"]["Env"] if not e.startswith("STANDIN_")] + ["STANDIN_NEVER_READY=1"]
    created = api.create_container(
        info["Config"]["Image"],
        name=name,
        environment=env,
        labels=info["Config"]["Labels"],
        host_config=api.create_host_config(network_mode="host"),
    )
    api.start(created["Id"])
    testbed.wait_until(lambda: api.inspect_container(name)["State"]["Running"], 30, what="stand-in running")

    code, data = health_json(fleet)
    assert code == ExitCode.UNHEALTHY
    (dep,) = data["deployments"]
    (rep,) = dep["replicas"]
    assert dep["state"] == "down" and dep["drift"] is False
    assert rep["state"] == "unhealthy"
    assert rep["container_state"] == "running"
    assert rep["detail"] in ("GET /v1/health/ready: 503", "GET /v1/health/ready: ConnectError"), rep
    assert rep["check"] == "GET /v1/health/ready answers 200"
    assert rep["probe_latency_ms"] < 5000
    assert metrics(fleet)[("fleetctl_replica_state", (
        ("deployment", "chat-llm@1"), ("fleetctl_replica_state", "unhealthy"), ("host", "host-a"), ("replica", "0"),
    ))] == 1


def test_an_unreachable_host_alone_exits_6_and_its_replicas_are_unknown(make_fleet: Any, testbed: Any) -> None:
    fleet = make_fleet(hosts={"host-a": testbed.host_a, "gone": "unix:///run/fleetctl-testbed/missing.sock"})
    fleet.nim("here", hosts={"name": "host-a"})
    fleet.nim("there", hosts={"name": "gone"})
    assert fleet.apply().returncode == ExitCode.HOST_UNREACHABLE

    code, data = health_json(fleet)
    assert code == ExitCode.HOST_UNREACHABLE
    assert [(h["host"], h["reachable"]) for h in data["hosts"]] == [("host-a", True), ("gone", False)]
    reps = replicas(data)
    assert reps["here@1#0"]["state"] == "healthy"
    assert reps["there@1#0"]["state"] == "unknown" and "gone unreachable" in reps["there@1#0"]["detail"]
    assert deployments(data)["there@1"]["state"] == "unknown"
    m = metrics(fleet)
    assert m[("fleetctl_host_reachable", (("host", "gone"),))] == 0
    assert healthy_gauge(m, "here@1", "host-a") == 1
