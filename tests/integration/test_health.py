"""`fleetctl health` against real Docker engines, a real Triton server and the NIM stand-in."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fleetctl.errors import ExitCode

CANARY = "nvapi-CANARY-health-4d2a91"
# 26000-26999 belongs to these tests; blocks of 100 per host, started where the pid
# says so that two sessions on the same engines seldom pick the same block.
_blocks = itertools.cycle([26000 + 100 * ((os.getpid() + i) % 10) for i in range(10)])

# Until app.py registers `health`, run it on the real app through a two-line shim.
class HealthFleet:
    """An inventory on the test bed and the CLI calls the tests make against it."""

    def __init__(self, tmp_path: Path, testbed: Any, hosts: dict[str, str] | None = None) -> None:
        self.tmp = tmp_path
        self.testbed = testbed
        self.path = tmp_path / "fleet.yaml"
        self.state = tmp_path / "state.db"
        self.prom = tmp_path / "textfile" / "fleetctl.prom"
        self.hosts = hosts or {"host-a": testbed.host_a}
        self.ranges = {name: next(_blocks) for name in self.hosts}
        self.name = f"health-{uuid.uuid4().hex[:8]}"
        self.models: list[dict[str, Any]] = []
        self.outputs: list[str] = []

    def nim(self, name: str, *, env: dict[str, str] | None = None, **kw: Any) -> None:
        self.models.append(
            {
                "name": name,
                "version": "1",
                "runtime": "nim",
                "image": self.testbed.images.nim_standin,
                "gpu_memory_gb": 10,
                "env": env or {},
                "nim": {"served_model_name": name, "cache_dir": str(self.tmp / "nim-cache"), "startup_timeout_s": 60},
                **kw,
            }
        )

    def triton(self, name: str) -> None:
        self.models.append(
            {
                "name": name,
                "version": "1",
                "runtime": "triton",
                "image": self.testbed.images.triton,
                "gpu_memory_gb": 2,
                "hosts": {"name": "host-a"},
                "triton": {
                    "model_repository": str(self.testbed.model_repository),
                    "models": [name],
                    "server_binary": "/opt/tritonserver/bin/tritonserver",
                    "startup_timeout_s": 120,
                },
            }
        )

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
        self.path.write_text(yaml.safe_dump({"fleet": self.name, "hosts": hosts, "models": self.models}, sort_keys=False))

    def run(self, argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        self.write()
        env = {**os.environ, "NGC_API_KEY": CANARY, "COLUMNS": "200"}
        r = subprocess.run(
            [*argv, "-f", str(self.path)], capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
        )
        self.outputs.append(r.stdout + r.stderr)
        return r

    def apply(self) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-m", "fleetctl", "apply", "--yes", "--state", str(self.state)])

    def health(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-m", "fleetctl", "health", *args], timeout=120)

    def health_json(self) -> tuple[int, dict[str, Any]]:
        r = self.health("--output", "json", "--textfile", str(self.prom))
        assert r.returncode in (0, ExitCode.UNHEALTHY, ExitCode.HOST_UNREACHABLE), r.stdout + r.stderr
        return r.returncode, json.loads(r.stdout)  # stdout is JSON and nothing else

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = self.prom.read_text()
        assert CANARY not in text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def container(self, deployment: str, replica: int = 0) -> str:
        return f"fleetctl-{self.name}-{deployment.replace('@', '-')}-{replica}"


def replicas(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{d['deployment']}#{r['replica']}": r for d in data["deployments"] for r in d["replicas"]}


def deployments(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["deployment"]: d for d in data["deployments"]}


def healthy_gauge(m: dict[Any, float], deployment: str, host: str) -> float:
    return m[("fleetctl_replica_healthy", (("deployment", deployment), ("host", host), ("replica", "0")))]


@pytest.fixture
def fleet(tmp_path: Path, testbed: Any, docker_cleanup: Any) -> HealthFleet:
    return HealthFleet(tmp_path, testbed)


def test_healthy_fleet_then_a_stopped_nim_and_an_unloaded_triton_model(fleet: HealthFleet, testbed: Any) -> None:
    fleet.nim("chat-llm")
    fleet.triton("embeddings")
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr

    code, data = fleet.health_json()
    assert code == 0, data
    assert data["exit_code"] == 0 and data["summary"]["healthy"] == 2
    reps = replicas(data)
    assert {k: v["state"] for k, v in reps.items()} == {"chat-llm@1#0": "healthy", "embeddings@1#0": "healthy"}
    for rep in reps.values():
        assert rep["endpoint"].startswith("http://127.0.0.1:") and rep["probe_latency_ms"] is not None
    m = fleet.metrics()
    assert healthy_gauge(m, "chat-llm@1", "host-a") == 1
    assert healthy_gauge(m, "embeddings@1", "host-a") == 1
    assert m[("fleetctl_host_reachable", (("host", "host-a"),))] == 1
    assert m[("fleetctl_deployment_desired_replicas", (("deployment", "chat-llm@1"),))] == 1
    print(f"\nhealth sweep, healthy 2-replica fleet (NIM stand-in + Triton): {data['duration_s']:.3f} s; "
          f"probes {reps['chat-llm@1#0']['probe_latency_ms']} ms (NIM), {reps['embeddings@1#0']['probe_latency_ms']} ms (Triton)")

    table = fleet.health()
    assert table.returncode == 0, table.stdout + table.stderr
    assert "2/2 replicas healthy" in table.stdout

    import tritonclient.http as tc

    testbed.client("a").api.stop(fleet.container("chat-llm@1"), timeout=1)
    url = reps["embeddings@1#0"]["endpoint"].removeprefix("http://")
    tc.InferenceServerClient(url).unload_model("embeddings")

    code, data = fleet.health_json()
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
    m = fleet.metrics()
    assert healthy_gauge(m, "chat-llm@1", "host-a") == 0
    assert healthy_gauge(m, "embeddings@1", "host-a") == 0
    assert m[("fleetctl_deployment_healthy_replicas", (("deployment", "embeddings@1"),))] == 0
    assert m[("fleetctl_deployment_drift", (("deployment", "chat-llm@1"),))] == 1

    table = fleet.health()
    assert table.returncode == ExitCode.UNHEALTHY
    assert "0/2 replicas healthy" in table.stdout and "stopped" in table.stdout
    for out in fleet.outputs:
        assert CANARY not in out


def test_running_container_that_never_gets_ready_is_unhealthy_with_the_failing_check(fleet: HealthFleet, testbed: Any) -> None:
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

    code, data = fleet.health_json()
    assert code == ExitCode.UNHEALTHY
    (dep,) = data["deployments"]
    (rep,) = dep["replicas"]
    assert dep["state"] == "down" and dep["drift"] is False
    assert rep["state"] == "unhealthy"
    assert rep["container_state"] == "running"
    assert rep["detail"] in ("GET /v1/health/ready: 503", "GET /v1/health/ready: ConnectError"), rep
    assert rep["check"] == "GET /v1/health/ready answers 200"
    assert rep["probe_latency_ms"] < 5000
    assert fleet.metrics()[("fleetctl_replica_state", (
        ("deployment", "chat-llm@1"), ("fleetctl_replica_state", "unhealthy"), ("host", "host-a"), ("replica", "0"),
    ))] == 1


def test_an_unreachable_host_alone_exits_6_and_its_replicas_are_unknown(tmp_path: Path, testbed: Any, docker_cleanup: Any) -> None:
    fleet = HealthFleet(tmp_path, testbed, hosts={"host-a": testbed.host_a, "gone": "unix:///run/fleetctl-testbed/missing.sock"})
    fleet.nim("here", hosts={"name": "host-a"})
    fleet.nim("there", hosts={"name": "gone"})
    assert fleet.apply().returncode == ExitCode.HOST_UNREACHABLE

    code, data = fleet.health_json()
    assert code == ExitCode.HOST_UNREACHABLE
    assert [(h["host"], h["reachable"]) for h in data["hosts"]] == [("host-a", True), ("gone", False)]
    reps = replicas(data)
    assert reps["here@1#0"]["state"] == "healthy"
    assert reps["there@1#0"]["state"] == "unknown" and "gone unreachable" in reps["there@1#0"]["detail"]
    assert deployments(data)["there@1"]["state"] == "unknown"
    m = fleet.metrics()
    assert m[("fleetctl_host_reachable", (("host", "gone"),))] == 0
    assert healthy_gauge(m, "here@1", "host-a") == 1
