"""`fleetctl health` against real Docker engines, a real Triton server and the NIM stand-in.

Each verdict on real containers: all healthy; a stopped container (critical, then started
by `--heal`); a removed one (recreated by `--heal` through apply's path); a Triton model
unloaded by hand (drift; `--heal` loads it again); a fallback profile and a latency over
the SLA (degraded); a container never ready (starting within its grace, then critical);
a crash loop; an unreachable host. Every sweep keeps its memory in the fleet's own state
file, and every textfile is read back with prometheus_client's parser.
"""

from __future__ import annotations

import subprocess
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from fleetctl.errors import ExitCode

from .output_schemas import checked

Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]
CODES = (ExitCode.OK, ExitCode.UNHEALTHY, ExitCode.HOST_UNREACHABLE, ExitCode.DEGRADED)


def health(fleet: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return fleet.cli("health", "--state", str(fleet.state), *args, timeout=180)


def health_json(fleet: Any, *args: str) -> tuple[int, dict[str, Any]]:
    r = health(fleet, "--output", "json", "--textfile", str(fleet.prom), *args)
    assert r.returncode in CODES, r.stdout + r.stderr
    data = checked("health", r.stdout)  # stdout is JSON and nothing else, of its schema
    assert data["exit_code"] == r.returncode
    return r.returncode, data


def metrics(fleet: Any) -> Metrics:
    text = fleet.prom.read_text()
    assert fleet.canary not in text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def gauge(m: Metrics, name: str, deployment: str, host: str = "host-a", **labels: str) -> float:
    return m[
        (
            name,
            tuple(
                sorted({"deployment": deployment, "host": host, "replica": "0", **labels}.items())
            ),
        )
    ]


def replicas(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{d['deployment']}#{r['replica']}": r for d in data["deployments"] for r in d["replicas"]
    }


def deployments(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["deployment"]: d for d in data["deployments"]}


def heal_actions(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{a['deployment']}#{a['replica']}": a for a in data["heal"]["actions"]}


def triton_client(endpoint: str) -> Any:
    import tritonclient.http as tc

    return tc.InferenceServerClient(endpoint.removeprefix("http://"))


def warm_up(endpoint: str) -> None:
    """The first inference of a freshly loaded Python-backend model takes tens of ms."""
    import tritonclient.http as tc

    text = tc.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"warm up"], dtype=object))
    triton_client(endpoint).infer("embeddings", [text])


def test_healthy_then_stopped_nim_and_unloaded_triton_model_are_critical_and_heal_repairs_them(
    fleet: Any, testbed: Any
) -> None:
    fleet.extra = {
        "triton_servers": "dedicated"
    }  # per-deployment verdicts and metrics, one container each
    fleet.nim("chat-llm", sla_ms=2000)
    fleet.triton(
        "embeddings",
        hosts={"name": "host-a"},
        health={"sample": {"inputs": {"TEXT": ["is this healthy?"]}}},
    )
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    warm_up(fleet.endpoint("embeddings@1"))

    code, data = health_json(fleet)
    assert code == 0, data
    assert (
        data["summary"]["verdicts"]["ok"] == 2
        and data["memory"] is True
        and data["failures_needed"] == 3
    )
    reps = replicas(data)
    chat, emb = reps["chat-llm@1#0"], reps["embeddings@1#0"]
    assert (chat["verdict"], chat["state"], chat["reasons"], chat["restart_count"]) == (
        "ok",
        "healthy",
        [],
        0,
    )
    assert (
        chat["profile"]["name"] == "tensorrt_llm-h100-fp8-tp1-latency"
        and chat["profile"]["problem"] is None
    )
    assert (
        chat["latency"]["request"] == "POST /v1/chat/completions (1 token)"
        and chat["latency"]["over_sla"] is False
    )
    assert emb["latency"]["request"] == "infer embeddings" and emb["latency"]["ms"] < 50, emb
    assert emb["triton"] == {"missing": [], "not_ready": [], "extra": []}
    m = metrics(fleet)
    assert (
        gauge(m, "fleetctl_replica_up", "chat-llm@1") == 1
        and gauge(m, "fleetctl_replica_up", "embeddings@1") == 1
    )
    assert gauge(m, "fleetctl_sla_violation", "embeddings@1") == 0
    assert gauge(m, "fleetctl_probe_latency_seconds", "chat-llm@1") > 0
    assert m[("fleetctl_deployment_sla_seconds", (("deployment", "embeddings@1"),))] == 0.05
    assert m[("fleetctl_front_door_healthy", (("host", "host-a"),))] == 1
    print(
        f"\nhealth sweep, healthy 2-replica fleet (NIM stand-in + Triton): {data['duration_s']:.3f} s; probes "
        f"{chat['probe_latency_ms']} ms (NIM, 4 requests), {emb['probe_latency_ms']} ms (Triton, 4 requests); timed requests "
        f"{chat['latency']['ms']} ms (chat completion), {emb['latency']['ms']} ms (inference)"
    )
    table = health(fleet)
    assert table.returncode == 0 and "2/2 replicas ok" in table.stdout, table.stdout + table.stderr

    # By hand: the NIM container stopped, the Triton model unloaded, a model nobody declared loaded.
    testbed.client("a").api.stop(fleet.container("chat-llm@1"), timeout=1)
    triton = triton_client(fleet.endpoint("embeddings@1"))
    triton.unload_model("embeddings")
    triton.load_model("reranker")
    code, data = health_json(fleet)
    assert code == ExitCode.DEGRADED  # failing once, not yet --failures (3) times
    assert {r["verdict"] for r in replicas(data).values()} == {"failing"}
    code, data = health_json(fleet, "--failures", "2")
    assert code == ExitCode.UNHEALTHY
    reps, deps = replicas(data), deployments(data)
    chat, emb = reps["chat-llm@1#0"], reps["embeddings@1#0"]
    assert (chat["verdict"], chat["state"], chat["failures"], chat["container_state"]) == (
        "critical",
        "stopped",
        2,
        "exited",
    )
    assert deps["chat-llm@1"]["state"] == "down" and chat["drift"] == "drift: container is exited"
    assert (emb["verdict"], emb["state"]) == ("critical", "unhealthy")
    assert emb["triton"]["not_ready"] == [
        {"model": "embeddings", "why": "is UNAVAILABLE (unloaded)"}
    ]
    assert emb["triton"]["extra"] == ["reranker"]
    assert "drift: model embeddings is UNAVAILABLE (unloaded)" in emb["reasons"]
    assert "drift: model reranker is loaded but not declared" in emb["reasons"]
    m = metrics(fleet)
    assert gauge(m, "fleetctl_replica_up", "chat-llm@1") == 0
    assert (
        gauge(m, "fleetctl_replica_verdict", "embeddings@1", fleetctl_replica_verdict="critical")
        == 1
    )
    assert (
        gauge(
            m, "fleetctl_triton_model_drift", "embeddings@1", model="embeddings", kind="not_ready"
        )
        == 1
    )
    assert (
        gauge(m, "fleetctl_triton_model_drift", "embeddings@1", model="reranker", kind="extra") == 1
    )
    assert m[("fleetctl_health_exit_code", ())] == ExitCode.UNHEALTHY

    chat_id = fleet.ids()[fleet.container("chat-llm@1")]
    code, data = health_json(fleet, "--failures", "2", "--heal")
    acts = heal_actions(data)
    assert (acts["chat-llm@1#0"]["action"], acts["chat-llm@1#0"]["ok"]) == ("start", True), acts
    assert (
        acts["embeddings@1#0"]["action"],
        acts["embeddings@1#0"]["target"],
        acts["embeddings@1#0"]["ok"],
    ) == ("load_model", "embeddings", True), acts
    assert code == ExitCode.DEGRADED  # repaired this sweep: a warning, not a page
    assert fleet.ids()[fleet.container("chat-llm@1")] == chat_id  # started again, not replaced
    triton.unload_model("reranker")  # the extra model is reported, never unloaded by heal
    warm_up(fleet.endpoint("embeddings@1"))
    code, data = health_json(fleet)
    assert code == 0, data
    assert {r["verdict"] for r in replicas(data).values()} == {"ok"}

    # A container removed by hand is recreated through apply's path (a rollout in the state).
    testbed.client("a").api.remove_container(fleet.container("chat-llm@1"), force=True)
    code, data = health_json(fleet, "--failures", "1", "--heal")
    (act,) = data["heal"]["actions"]
    assert (act["deployment"], act["action"], act["ok"]) == ("chat-llm@1", "recreate", True), act
    assert fleet.container("chat-llm@1") in fleet.ids()
    code, data = health_json(fleet)
    assert code == 0 and replicas(data)["chat-llm@1#0"]["verdict"] == "ok", data
    hist = health(fleet, "--history", "chat-llm", "--output", "json")
    assert hist.returncode == 0, hist.stderr
    kinds = [(e["kind"], e["verdict"]) for e in checked("health-history", hist.stdout)["events"]]
    assert ("heal", "critical") in kinds and kinds[0] == ("verdict", "ok")
    for out in fleet.outputs:
        assert fleet.canary not in out


def test_a_fallback_profile_and_a_latency_over_the_sla_are_degraded(
    fleet: Any, testbed: Any
) -> None:
    fleet.nim("fallback", env={"STANDIN_FALLBACK_PROFILE": "1"})
    fleet.nim("asked-for", env={"STANDIN_FALLBACK_PROFILE": "1"})["nim"]["model_profile"] = (
        "vllm-bf16-tp1-pp1"
    )
    fleet.nim("slow", env={"STANDIN_LATENCY_MS": "300"}, sla_ms=100)
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr

    code, data = health_json(fleet)
    assert code == ExitCode.DEGRADED, data
    reps = replicas(data)
    fallback, asked, slow = reps["fallback@1#0"], reps["asked-for@1#0"], reps["slow@1#0"]
    assert (fallback["verdict"], fallback["state"], fallback["profile"]["name"]) == (
        "degraded",
        "degraded",
        "vllm-bf16-tp1-pp1",
    )
    assert fallback["reasons"] and fallback["reasons"][0].startswith(
        "fallback profile vllm-bf16-tp1-pp1 ("
    )
    assert (
        asked["verdict"] == "ok" and asked["profile"]["expected"] == "vllm-bf16-tp1-pp1"
    )  # what the inventory asked for
    assert (slow["verdict"], slow["latency"]["over_sla"], slow["latency"]["sla_ms"]) == (
        "degraded",
        True,
        100,
    ), slow
    assert slow["latency"]["ms"] >= 300 and slow["reasons"][0].startswith("latency ")
    assert (
        deployments(data)["slow@1"]["state"] == "degraded"
        and deployments(data)["slow@1"]["serving"] == 1
    )
    m = metrics(fleet)
    assert gauge(m, "fleetctl_nim_fallback_profile", "fallback@1") == 1
    assert gauge(m, "fleetctl_nim_fallback_profile", "asked-for@1") == 0
    assert (
        gauge(m, "fleetctl_sla_violation", "slow@1") == 1
        and gauge(m, "fleetctl_probe_latency_seconds", "slow@1") >= 0.3
    )
    assert gauge(m, "fleetctl_replica_up", "slow@1") == 1  # degraded still serves
    api = testbed.client("a").api
    started = {n: api.inspect_container(n)["State"]["StartedAt"] for n in fleet.ids()}
    heal = health(fleet, "--heal", "--failures", "1")
    assert heal.returncode == ExitCode.DEGRADED and "nothing critical to repair" in heal.stdout
    assert {
        n: api.inspect_container(n)["State"]["StartedAt"] for n in fleet.ids()
    } == started  # degraded is never touched


def test_a_container_that_never_gets_ready_is_starting_within_its_grace_then_critical(
    fleet: Any, testbed: Any
) -> None:
    fleet.nim("chat-llm")
    assert fleet.apply().returncode == 0
    # Replace the container by hand with one that carries the same labels (so the plan
    # sees nothing to do) but whose server never becomes ready: only a probe can tell.
    api = testbed.client("a").api
    name = fleet.container("chat-llm@1")
    info = api.inspect_container(name)
    api.remove_container(name, force=True)
    env = [e for e in info["Config"]["Env"] if not e.startswith("STANDIN_")] + [
        "STANDIN_NEVER_READY=1"
    ]
    created = api.create_container(
        info["Config"]["Image"],
        name=name,
        environment=env,
        labels=info["Config"]["Labels"],
        host_config=api.create_host_config(network_mode="host"),
    )
    api.start(created["Id"])
    testbed.wait_until(
        lambda: api.inspect_container(name)["State"]["Running"], 30, what="stand-in running"
    )

    code, data = health_json(fleet, "--failures", "1")
    (rep,) = replicas(data).values()
    assert code == 0 and rep["verdict"] == "starting", rep  # within its 60 s start-up budget
    assert rep["reasons"][0].startswith("starting: started ") and rep["failures"] == 0

    code, data = health_json(fleet, "--failures", "1", "--grace", "0")
    assert code == ExitCode.UNHEALTHY
    (dep,) = data["deployments"]
    (rep,) = dep["replicas"]
    assert dep["state"] == "down" and dep["drift"] is False
    assert (rep["verdict"], rep["state"], rep["container_state"]) == (
        "critical",
        "unhealthy",
        "running",
    )
    assert rep["detail"] in ("GET /v1/health/ready: 503", "GET /v1/health/ready: ConnectError"), rep
    assert rep["check"] == "GET /v1/health/ready answers 200"
    assert rep["probe_latency_ms"] < 5000
    m = metrics(fleet)
    assert gauge(m, "fleetctl_replica_state", "chat-llm@1", fleetctl_replica_state="unhealthy") == 1


def test_a_crash_loop_is_critical_across_sweeps_and_heal_leaves_it_to_docker(
    fleet: Any, testbed: Any
) -> None:
    fleet.nim("crashy", env={"STANDIN_CRASH_AFTER_S": "1.5"})
    r = fleet.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    api = testbed.client("a").api
    name = fleet.container("crashy@1")
    code, first = health_json(fleet, "--failures", "1")
    before = replicas(first)["crashy@1#0"]["restart_count"]
    testbed.wait_until(
        lambda: api.inspect_container(name)["RestartCount"] > (before or 0), 30, what="a restart"
    )

    code, data = health_json(fleet, "--failures", "1", "--heal")
    assert code == ExitCode.UNHEALTHY, data
    rep = replicas(data)["crashy@1#0"]
    assert (rep["verdict"], rep["crash_loop"]) == ("critical", True), rep
    assert rep["restart_count"] > (before or 0) and rep["restarts_since_last_sweep"] >= 1
    assert rep["reasons"][0].startswith("crash loop: restarted ")
    (act,) = data["heal"]["actions"]
    assert (act["action"], act["ok"]) == ("none", False) and "crash loop" in act["detail"]
    assert gauge(metrics(fleet), "fleetctl_replica_crash_loop", "crashy@1") == 1


def test_an_unreachable_host_alone_exits_6_and_its_replicas_are_unknown(
    make_fleet: Any, testbed: Any
) -> None:
    fleet = make_fleet(
        hosts={"host-a": testbed.host_a, "gone": "unix:///run/fleetctl-testbed/missing.sock"}
    )
    fleet.nim("here", hosts={"name": "host-a"})
    fleet.nim("there", hosts={"name": "gone"})
    assert fleet.apply().returncode == ExitCode.HOST_UNREACHABLE

    code, data = health_json(fleet)
    assert code == ExitCode.HOST_UNREACHABLE
    assert [(h["host"], h["reachable"]) for h in data["hosts"]] == [
        ("host-a", True),
        ("gone", False),
    ]
    reps = replicas(data)
    assert reps["here@1#0"]["verdict"] == "ok"
    assert (
        reps["there@1#0"]["verdict"] == "unknown"
        and "gone unreachable" in reps["there@1#0"]["detail"]
    )
    assert deployments(data)["there@1"]["state"] == "unknown"
    m = metrics(fleet)
    assert m[("fleetctl_host_reachable", (("host", "gone"),))] == 0
    assert gauge(m, "fleetctl_replica_up", "here@1") == 1
